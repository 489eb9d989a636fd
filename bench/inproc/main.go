// Command inproc runs failoverd's real webhook stack in one process
// (bench.StartServer: the bolt store, the simulated cloud, the engine, the
// mapper and httpapi.NewHandler, wired as cmd/failoverd/serve.go wires them)
// and writes CPU and blocking profiles of the run, because the daemon itself
// exposes no pprof.
//
//	inproc --config CFG --data-dir DIR --listen 127.0.0.1:19099 --cpuprofile cpu.pprof
//
// then point bench/storm at http://127.0.0.1:19099/webhook/alertmanager
// (tokens w and a) and stop inproc with SIGINT/SIGTERM; inspect with
// `go tool pprof -top bin/inproc cpu.pprof`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/failoverd/failoverd/bench"
	"github.com/failoverd/failoverd/failover/config"
)

func main() {
	cfgFile := flag.String("config", "", "failoverd config file")
	dataDir := flag.String("data-dir", "", "data directory (fresh for a clean run)")
	listen := flag.String("listen", "127.0.0.1:19099", "listen address")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile here")
	mutexProfile := flag.String("mutexprofile", "", "write a mutex contention profile here")
	blockProfile := flag.String("blockprofile", "", "write a blocking profile here")
	noEngine := flag.Bool("no-engine", false, "do not run the reconcile loop (webhook path only)")
	flag.Parse()
	if err := run(*cfgFile, *dataDir, *listen, *cpuProfile, *mutexProfile, *blockProfile, *noEngine); err != nil {
		fmt.Fprintln(os.Stderr, "inproc:", err)
		os.Exit(1)
	}
}

func run(cfgFile, dataDir, listen, cpuProfile, mutexProfile, blockProfile string, noEngine bool) error {
	cfg, err := config.Load(config.LoadOptions{File: cfgFile, Getenv: os.Getenv})
	if err != nil {
		return err
	}
	if dataDir != "" {
		cfg.DataDir = dataDir
	}
	if mutexProfile != "" {
		runtime.SetMutexProfileFraction(5)
	}
	if blockProfile != "" {
		runtime.SetBlockProfileRate(int(time.Millisecond / 10))
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	srv, err := bench.StartServer(ctx, bench.ServerOptions{
		Config: cfg, Listen: listen, WebhookToken: "w", APIToken: "a", NoEngine: noEngine,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "inproc: failoverd webhook stack on %s (tokens w / a)\n", srv.URL)
	select {
	case <-ctx.Done():
	case err := <-srv.Done():
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	if err := srv.Close(); err != nil {
		return err
	}
	for _, p := range []struct{ name, file string }{{"mutex", mutexProfile}, {"block", blockProfile}} {
		if p.file == "" {
			continue
		}
		f, err := os.Create(p.file)
		if err != nil {
			return err
		}
		_ = pprof.Lookup(p.name).WriteTo(f, 0)
		f.Close()
	}
	return nil
}
