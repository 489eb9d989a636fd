package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/api/option"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/gcp"
	"github.com/failoverd/failoverd/cloud/sim"
	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/alertmanager"
	"github.com/failoverd/failoverd/failover/config"
	"github.com/failoverd/failoverd/failover/httpapi"
	"github.com/failoverd/failoverd/failover/store/bolt"
)

// ServerOptions wire an in-process failoverd webhook stack.
type ServerOptions struct {
	Config *config.Config
	// Listen defaults to 127.0.0.1:0.
	Listen       string
	WebhookToken string
	APIToken     string
	// NoEngine serves the webhook without the reconcile loop.
	NoEngine bool
	Logger   *slog.Logger
}

// Server is failoverd's real webhook stack in this process — the bolt
// store, the configured cloud (sim, or GCP with an emulator endpoint), the
// engine, the mapper and httpapi.NewHandler, wired as cmd/failoverd/serve.go
// wires them — for profiling (bench/inproc) and for bench_test.go. It has
// no agent client, no notifier and no bootstrap: a GCP standby waits in
// syncing, which is as far as the benchmarks look.
type Server struct {
	URL     string
	Engine  *failover.Engine
	Store   *bolt.Store
	DataDir string

	srv        *http.Server
	cancel     context.CancelFunc
	engineDone chan error
	serveDone  chan error
}

// StartServer starts the stack; Close stops it.
func StartServer(ctx context.Context, o ServerOptions) (*Server, error) {
	cfg := o.Config
	if cfg == nil {
		return nil, errors.New("bench: ServerOptions.Config is required")
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	store, err := bolt.Open(filepath.Join(cfg.DataDir, "failoverd.db"), bolt.Options{})
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			store.Close()
		}
	}()
	var providers []cloud.Provider
	for _, name := range cfg.UsedProviders() {
		var p cloud.Provider
		switch name {
		case config.ProviderSim:
			s := cfg.Cloud.Sim
			p, err = sim.New(sim.Options{
				BootTime: s.BootTime, SyncTime: s.SyncTime, Peers: s.Peers, NoCapacityZones: s.NoCapacityZones,
				StatePath:  filepath.Join(cfg.DataDir, "sim-cloud.json"),
				Registerer: reg,
			})
		case config.ProviderGCP:
			g := cfg.Cloud.GCP
			var opts []option.ClientOption
			if g.InsecureNoAuth {
				opts = append(opts, option.WithoutAuthentication())
			}
			p, err = gcp.New(ctx, gcp.Options{
				Project: g.Project, MachineType: g.MachineType, DiskType: g.DiskType, DiskGB: g.DiskGB,
				BootImage: g.BootImage, Network: g.Network, Subnetwork: g.Subnetwork,
				APISourceRanges: g.APISourceRanges, OperationTimeout: g.OperationTimeout,
				Endpoint: g.Endpoint, ClientOptions: opts,
			})
		default:
			err = fmt.Errorf("the in-process server has no %q provider", name)
		}
		if err != nil {
			return nil, err
		}
		providers = append(providers, p)
	}
	engine, err := failover.New(failover.Options{
		Config: cfg, Store: store, Providers: providers,
		Logger: o.Logger, Metrics: failover.NewMetrics(reg), Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	mapper, err := alertmanager.NewMapper(cfg)
	if err != nil {
		return nil, err
	}
	handler, err := httpapi.NewHandler(httpapi.Options{
		Observer: engine, TearDowner: engine, Store: store, Mapper: mapper,
		WebhookToken: o.WebhookToken, APIToken: o.APIToken,
		MaxBodyBytes: cfg.Webhook.MaxBodyBytes, Gatherer: reg, Metrics: httpapi.NewMetrics(reg), Logger: o.Logger,
	})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &Server{
		URL: "http://" + ln.Addr().String(), Engine: engine, Store: store, DataDir: cfg.DataDir,
		srv: httpapi.NewServer(ln.Addr().String(), handler), cancel: cancel,
		engineDone: make(chan error, 1), serveDone: make(chan error, 1),
	}
	if o.NoEngine {
		s.engineDone <- nil
	} else {
		go func() { s.engineDone <- engine.Run(rctx) }()
	}
	go func() { s.serveDone <- s.srv.Serve(ln) }()
	ok = true
	return s, nil
}

// Done yields the serve loop's end: an error, or http.ErrServerClosed after Close.
func (s *Server) Done() <-chan error { return s.serveDone }

// Close stops serving, stops the engine and closes the store.
func (s *Server) Close() error {
	sctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	err := s.srv.Shutdown(sctx)
	s.cancel()
	if e := <-s.engineDone; e != nil && !errors.Is(e, context.Canceled) {
		err = errors.Join(err, e)
	}
	return errors.Join(err, s.Store.Close())
}
