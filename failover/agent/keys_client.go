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
	"time"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/beacon"
	"github.com/failoverd/failoverd/failover/cometbft"
	"github.com/failoverd/failoverd/failover/grant"
)

var _ failover.StandbyKeys = (*Client)(nil)

// Chain implements failover.StandbyKeys: the standby's beacon node's view
// of pubkeys, computed by its agent.
func (c *Client) Chain(ctx context.Context, s cloud.Standby, pubkeys []string, epochs int) (beacon.Report, error) {
	var rep beacon.Report
	err := c.post(ctx, s, "/v1/chain", ChainRequest{Pubkeys: pubkeys, Epochs: epochs}, &rep)
	return rep, err
}

// Signer implements failover.StandbyKeys from the agent's status.
func (c *Client) Signer(ctx context.Context, s cloud.Standby) (failover.SignerState, error) {
	st, _, err := c.Status(ctx, s)
	return st.Signer, err
}

// Fence implements failover.StandbyKeys: the agent deletes the keys from
// its validator client (failback).
// The caller's deadline, when longer than the client's timeout, is the
// limit: a Berachain removal waits for the host to stop beacond.
func (c *Client) Fence(ctx context.Context, s cloud.Standby, g grant.Signed) (failover.FenceReport, error) {
	var rep failover.FenceReport
	timeout := c.Timeout
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) > timeout {
		timeout = time.Until(dl)
	}
	err := c.postWithin(ctx, s, "/v1/keys/fence", FenceRequest{Grant: g}, &rep, timeout)
	return rep, err
}

// CometBFTChain is what the standby's CometBFT node (Berachain's beacond)
// says of the validator's key (pubkeys holds exactly one) over the last
// blocks commits (0: the agent's default), computed by its agent.
func (c *Client) CometBFTChain(ctx context.Context, s cloud.Standby, pubkeys []string, blocks int) (cometbft.Report, error) {
	var rep cometbft.Report
	err := c.post(ctx, s, "/v1/chain", ChainRequest{Kind: ChainKindCometBFT, Pubkeys: pubkeys, Blocks: blocks}, &rep)
	return rep, err
}

// FenceCometBFT is Fence for a Berachain standby: the host removes the key,
// which means stopping beacond first, so it waits up to
// DefaultCometBFTHostTimeout and more (the caller's ctx may end it sooner;
// the agent records the outcome anyway and a repeat answers it). The reply
// carries beacond's last signing state.
func (c *Client) FenceCometBFT(ctx context.Context, s cloud.Standby, g grant.Signed) (FenceReply, error) {
	var rep FenceReply
	err := c.postWithin(ctx, s, "/v1/keys/fence", FenceRequest{Grant: g}, &rep, max(c.Timeout, cometCheckTimeout+DefaultCometBFTHostTimeout+time.Minute))
	return rep, err
}

// Endpoint implements failover.StandbyKeys: where an approver's CLI sends
// keys, and the CA that vouches for the standby's certificate.
func (c *Client) Endpoint(s cloud.Standby) (failover.AgentEndpoint, error) {
	if s.Address == "" {
		return failover.AgentEndpoint{}, fmt.Errorf("standby %s has no address yet", s.Name)
	}
	return failover.AgentEndpoint{URL: "https://" + c.hostPort(s.Address), ServerName: s.Name, CAPEM: string(c.caPEM)}, nil
}

func (c *Client) post(ctx context.Context, s cloud.Standby, path string, body, out any) error {
	return c.postWithin(ctx, s, path, body, out, c.Timeout)
}

func (c *Client) postWithin(ctx context.Context, s cloud.Standby, path string, body, out any, timeout time.Duration) error {
	if s.Address == "" {
		return fmt.Errorf("standby %s has no address yet: %w", s.Name, cloud.ErrTransient)
	}
	addr := c.hostPort(s.Address)
	if timeout <= 0 {
		timeout = DefaultClientTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := c.transport(s, timeout)
	defer tr.CloseIdleConnections()
	return roundTrip(ctx, &http.Client{Transport: tr}, s.Name, "https://"+addr+path, body, out, maxStatusBody)
}

// roundTrip posts body as JSON and decodes a 200 answer into out; any other
// answer is an error carrying the agent's message.
func roundTrip(ctx context.Context, hc *http.Client, name, url string, body, out any, limit int64) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	// The body may hold passwords: wipe it once it is sent.
	defer clear(b)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("standby %s agent: %w: %w", name, cloud.ErrPermanent, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return classify(cloud.Standby{Name: name}, req.URL.Host, err)
	}
	defer resp.Body.Close()
	rb, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return classify(cloud.Standby{Name: name}, req.URL.Host, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		msg := excerpt(rb)
		if json.Unmarshal(rb, &e) == nil && e.Error != "" {
			msg = e.Error
		}
		kind := cloud.ErrPermanent
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented {
			kind = cloud.ErrTransient
		}
		if out != nil {
			_ = json.Unmarshal(rb, out)
		}
		return &RemoteError{Status: resp.StatusCode, Message: msg, kind: kind}
	}
	if err := json.Unmarshal(rb, out); err != nil {
		return fmt.Errorf("standby %s agent: malformed answer: %w: %w", name, cloud.ErrPermanent, err)
	}
	return nil
}

// RemoteError is an agent's refusal or failure, with its own words.
type RemoteError struct {
	Status  int
	Message string
	kind    error
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("standby agent answered HTTP %d: %s", e.Status, e.Message)
}

// Unwrap lets errors.Is(err, cloud.ErrTransient) tell a retryable failure.
func (e *RemoteError) Unwrap() error { return e.kind }

// ImportKeys sends keys from an approver's machine to a standby's agent:
// TLS 1.3 to the certificate failoverd's CA issued for the standby's name,
// no client certificate (the approval and the grant authorise). The request
// holds passwords: the caller clears them afterwards.
func ImportKeys(ctx context.Context, ep failover.AgentEndpoint, req ImportRequest) (ImportReply, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(ep.CAPEM)) {
		return ImportReply{}, errors.New("the standby's CA from failoverd is not a PEM certificate")
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		DisableKeepAlives:     true,
		ResponseHeaderTimeout: 5 * time.Minute,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool, ServerName: ep.ServerName},
	}
	defer tr.CloseIdleConnections()
	var reply ImportReply
	err := roundTrip(ctx, &http.Client{Transport: tr}, ep.ServerName, ep.URL+"/v1/keys", req, &reply, maxStatusBody)
	return reply, err
}
