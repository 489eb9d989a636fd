package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"time"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/failover/pki"
)

// DefaultClientTimeout bounds one status call when the caller's context has
// no earlier deadline.
const DefaultClientTimeout = 20 * time.Second

// maxStatusBody bounds what the client reads from an agent.
const maxStatusBody = 1 << 20

// Client asks standby agents for their status. It implements
// cloud.SyncReporter and is safe for concurrent use.
type Client struct {
	// Port is the agent's port on the standby's address.
	Port int
	// Timeout bounds one call (default DefaultClientTimeout).
	Timeout time.Duration

	roots *x509.CertPool
	caPEM []byte
	cert  tls.Certificate
}

var _ cloud.SyncReporter = (*Client)(nil)

// NewClient makes a client that authenticates with the authority's client
// certificate and trusts only standby certificates the authority issued,
// each for its own standby's name. port is the agent's port (0: DefaultPort).
func NewClient(a *pki.Authority, port int) (*Client, error) {
	if a == nil {
		return nil, errors.New("agent client: no authority")
	}
	if port == 0 {
		port = DefaultPort
	}
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("agent client: port %d out of range", port)
	}
	cert, err := a.ClientCertificate()
	if err != nil {
		return nil, fmt.Errorf("agent client: %w", err)
	}
	return &Client{Port: port, Timeout: DefaultClientTimeout, roots: a.Pool(), caPEM: a.CAPEM(), cert: cert}, nil
}

// SyncStatus implements cloud.SyncReporter: it asks the standby's agent and
// maps its answer. Errors wrap cloud.ErrTransient when the agent may answer
// later (no address yet, not listening yet, a timeout, a 5xx) and
// cloud.ErrPermanent when asking again will not help (the standby presents a
// certificate failoverd's CA did not issue for its name, the agent refuses
// failoverd's certificate, the answer is malformed).
func (c *Client) SyncStatus(ctx context.Context, s cloud.Standby) (cloud.SyncStatus, error) {
	st, offset, err := c.Status(ctx, s)
	if err != nil {
		return cloud.SyncStatus{}, err
	}
	return st.SyncStatus(offset), nil
}

// SyncStatus maps an agent's status to failoverd's readiness model, given
// the measured clock offset.
func (st Status) SyncStatus(clockOffset time.Duration) cloud.SyncStatus {
	return cloud.SyncStatus{
		ExecutionSynced: !st.Execution.Syncing && st.Execution.Error == "",
		ConsensusSynced: !st.Consensus.IsSyncing && st.Consensus.Error == "",
		Optimistic:      st.Consensus.IsOptimistic,
		ELOffline:       st.Consensus.ELOffline,
		Health:          st.Consensus.Health,
		Peers:           st.Consensus.Peers,
		ExecutionPeers:  st.Execution.Peers,
		SyncDistance:    st.Consensus.SyncDistance,
		DiskFreeBytes:   st.DiskFreeBytes,
		ClockOffset:     clockOffset,
	}
}

// Status asks the standby's agent for its raw status, and measures the
// agent's clock offset (agent minus local): the midpoint of the agent's
// receive and answer times minus the midpoint of when the request was
// written and the first byte of the answer arrived.
func (c *Client) Status(ctx context.Context, s cloud.Standby) (Status, time.Duration, error) {
	if s.Address == "" {
		return Status{}, 0, fmt.Errorf("standby %s has no address yet: %w", s.Name, cloud.ErrTransient)
	}
	if s.Name == "" {
		return Status{}, 0, fmt.Errorf("standby at %s has no name to verify its certificate against: %w", s.Address, cloud.ErrPermanent)
	}
	addr := c.hostPort(s.Address)
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultClientTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := c.transport(s, timeout)
	defer tr.CloseIdleConnections()

	var sent, firstByte time.Time
	trace := &httptrace.ClientTrace{
		WroteRequest:         func(httptrace.WroteRequestInfo) { sent = time.Now() },
		GotFirstResponseByte: func() { firstByte = time.Now() },
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, "https://"+addr+"/v1/status", nil)
	if err != nil {
		return Status{}, 0, fmt.Errorf("standby %s agent: %w: %w", s.Name, cloud.ErrPermanent, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return Status{}, 0, classify(s, addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxStatusBody))
	if err != nil {
		return Status{}, 0, classify(s, addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		kind := cloud.ErrPermanent
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			kind = cloud.ErrTransient
		}
		return Status{}, 0, fmt.Errorf("standby %s agent at %s answered HTTP %d %s: %w", s.Name, addr, resp.StatusCode, excerpt(b), kind)
	}
	st, err := decodeStatus(b)
	if err != nil {
		return Status{}, 0, fmt.Errorf("standby %s agent at %s: %w: %w", s.Name, addr, cloud.ErrPermanent, err)
	}
	if sent.IsZero() || firstByte.IsZero() {
		return Status{}, 0, fmt.Errorf("standby %s agent at %s: could not time the request: %w", s.Name, addr, cloud.ErrTransient)
	}
	local := sent.Add(firstByte.Sub(sent) / 2)
	agent := st.Time
	if !st.ReceivedAt.IsZero() && !st.ReceivedAt.After(st.Time) {
		agent = st.ReceivedAt.Add(st.Time.Sub(st.ReceivedAt) / 2)
	}
	return st, agent.Sub(local), nil
}

// transport reaches one standby's agent: TLS 1.3, its CA, its name, and
// failoverd's client certificate; no proxy, no connection reuse.
func (c *Client) transport(s cloud.Standby, timeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 nil, // straight to the standby
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: timeout,
		TLSClientConfig: &tls.Config{
			MinVersion:   tls.VersionTLS13,
			RootCAs:      c.roots,
			ServerName:   s.Name,
			Certificates: []tls.Certificate{c.cert},
		},
	}
}

// StopClients implements cloud.ClientStopper: it asks the standby's agent
// to have the host stop the clients cleanly and reports whether they have.
func (c *Client) StopClients(ctx context.Context, s cloud.Standby) (bool, error) {
	if s.Address == "" {
		return false, fmt.Errorf("standby %s has no address yet: %w", s.Name, cloud.ErrTransient)
	}
	addr := c.hostPort(s.Address)
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultClientTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := c.transport(s, timeout)
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+"/v1/clients/stop", nil)
	if err != nil {
		return false, fmt.Errorf("standby %s agent: %w: %w", s.Name, cloud.ErrPermanent, err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return false, classify(s, addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxStatusBody))
	if err != nil {
		return false, classify(s, addr, err)
	}
	if resp.StatusCode != http.StatusAccepted {
		kind := cloud.ErrPermanent
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented {
			kind = cloud.ErrTransient
		}
		return false, fmt.Errorf("standby %s agent at %s answered the stop with HTTP %d %s: %w", s.Name, addr, resp.StatusCode, excerpt(b), kind)
	}
	var r StopReply
	if err := json.Unmarshal(b, &r); err != nil || !r.StopRequested {
		return false, fmt.Errorf("standby %s agent at %s: bad stop reply %s: %w", s.Name, addr, excerpt(b), cloud.ErrPermanent)
	}
	return r.ClientsStopped, nil
}

// hostPort is where the agent of a standby at address listens: address is
// an IP or host name (the agent's port is added) or already host:port.
func (c *Client) hostPort(address string) string {
	if h, p, err := net.SplitHostPort(address); err == nil && h != "" && p != "" {
		return address
	}
	return net.JoinHostPort(address, strconv.Itoa(c.Port))
}

// classify wraps a transport error with the kind the engine acts on.
func classify(s cloud.Standby, addr string, err error) error {
	var (
		verr  *tls.CertificateVerificationError
		uae   x509.UnknownAuthorityError
		herr  x509.HostnameError
		cierr x509.CertificateInvalidError
		alert tls.AlertError
	)
	switch {
	case errors.As(err, &verr), errors.As(err, &uae), errors.As(err, &herr), errors.As(err, &cierr):
		return fmt.Errorf("standby %s at %s presents a certificate failoverd did not issue for it (another machine at that address, or another CA): %w: %w",
			s.Name, addr, cloud.ErrPermanent, err)
	case errors.As(err, &alert):
		return fmt.Errorf("standby %s agent at %s refused failoverd's certificate (is it configured with another CA?): %w: %w",
			s.Name, addr, cloud.ErrPermanent, err)
	}
	return fmt.Errorf("standby %s agent at %s unreachable (still booting?): %w: %w", s.Name, addr, cloud.ErrTransient, err)
}

// requiredKeys are the status fields whose absence would read as "synced"
// (false, empty) if defaulted: an answer without them is refused.
var requiredKeys = map[string][]string{
	"execution": {"syncing", "peers", "error"},
	"consensus": {"isSyncing", "isOptimistic", "elOffline", "syncDistance", "health", "peers", "error"},
}

func decodeStatus(b []byte) (Status, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return Status{}, fmt.Errorf("malformed status: %w", err)
	}
	for obj, keys := range requiredKeys {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(raw[obj], &fields); err != nil || fields == nil {
			return Status{}, fmt.Errorf("malformed status: no %s object", obj)
		}
		for _, k := range keys {
			if _, ok := fields[k]; !ok {
				return Status{}, fmt.Errorf("malformed status: %s.%s missing", obj, k)
			}
		}
	}
	if _, ok := raw["time"]; !ok {
		return Status{}, errors.New("malformed status: time missing")
	}
	var st Status
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&st); err != nil {
		return Status{}, fmt.Errorf("malformed status: %w", err)
	}
	return st, nil
}
