// Command gcpcloud runs the local GCP Compute Engine wire fake
// (cloud/gcp/gcpfake) for a benchmark and records when each validator's
// instance insert arrives (bench.InsertRecorder): point failoverd's
// cloud.gcp.endpoint at the fake (insecureNoAuth: true) and bench/storm's
// --cloud-inserts at the recorder.
//
//	gcpcloud --listen 127.0.0.1:19400 --url-file /tmp/gcp.url
//
// The fake listens on a free loopback port of its own; its URL is written to
// --url-file once it accepts requests. SIGINT/SIGTERM stop both.
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

	"github.com/failoverd/failoverd/bench"
	"github.com/failoverd/failoverd/cloud/gcp/gcpfake"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:19400", "where the recorder answers GET / with the inserts seen (JSON)")
	urlFile := flag.String("url-file", "", "write the fake's endpoint URL here (required)")
	flag.Parse()
	if err := run(*listen, *urlFile); err != nil {
		fmt.Fprintln(os.Stderr, "gcpcloud:", err)
		os.Exit(1)
	}
}

func run(listen, urlFile string) error {
	if urlFile == "" {
		return errors.New("--url-file is required")
	}
	if err := bench.CheckLoopback("http://" + listen); err != nil {
		return err
	}
	fake := gcpfake.New()
	defer fake.Close()
	rec := bench.NewInsertRecorder(fake)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: rec, ReadHeaderTimeout: 5 * time.Second}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		_ = srv.Close()
	}()
	// Written last and renamed into place, so whoever waits for the file
	// finds a complete URL of a fake that already answers.
	tmp := urlFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(fake.URL()+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, urlFile); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "gcpcloud: GCP wire fake on %s, insert recorder on http://%s/\n", fake.URL(), ln.Addr())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	s := rec.Snapshot()
	fmt.Fprintf(os.Stderr, "gcpcloud: %d instance insert requests, %d validators, %d instances created\n",
		s.InsertRequests, len(s.Inserts), s.InstancesCreated)
	return nil
}
