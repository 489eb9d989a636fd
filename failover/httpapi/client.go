package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/failoverd/failoverd/failover"
)

// Client is the CLI's way to the daemon: every subcommand that reads or
// changes incidents goes through the daemon's API, never the store.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// NewClient checks the server URL. hc may be nil.
func NewClient(server, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server %q is not an http(s) URL like http://127.0.0.1:9097", server)
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	return &Client{base: u, token: token, hc: hc}, nil
}

// APIError is a non-2xx answer from the daemon.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("failoverd answered %d: %s", e.Status, e.Message)
}

// ListQuery filters ListIncidents.
type ListQuery struct {
	Validator string
	State     string
	OpenOnly  bool
}

// ListIncidents returns incidents, oldest first.
func (c *Client) ListIncidents(ctx context.Context, q ListQuery) ([]failover.Incident, error) {
	v := url.Values{}
	if q.Validator != "" {
		v.Set("validator", q.Validator)
	}
	if q.State != "" {
		v.Set("state", q.State)
	}
	if q.OpenOnly {
		v.Set("open", "true")
	}
	var out IncidentList
	err := c.do(ctx, http.MethodGet, "/v1/incidents?"+v.Encode(), nil, &out)
	return out.Incidents, err
}

// GetIncident returns one incident.
func (c *Client) GetIncident(ctx context.Context, id string) (failover.Incident, error) {
	var inc failover.Incident
	err := c.do(ctx, http.MethodGet, "/v1/incidents/"+url.PathEscape(id), nil, &inc)
	return inc, err
}

// Teardown ends an incident in the name of by.
func (c *Client) Teardown(ctx context.Context, id, by string) (failover.Incident, error) {
	var inc failover.Incident
	err := c.do(ctx, http.MethodPost, "/v1/incidents/"+url.PathEscape(id)+"/teardown", TeardownRequest{By: by}, &inc)
	return inc, err
}

// ListSites returns the sites and their heartbeats.
func (c *Client) ListSites(ctx context.Context) ([]failover.SiteRecord, error) {
	var out SiteList
	err := c.do(ctx, http.MethodGet, "/v1/sites", nil, &out)
	return out.Sites, err
}

// ListSnapshotRuns returns the snapshot keeper's runs, oldest first.
func (c *Client) ListSnapshotRuns(ctx context.Context, validator string) ([]failover.SnapshotRun, error) {
	var out SnapshotRunList
	err := c.do(ctx, http.MethodGet, "/v1/snapshot-runs?validator="+url.QueryEscape(validator), nil, &out)
	return out.Runs, err
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := strings.TrimRight(c.base.String(), "/") + path
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach failoverd at %s (is it running? set --server or FAILOVERD_SERVER): %w", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read answer of %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e ErrorReply
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &APIError{Status: resp.StatusCode, Message: e.Error}
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
	}
	return nil
}

// IsNotFound reports whether err is the daemon's 404.
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}
