package agent

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/failoverd/failoverd/failover/beacon"
	"github.com/failoverd/failoverd/failover/pki"
)

// DefaultPort is where the agent listens on a standby; the cloud providers
// open it in their firewalls.
const DefaultPort = 7443

// DefaultTimeout bounds each round of questions to the local clients.
const DefaultTimeout = 5 * time.Second

// maxRequestBody bounds every request body but a key import's.
const maxRequestBody = 64 << 10

// Options configure the agent.
type Options struct {
	// Listen is the TCP address to serve on, e.g. "0.0.0.0:7443".
	Listen string
	// CertFile and KeyFile are the standby's server certificate and key
	// (pki.Authority.StandbyCredentials); ClientCAFile is failoverd's CA
	// (pki.Authority.CAPEM), the only issuer of client certificates accepted.
	CertFile, KeyFile, ClientCAFile string
	// ExecutionURL is the execution client's JSON-RPC endpoint and BeaconURL
	// the beacon node's REST API, both local to the standby.
	ExecutionURL, BeaconURL string
	// DataPath is on the chain-data disk; its free space is reported.
	DataPath string
	// Timeout bounds each round of questions to the local clients
	// (default DefaultTimeout).
	Timeout time.Duration
	// Now is the agent's clock (default time.Now); tests shift it.
	Now func() time.Time
	// Logger receives the agent's logs (default: discarded).
	Logger *slog.Logger
	// Version is reported in every status.
	Version string
	// ControlDir is shared with the host (a bind mount): a clean stop of the
	// clients is asked for by creating StopRequestedFile there, and a host
	// systemd path unit stops the client units and creates
	// ClientsStoppedFile. The agent itself can stop nothing: it has no
	// access to systemd or to the container runtime. Empty: stops refused.
	// The validator client's unit waits for ValidatorStartFile there.
	ControlDir string
	// Keys enables key import and fencing (approve-migration, failback).
	Keys KeyOptions
	// CometBFT makes this a Berachain validator's agent: POST /v1/chain
	// answers for the CometBFT node, and with Keys.AllowedSigners the key
	// routes install and remove its CometBFT key through the host
	// (cometbft_keys.go) instead of a Keymanager API.
	CometBFT CometBFTOptions
}

// The control files of a clean client stop (see Options.ControlDir).
const (
	StopRequestedFile  = "stop-requested"
	ClientsStoppedFile = "clients-stopped"
)

// Run serves the agent on o.Listen until ctx ends, then shuts down and
// returns nil. It returns an error at once when the options are incomplete
// or the credentials cannot be loaded.
func Run(ctx context.Context, o Options) error {
	if o.Listen == "" {
		return errors.New("agent: no listen address")
	}
	h, tlsConf, err := build(&o)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("agent: listen: %w", err)
	}
	return serve(ctx, ln, h, tlsConf, o)
}

// Serve is Run on a listener the caller made (tests listen on
// 127.0.0.1:0). It closes ln.
func Serve(ctx context.Context, ln net.Listener, o Options) error {
	h, tlsConf, err := build(&o)
	if err != nil {
		ln.Close()
		return err
	}
	return serve(ctx, ln, h, tlsConf, o)
}

func build(o *Options) (http.Handler, *tls.Config, error) {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"certificate file", o.CertFile}, {"key file", o.KeyFile}, {"client CA file", o.ClientCAFile},
		{"execution URL", o.ExecutionURL}, {"beacon URL", o.BeaconURL}, {"data path", o.DataPath},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, nil, fmt.Errorf("agent: missing %s", strings.Join(missing, ", "))
	}
	execURL, err := checkURL("execution URL", o.ExecutionURL)
	if err != nil {
		return nil, nil, err
	}
	beaconURL, err := checkURL("beacon URL", o.BeaconURL)
	if err != nil {
		return nil, nil, err
	}
	cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: load certificate: %w", err)
	}
	caPEM, err := os.ReadFile(o.ClientCAFile)
	if err != nil {
		return nil, nil, fmt.Errorf("agent: read client CA: %w", err)
	}
	clientCAs := x509.NewCertPool()
	if !clientCAs.AppendCertsFromPEM(caPEM) {
		return nil, nil, fmt.Errorf("agent: %s holds no PEM certificate", o.ClientCAFile)
	}
	// A client certificate is verified when given; every route but the key
	// import requires failoverd's. The key import comes from an approver's
	// machine and is authorised by the signed approval and failoverd's
	// grant it carries, which the agent checks itself.
	tlsConf := &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    clientCAs,
	}
	bc, err := beacon.New(strings.TrimRight(beaconURL, "/"), beacon.WithTimeout(o.Timeout))
	if err != nil {
		return nil, nil, fmt.Errorf("agent: beacon URL: %w", err)
	}
	if len(o.Keys.CAPEM) == 0 {
		o.Keys.CAPEM = caPEM
	}
	if o.Keys.StandbyName == "" && cert.Leaf != nil {
		o.Keys.StandbyName = cert.Leaf.Subject.CommonName
	}
	if o.Keys.CertSHA256 == "" && len(cert.Certificate) > 0 {
		sum := sha256.Sum256(cert.Certificate[0])
		o.Keys.CertSHA256 = hex.EncodeToString(sum[:])
	}
	s := &server{
		o: *o,
		probe: &prober{
			// Local clients only: no proxy from the environment.
			http:         &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}},
			executionURL: execURL,
			beaconURL:    strings.TrimRight(beaconURL, "/"),
			timeout:      o.Timeout,
		},
	}
	if s.keys, err = newKeys(s, o.Keys, bc); err != nil {
		return nil, nil, err
	}
	return s.handler(), tlsConf, nil
}

func checkURL(what, s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("agent: %s %q: want http://host:port", what, s)
	}
	return s, nil
}

func serve(ctx context.Context, ln net.Listener, h http.Handler, tlsConf *tls.Config, o Options) error {
	// HTTP/1.1 only: one small protocol on the one port open to the internet.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	srv := &http.Server{
		Protocols:         &protocols,
		Handler:           h,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      2*o.Timeout + 10*time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		// TLS handshake failures (no or bad client certificates) land here.
		ErrorLog:    slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return ctx },
	}
	o.Logger.Info("standby agent listening", "addr", ln.Addr().String(),
		"execution", o.ExecutionURL, "beacon", o.BeaconURL, "dataPath", o.DataPath, "version", o.Version)
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("agent: serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("agent: shutdown: %w", err)
	}
	o.Logger.Info("standby agent stopped")
	return nil
}

type server struct {
	o     Options
	probe *prober
	keys  *keys
}

func (s *server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /v1/status", s.authorize(http.HandlerFunc(s.status)))
	mux.Handle("POST /v1/clients/stop", s.authorize(http.HandlerFunc(s.stopClients)))
	mux.Handle("POST /v1/chain", s.authorize(http.HandlerFunc(s.chain)))
	mux.Handle("POST /v1/keys/fence", s.authorize(http.HandlerFunc(s.fenceKeys)))
	// No client certificate needed: the approval and the grant in the body
	// are the authorisation, checked before anything is written.
	mux.HandleFunc("POST /v1/keys", s.importKeys)
	return mux
}

// authorize admits only failoverd's client certificate. The TLS layer has
// verified the chain against the client CA (a TLS client certificate of
// failoverd's CA); this checks it is failoverd's own, not some other
// certificate the CA may issue.
func (s *server) authorize(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "a verified client certificate is required"})
			return
		}
		if cn := r.TLS.VerifiedChains[0][0].Subject.CommonName; cn != pki.ClientCommonName {
			s.o.Logger.Warn("refused a client certificate that is not failoverd's", "cn", cn, "remote", r.RemoteAddr)
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "this client certificate is not failoverd's"})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
		next.ServeHTTP(w, r)
	})
}

func (s *server) status(w http.ResponseWriter, r *http.Request) {
	received := s.o.Now()
	st := Status{DiskPath: s.o.DataPath, Version: s.o.Version}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); st.Execution = s.probe.execution(r.Context()) }()
	go func() { defer wg.Done(); st.Consensus = s.probe.consensus(r.Context()) }()
	free, err := diskFree(s.o.DataPath)
	if err != nil {
		st.DiskError = err.Error()
	}
	st.DiskFreeBytes = free
	wg.Wait()
	if st.Execution.Error != "" || st.Consensus.Error != "" {
		s.o.Logger.Debug("local client errors", "execution", st.Execution.Error, "consensus", st.Consensus.Error)
	}
	st.ClientsStopped = s.clientsStopped()
	st.Signer = s.keys.current()
	st.ReceivedAt = received.UTC()
	st.Time = s.o.Now().UTC()
	writeJSON(w, http.StatusOK, st)
}

func (s *server) clientsStopped() bool {
	if s.o.ControlDir == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(s.o.ControlDir, ClientsStoppedFile))
	return err == nil
}

// StopReply is the answer to POST /v1/clients/stop.
type StopReply struct {
	StopRequested  bool `json:"stopRequested"`
	ClientsStopped bool `json:"clientsStopped"`
}

// stopClients asks the host to stop the clients cleanly (for a snapshot of
// a keyless node); idempotent.
func (s *server) stopClients(w http.ResponseWriter, _ *http.Request) {
	if s.o.ControlDir == "" {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "this agent has no control directory (--control-dir): it cannot ask the host to stop the clients"})
		return
	}
	f, err := os.OpenFile(filepath.Join(s.o.ControlDir, StopRequestedFile), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		s.o.Logger.Error("cannot request a client stop", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "cannot write the stop request"})
		return
	}
	f.Close()
	s.o.Logger.Info("clean stop of the clients requested")
	writeJSON(w, http.StatusAccepted, StopReply{StopRequested: true, ClientsStopped: s.clientsStopped()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code, b = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
