// Command switch is the Go peer of the lab's `switch` experiment, with GOMAXPROCS=1.
//
//	-mode gosched: two goroutines each call runtime.Gosched() -w + -n times; the main
//	               one times its last -n calls; every call hands the P to the other
//	               goroutine, so the timed loop holds 2n switches.
//	-mode chan:    two goroutines ping-pong a value over two unbuffered channels; a round
//	               trip is two switches; -n round trips are timed.
//
// Prints one JSON object: {"switches", "total_ns", "runtime"}. The lab compiles this file
// with `go build` at run time when `go` is on PATH and runs it pinned to one CPU.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"time"
)

func main() {
	mode := flag.String("mode", "gosched", "gosched or chan")
	n := flag.Int("n", 1000000, "timed iterations")
	w := flag.Int("w", 10000, "warm-up iterations")
	flag.Parse()
	if *n < 1 || *w < 0 {
		fmt.Fprintln(os.Stderr, "switch: -n must be >= 1 and -w >= 0")
		os.Exit(2)
	}
	runtime.GOMAXPROCS(1)
	var total time.Duration
	switch *mode {
	case "gosched":
		done := make(chan struct{})
		go func() {
			for i := 0; i < *w+*n; i++ {
				runtime.Gosched()
			}
			close(done)
		}()
		for i := 0; i < *w; i++ {
			runtime.Gosched()
		}
		t0 := time.Now()
		for i := 0; i < *n; i++ {
			runtime.Gosched()
		}
		total = time.Since(t0)
		<-done
	case "chan":
		ping := make(chan int)
		pong := make(chan int)
		go func() {
			for v := range ping {
				pong <- v
			}
			close(pong)
		}()
		for i := 0; i < *w; i++ {
			ping <- i
			<-pong
		}
		t0 := time.Now()
		for i := 0; i < *n; i++ {
			ping <- i
			<-pong
		}
		total = time.Since(t0)
		close(ping)
		<-pong
	default:
		fmt.Fprintf(os.Stderr, "switch: unknown -mode %q (gosched or chan)\n", *mode)
		os.Exit(2)
	}
	out := map[string]interface{}{
		"switches": 2 * *n,
		"total_ns": total.Nanoseconds(),
		"runtime":  fmt.Sprintf("%s GOMAXPROCS=%d", runtime.Version(), runtime.GOMAXPROCS(0)),
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
