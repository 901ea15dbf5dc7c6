//go:build pprof

// Profiling for benchmarks only: a binary built with `-tags pprof` serves
// net/http/pprof on the address in SNOMPROV_PPROF (bench/dhcp.sh PROFILE=1
// builds it that way and fetches the profiles inside the server's network
// namespace). Release builds have no such listener.
package main

import (
	"fmt"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
)

func init() {
	addr := os.Getenv("SNOMPROV_PPROF")
	if addr == "" {
		return
	}
	runtime.MemProfileRate = 64 << 10
	go func() {
		if err := http.ListenAndServe(addr, nil); err != nil {
			fmt.Fprintln(os.Stderr, "pprof listener:", err)
		}
	}()
}
