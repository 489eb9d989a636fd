package alertmanager

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
)

// PostableAlert is one alert for Alertmanager's API v2 (postableAlerts).
// Zero times are left out: Alertmanager then starts the alert now and ends it
// after its resolve_timeout unless it is posted again.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// StatusError is a non-2xx answer from Alertmanager. Code lets a caller tell
// a rejected alert (4xx, do not retry) from an unavailable one (5xx).
type StatusError struct {
	Code   int
	Status string
	// Body is the start of the response body (at most errBodyLimit bytes).
	Body string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("alertmanager answered %s: %s", e.Status, e.Body)
}

const (
	errBodyLimit = 512
	// defaultTimeout guards callers that pass a context without a deadline
	// and no client of their own.
	defaultTimeout = 30 * time.Second
	alertsPath     = "/api/v2/alerts"
)

// Client posts alerts to one Alertmanager.
type Client struct {
	url string
	// shown is url without its password, for errors.
	shown string
	hc    *http.Client
}

// NewClient checks baseURL (http or https, with a host; a path prefix such as
// a reverse proxy's is kept) and returns a client. hc nil means a client with
// a timeout of its own. Basic-auth credentials in the URL are sent but never
// shown in errors.
func NewClient(baseURL string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		// *url.Error quotes the whole URL, password included: keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("alertmanager URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("alertmanager URL %q: scheme must be http or https", u.Redacted())
	}
	if u.Host == "" {
		return nil, fmt.Errorf("alertmanager URL %q: no host", u.Redacted())
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("alertmanager URL %q: query or fragment not allowed", u.Redacted())
	}
	u.Path = strings.TrimRight(u.Path, "/") + alertsPath
	u.RawPath = ""
	if hc == nil {
		hc = &http.Client{Timeout: defaultTimeout}
	}
	return &Client{url: u.String(), shown: u.Redacted(), hc: hc}, nil
}

// Post sends alerts in one request. Posting the same alert again refreshes
// it; Alertmanager deduplicates by label set, so a retry is harmless.
func (c *Client) Post(ctx context.Context, alerts []PostableAlert) error {
	if len(alerts) == 0 {
		return nil
	}
	for i, a := range alerts {
		if len(a.Labels) == 0 {
			return fmt.Errorf("alertmanager post: alerts[%d]: no labels", i)
		}
	}
	body, err := json.Marshal(alerts)
	if err != nil {
		return fmt.Errorf("alertmanager post: encode: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("alertmanager post: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		// net/http already strips the password from *url.Error.
		return fmt.Errorf("alertmanager post: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 == 2 {
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil
	}
	head, err := io.ReadAll(io.LimitReader(resp.Body, errBodyLimit))
	if err != nil {
		head = append(head, fmt.Sprintf(" (reading body: %v)", err)...)
	}
	return fmt.Errorf("alertmanager post %s: %w", c.shown, &StatusError{
		Code: resp.StatusCode, Status: resp.Status, Body: strings.TrimSpace(string(head)),
	})
}
