// Command baseline is the receiver failoverd's webhook throughput is compared
// against (bench/decodeonly): read the body, alertmanager.Decode, answer
// 200 {} — no auth, no mapping, no store, no metrics.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/failoverd/failoverd/bench/decodeonly"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:19098", "listen address")
	flag.Parse()
	if err := run(*listen); err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

func run(listen string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	// The same timeouts as failoverd's httpapi.NewServer.
	srv := &http.Server{
		Handler:           decodeonly.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		_ = srv.Close()
	}()
	fmt.Fprintf(os.Stderr, "baseline: decode-only receiver on http://%s/\n", ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
