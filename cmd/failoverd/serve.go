package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"k8s.io/client-go/rest"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/agent"
	"github.com/failoverd/failoverd/failover/alertmanager"
	"github.com/failoverd/failoverd/failover/config"
	"github.com/failoverd/failoverd/failover/httpapi"
	"github.com/failoverd/failoverd/failover/pki"
	"github.com/failoverd/failoverd/failover/store/bolt"
	kubestore "github.com/failoverd/failoverd/failover/store/kube"
)

type serveFlags struct {
	configFile string
	logFormat  string
	logLevel   string
}

func newServeCmd(e *env) *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the daemon: webhook receiver, reconciler and API",
		Long: `Run the daemon. It listens for Alertmanager webhooks on
POST /webhook/alertmanager, serves the incident API on /v1, health on
/healthz and /readyz, and metrics on /metrics.

Authentication: the webhook needs a bearer token (FAILOVERD_WEBHOOK_TOKEN or
auth.webhookTokenFile) and the API another (FAILOVERD_API_TOKEN or
auth.apiTokenFile). serve refuses to start without them unless
--insecure-disable-auth is given, which is only for a demo on loopback.

Configuration: --config FILE, overridden by FAILOVERD_* environment variables,
overridden by flags. 'failoverd config validate --config FILE' checks a file;
docs/configuration.md lists every key.`,
		Example: `  FAILOVERD_WEBHOOK_TOKEN=... FAILOVERD_API_TOKEN=... failoverd serve --config examples/local.yaml
  failoverd serve --config /etc/failoverd/config.yaml --listen 0.0.0.0:9097 --data-dir /var/lib/failoverd`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), e, f, cmd)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.configFile, "config", "c", "", "config file (YAML); without it the defaults apply")
	fl.String("listen", "", "listen address (default 127.0.0.1:9097)")
	fl.String("data-dir", "", "data directory for the embedded store (default ./data)")
	fl.Bool("insecure-disable-auth", false, "serve without any authentication (loopback demos only; logs a warning)")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return nil, &usageError{fmt.Errorf("--log-level %q: use debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, &usageError{fmt.Errorf("--log-format %q: use text or json", format)}
}

// readToken takes a token from the environment, else from a file.
func readToken(getenv func(string) string, envName, file string) (string, error) {
	if t := strings.TrimSpace(getenv(envName)); t != "" {
		return t, nil
	}
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func serve(ctx context.Context, e *env, f serveFlags, cmd *cobra.Command) error {
	log, err := newLogger(e.stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	cfg, err := config.Load(config.LoadOptions{File: f.configFile, Getenv: e.getenv, Flags: cmd.Flags()})
	if err != nil {
		return err
	}
	noAuth, _ := cmd.Flags().GetBool("insecure-disable-auth")
	if noAuth {
		cfg.Auth.Disabled = true
	}
	for _, w := range cfg.Warnings() {
		log.Warn("config: " + w)
	}
	if err := checkBootstraps(cfg); err != nil {
		return err
	}

	webhookToken, err := readToken(e.getenv, "FAILOVERD_WEBHOOK_TOKEN", cfg.Auth.WebhookTokenFile)
	if err != nil {
		return fmt.Errorf("webhook token: %w", err)
	}
	apiToken, err := readToken(e.getenv, "FAILOVERD_API_TOKEN", cfg.Auth.APITokenFile)
	if err != nil {
		return fmt.Errorf("API token: %w", err)
	}
	gateToken, err := readToken(e.getenv, "FAILOVERD_GATE_TOKEN", cfg.Auth.GateTokenFile)
	if err != nil {
		return fmt.Errorf("gate token: %w", err)
	}
	if gateToken != "" && (gateToken == apiToken || gateToken == webhookToken) {
		return errors.New("the gate token must differ from the API and webhook tokens: it is handed to every validator client's gate and may only read owners")
	}
	if cfg.Auth.Disabled {
		log.Warn("AUTHENTICATION IS DISABLED: anyone who can reach " + cfg.Listen +
			" can post alerts and tear down incidents. Use this only for a demo on loopback.")
	} else if webhookToken == "" || apiToken == "" {
		return errors.New("refusing to start without tokens: set FAILOVERD_WEBHOOK_TOKEN and FAILOVERD_API_TOKEN " +
			"(or auth.webhookTokenFile and auth.apiTokenFile); --insecure-disable-auth runs without, for a loopback demo only")
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	var (
		store    failover.Store
		kubeRC   *rest.Config
		kubeNS   string
		storeErr error
	)
	switch cfg.Store.Type {
	case config.StoreKubernetes:
		if kubeRC, kubeNS, err = kubeAccess(cfg, e.getenv); err != nil {
			return err
		}
		store, storeErr = kubestore.New(kubeRC, kubestore.Options{Namespace: kubeNS})
	default:
		store, storeErr = bolt.Open(filepath.Join(cfg.DataDir, "failoverd.db"), bolt.Options{})
	}
	if storeErr != nil {
		return storeErr
	}
	defer store.Close()

	providers, err := buildProviders(ctx, cfg, reg)
	if err != nil {
		return err
	}
	// failoverd's own small CA: it makes each standby's agent credentials
	// and failoverd's client certificate (mutual TLS to the agents).
	pkiDir := filepath.Join(cfg.DataDir, "pki")
	if err := useSharedSeed(cfg.Agent.CASeedFile, pkiDir); err != nil {
		return err
	}
	auth, err := pki.LoadOrCreate(pkiDir)
	if err != nil {
		return fmt.Errorf("standby credentials: %w", err)
	}
	agents, err := agent.NewClient(auth, cfg.Agent.Port)
	if err != nil {
		return err
	}

	var notifier failover.Notifier
	if cfg.Notify.AlertmanagerURL != "" {
		amc, err := alertmanager.NewClient(cfg.Notify.AlertmanagerURL, &http.Client{Timeout: 10 * time.Second})
		if err != nil {
			return fmt.Errorf("notify.alertmanagerURL: %w", err)
		}
		notifier = alertmanager.NewNotifier(amc, cfg.Notify.Labels, "http://"+cfg.Listen)
	}

	mig, err := migrationOptions(cfg, auth, agents, kubeRC)
	if err != nil {
		return err
	}
	if len(mig.Signers) == 0 {
		log.Warn("no approvers configured (approval.allowedSigners): every key migration will be refused")
	}
	engine, err := failover.New(failover.Options{
		Config: cfg, Store: store, Providers: providers, Notifier: notifier,
		Sync: agents, Bootstrap: standbyBootstrap(cfg, auth),
		Logger: log, Metrics: failover.NewMetrics(reg), Registerer: reg,
		Migration: mig,
	})
	if err != nil {
		return err
	}
	mapper, err := alertmanager.NewMapper(cfg)
	if err != nil {
		return err
	}
	handler, err := httpapi.NewHandler(httpapi.Options{
		Observer: engine, TearDowner: engine, Migrator: engine, Store: store, Mapper: mapper,
		WebhookToken: webhookToken, APIToken: apiToken, GateToken: gateToken, AuthDisabled: cfg.Auth.Disabled,
		MaxBodyBytes: cfg.Webhook.MaxBodyBytes, Gatherer: reg, Metrics: httpapi.NewMetrics(reg), Logger: log,
		Ready: func() error {
			if cfg.Store.Type == config.StoreKubernetes {
				// Every replica serves reads and webhooks; only the leader
				// reconciles. A replica is ready when the store answers.
				rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				defer cancel()
				if _, err := store.ListSites(rctx); err != nil {
					return fmt.Errorf("the Kubernetes store does not answer: %w", err)
				}
				return nil
			}
			select {
			case <-engine.Ready():
				return nil
			default:
				return errors.New("the engine has not loaded its state yet")
			}
		},
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s (--listen): %w", cfg.Listen, err)
	}
	srv := httpapi.NewServer(cfg.Listen, handler)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	engineDone := make(chan error, 1)
	go func() {
		if cfg.Store.Type == config.StoreKubernetes {
			engineDone <- lead(ctx, kubeRC, kubeNS, leaderIdentity(e.getenv), cfg, log, engine.Run)
			return
		}
		engineDone <- engine.Run(ctx)
	}()
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()

	log.Info("failoverd serving", "version", version, "listen", ln.Addr().String(), "data_dir", cfg.DataDir,
		"store", cfg.Store.Type, "clouds", cfg.UsedProviders(), "validators", len(cfg.Fleet),
		"confirm_for", cfg.Engine.ConfirmFor, "keep_warm", cfg.Engine.KeepWarm)

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-serveDone:
		runErr = fmt.Errorf("http server: %w", err)
	case err := <-engineDone:
		runErr = fmt.Errorf("engine stopped: %w", err)
	}
	shutdownCtx, stop := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer stop()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	cancel()
	<-engineDone
	return runErr
}

func newConfigCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "config", Short: "Check configuration", RunE: groupRun}
	var file, out string
	validate := &cobra.Command{
		Use:   "validate",
		Short: "Load a config file with the environment, check it and print a summary",
		Long: `Load a config file the way serve would (file, then FAILOVERD_* environment),
check every key, and print a summary. Exits non-zero, naming each bad key,
when the configuration would not start.`,
		Example: "  failoverd config validate --config examples/local.yaml",
		Args:    exactArgs(0, "no arguments (the file goes in --config)"),
		RunE: func(*cobra.Command, []string) error {
			if err := checkOutput(out, outText, outJSON); err != nil {
				return err
			}
			if file == "" {
				return &usageError{errors.New("--config FILE is required")}
			}
			cfg, err := config.Load(config.LoadOptions{File: file, Getenv: e.getenv})
			if err != nil {
				return err
			}
			if err := checkBootstraps(cfg); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if out == outJSON {
				return writeJSON(e.stdout, map[string]any{"valid": true, "warnings": cfg.Warnings(), "config": cfg})
			}
			names := make([]string, 0, len(cfg.Fleet))
			for _, v := range cfg.Fleet {
				names = append(names, fmt.Sprintf("%s (%s/%s @ %s)", v.Name, v.Chain, v.Network, v.Site))
			}
			fmt.Fprintf(e.stdout, "%s: valid\n", file)
			fmt.Fprintf(e.stdout, "  listen %s, store %s in %s, cloud %s\n", cfg.Listen, cfg.Store.Type, cfg.DataDir, strings.Join(cfg.UsedProviders(), " then "))
			fmt.Fprintf(e.stdout, "  confirmFor %s, keepWarm %s, at most %d standbys, %.0f standby-hours a month\n",
				cfg.Engine.ConfirmFor, cfg.Engine.KeepWarm, cfg.Caps.MaxConcurrentStandbys, cfg.Caps.MonthlyStandbyHours)
			fmt.Fprintf(e.stdout, "  %d validators: %s\n", len(cfg.Fleet), strings.Join(names, ", "))
			for _, w := range cfg.Warnings() {
				fmt.Fprintf(e.stdout, "  warning: %s\n", w)
			}
			return nil
		},
	}
	validate.Flags().StringVarP(&file, "config", "c", "", "config file to check")
	validate.Flags().StringVarP(&out, "output", "o", outText, "output format: text or json")
	cmd.AddCommand(validate)
	return cmd
}

// useSharedSeed puts the configured CA seed (agent.caSeedFile, mounted from
// a Secret in a cluster) into the pki directory, so that every replica
// derives the same CA. A different seed already there is refused: it would
// strand the standbys made with it.
func useSharedSeed(seedFile, pkiDir string) error {
	if seedFile == "" {
		return nil
	}
	seed, err := os.ReadFile(seedFile)
	if err != nil {
		return fmt.Errorf("agent.caSeedFile: %w", err)
	}
	dst := filepath.Join(pkiDir, pki.SeedFile)
	if have, err := os.ReadFile(dst); err == nil {
		if !bytes.Equal(have, seed) {
			return fmt.Errorf("agent.caSeedFile %s differs from the seed already in %s: standbys made with the old CA would be unreachable; move %s away if that is intended", seedFile, pkiDir, dst)
		}
		return nil
	}
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(dst, seed, 0o600)
}
