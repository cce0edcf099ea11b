// Command create is the Go peer of the lab's `create` experiment: goroutine spawn + join.
//
// It runs -w warm-up operations, then times -n operations in one batch (the mean cost),
// then times -m operations one by one (the per-operation distribution), and prints one
// JSON object: {"ops", "total_ns", "hist": [[ns, count], ...], "runtime"}.
// One operation is `wg.Add(1); go func() { wg.Done() }(); wg.Wait()`.
// The lab compiles this file with `go build` at run time when `go` is on PATH and runs it
// pinned to the CPU of the experiment (GOMAXPROCS follows the affinity mask).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"
)

// round3 keeps three significant digits, like the HDR histogram the lab merges into.
func round3(v int64) int64 {
	if v < 1000 {
		return v
	}
	scale := int64(1)
	for v/scale >= 1000 {
		scale *= 10
	}
	return v / scale * scale
}

func main() {
	n := flag.Int("n", 100000, "operations in the timed batch")
	m := flag.Int("m", 10000, "operations timed one by one")
	w := flag.Int("w", 1000, "warm-up operations")
	flag.Parse()
	if *n < 1 || *m < 0 || *w < 0 {
		fmt.Fprintln(os.Stderr, "create: -n must be >= 1, -m and -w >= 0")
		os.Exit(2)
	}
	var wg sync.WaitGroup
	op := func() {
		wg.Add(1)
		go func() { wg.Done() }()
		wg.Wait()
	}
	for i := 0; i < *w; i++ {
		op()
	}
	t0 := time.Now()
	for i := 0; i < *n; i++ {
		op()
	}
	total := time.Since(t0)
	hist := map[int64]int64{}
	for i := 0; i < *m; i++ {
		s := time.Now()
		op()
		hist[round3(time.Since(s).Nanoseconds())]++
	}
	pairs := make([][2]int64, 0, len(hist))
	for v, c := range hist {
		pairs = append(pairs, [2]int64{v, c})
	}
	out := map[string]interface{}{
		"ops":      *n,
		"total_ns": total.Nanoseconds(),
		"hist":     pairs,
		"runtime":  fmt.Sprintf("%s GOMAXPROCS=%d", runtime.Version(), runtime.GOMAXPROCS(0)),
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
