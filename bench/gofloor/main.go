// Command gofloor is the floor bench/http.sh measures snomprov against with
// FLOOR=1: the least a Go program can do for a keep-alive HTTP client, one
// goroutine per connection answering every request head with the same
// bytes. What separates snomprov from it is snomprov's own work (routing,
// identity, the inventory); what separates it from nginx is the Go runtime.
//
// usage: gofloor ADDR FILE
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gofloor ADDR FILE")
		os.Exit(2)
	}
	body, err := os.ReadFile(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	resp = append(resp, body...)
	ln, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			continue
		}
		go serve(c, resp)
	}
}

// serve answers each complete head on c with resp until c closes.
func serve(c net.Conn, resp []byte) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 4096)
	for {
		for {
			b, _ := br.Peek(br.Buffered())
			if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
				br.Discard(i + 4)
				break
			}
			if len(b) == br.Size() {
				return // a head larger than the buffer: not a benchmark request
			}
			if _, err := br.Peek(len(b) + 1); err != nil {
				return
			}
		}
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}
