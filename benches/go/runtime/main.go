// Command runtime is the Go peer of the lab's `runtime` experiment (issue 3's targets).
//
// One subcommand per row; each prints one JSON object {"ops", "total_ns", "hist", "runtime",
// "extra"} like the other Go peers:
//
//	skynet -leaves N       skynet: a tree of fan-out 10 with N leaves, sums sent up through
//	                       channels; ops = N, total_ns = the whole tree
//	spawn  -n N -batch B   spawn B goroutines, wait for them, N in all; total_ns for N
//	chan   -n N            unbuffered channel ping-pong between two goroutines, N round trips
//	parked -n N            N goroutines blocked on a channel at once; extra = RSS growth in bytes
//
// The lab compiles this file with `go build` at run time when `go` is on PATH. GOMAXPROCS
// follows the CPU affinity the lab gives the process.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

func skynet(c chan<- int64, num, size, div int64) {
	if size == 1 {
		c <- num
		return
	}
	rc := make(chan int64, div)
	var sum int64
	sub := size / div
	for i := int64(0); i < div; i++ {
		go skynet(rc, num+i*sub, sub, div)
	}
	for i := int64(0); i < div; i++ {
		sum += <-rc
	}
	c <- sum
}

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return -1
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return -1
	}
	return pages * int64(os.Getpagesize())
}

func emit(ops int64, total time.Duration, extra int64) {
	out := map[string]interface{}{
		"ops":      ops,
		"total_ns": total.Nanoseconds(),
		"hist":     [][2]int64{},
		"runtime":  fmt.Sprintf("%s GOMAXPROCS=%d", runtime.Version(), runtime.GOMAXPROCS(0)),
		"extra":    extra,
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: runtime skynet|spawn|chan|parked [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	n := fs.Int64("n", 100000, "operations")
	leaves := fs.Int64("leaves", 1000000, "skynet leaves (a power of 10)")
	batch := fs.Int64("batch", 1000, "goroutines per spawn batch")
	_ = fs.Parse(os.Args[2:])
	if *n < 1 || *leaves < 1 || *batch < 1 {
		fmt.Fprintln(os.Stderr, "runtime: -n, -leaves and -batch must be >= 1")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "skynet":
		c := make(chan int64)
		t0 := time.Now()
		go skynet(c, 0, *leaves, 10)
		sum := <-c
		total := time.Since(t0)
		if sum != *leaves*(*leaves-1)/2 {
			fmt.Fprintf(os.Stderr, "skynet: wrong sum %d\n", sum)
			os.Exit(1)
		}
		emit(*leaves, total, sum)
	case "spawn":
		var wg sync.WaitGroup
		t0 := time.Now()
		for done := int64(0); done < *n; done += *batch {
			wg.Add(int(*batch))
			for i := int64(0); i < *batch; i++ {
				go func() { wg.Done() }()
			}
			wg.Wait()
		}
		emit(*n, time.Since(t0), 0)
	case "chan":
		a, b := make(chan int64), make(chan int64)
		go func() {
			for v := range a {
				b <- v
			}
		}()
		for i := int64(0); i < 1000; i++ {
			a <- i
			<-b
		}
		t0 := time.Now()
		for i := int64(0); i < *n; i++ {
			a <- i
			<-b
		}
		total := time.Since(t0)
		close(a)
		emit(*n, total, 0)
	case "parked":
		runtime.GC()
		before := rssBytes()
		block := make(chan struct{})
		var started sync.WaitGroup
		started.Add(int(*n))
		for i := int64(0); i < *n; i++ {
			go func() {
				started.Done()
				<-block
			}()
		}
		started.Wait()
		after := rssBytes()
		close(block)
		emit(*n, 0, after-before)
	default:
		fmt.Fprintf(os.Stderr, "runtime: unknown subcommand %q\n", os.Args[1])
		os.Exit(2)
	}
}
