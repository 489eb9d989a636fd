// Command inproc runs failoverd's real webhook stack in one process — the
// bolt store, the simulated cloud, the engine, the mapper and
// httpapi.NewHandler, wired as cmd/failoverd/serve.go wires them — and writes
// a CPU profile of the run, because the daemon itself exposes no pprof.
//
//	inproc --config CFG --data-dir DIR --listen 127.0.0.1:19099 --cpuprofile cpu.pprof
//
// then point bench/storm at http://127.0.0.1:19099/webhook/alertmanager and
// stop inproc with SIGINT/SIGTERM; inspect with
// `go tool pprof -top bin/inproc cpu.pprof`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/failoverd/failoverd/cloud/sim"
	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/alertmanager"
	"github.com/failoverd/failoverd/failover/config"
	"github.com/failoverd/failoverd/failover/httpapi"
	"github.com/failoverd/failoverd/failover/store/bolt"
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
		log.Fatal(err)
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
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}
	store, err := bolt.Open(filepath.Join(cfg.DataDir, "failoverd.db"), bolt.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	provider, err := sim.New(sim.Options{
		BootTime: cfg.Cloud.Sim.BootTime, SyncTime: cfg.Cloud.Sim.SyncTime, Peers: cfg.Cloud.Sim.Peers,
		NoCapacityZones: cfg.Cloud.Sim.NoCapacityZones,
		StatePath:       filepath.Join(cfg.DataDir, "sim-cloud.json"),
		Registerer:      reg,
	})
	if err != nil {
		return err
	}
	engine, err := failover.New(failover.Options{
		Config: cfg, Store: store, Provider: provider, Sync: provider,
		Logger: logger, Metrics: failover.NewMetrics(reg),
	})
	if err != nil {
		return err
	}
	mapper, err := alertmanager.NewMapper(cfg)
	if err != nil {
		return err
	}
	handler, err := httpapi.NewHandler(httpapi.Options{
		Observer: engine, TearDowner: engine, Store: store, Mapper: mapper,
		WebhookToken: "w", APIToken: "a", AuthDisabled: false,
		MaxBodyBytes: cfg.Webhook.MaxBodyBytes, Gatherer: reg, Metrics: httpapi.NewMetrics(reg), Logger: logger,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := httpapi.NewServer(listen, handler)

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
	engineDone := make(chan error, 1)
	if noEngine {
		close(engineDone)
	} else {
		go func() { engineDone <- engine.Run(ctx) }()
	}
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	fmt.Fprintf(os.Stderr, "inproc: failoverd webhook stack on http://%s (tokens w / a)\n", ln.Addr())
	select {
	case <-ctx.Done():
	case err := <-serveDone:
		return err
	}
	sctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	_ = srv.Shutdown(sctx)
	cancel()
	if err := <-engineDone; err != nil && !errors.Is(err, context.Canceled) {
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
	_ = http.ErrServerClosed
	return nil
}
