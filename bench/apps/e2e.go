// The Go peer of the end-to-end benchmark (bench/e2e.bench.ts): net/http/fcgi from the standard library,
// answering the routes of bench/apps/e2e-handlers.ts with the same bytes. Built by the benchmark at run time.
//
//	e2e-go unix /path/to.sock | e2e-go tcp 127.0.0.1:PORT
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"strconv"
	"strings"
)

func letters(n int) []byte {
	body := make([]byte, n)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	return body
}

var fixed = map[string][]byte{
	"hello": []byte("hello world\n"),
	"4k":    letters(4096),
	"64k":   letters(65536),
}

func reply(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func handle(w http.ResponseWriter, r *http.Request) {
	route := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	if route == "echo" && r.Method == http.MethodPost {
		hash := sha256.New()
		if _, err := io.Copy(hash, r.Body); err != nil {
			reply(w, http.StatusBadRequest, []byte(err.Error()))
			return
		}
		reply(w, http.StatusOK, []byte(hex.EncodeToString(hash.Sum(nil))))
		return
	}
	if body, ok := fixed[route]; ok && r.Method == http.MethodGet {
		reply(w, http.StatusOK, body)
		return
	}
	reply(w, http.StatusNotFound, []byte("not found\n"))
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: e2e-go unix PATH | tcp HOST:PORT")
		os.Exit(2)
	}
	network, address := os.Args[1], os.Args[2]
	if network == "unix" {
		os.Remove(address) // a stale socket file from an earlier run
	}
	listener, err := net.Listen(network, address)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := fcgi.Serve(listener, http.HandlerFunc(handle)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
