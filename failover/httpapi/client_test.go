package httpapi_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/httpapi"
)

// newClientEnv serves a seeded env over real HTTP on loopback.
func newClientEnv(t *testing.T) (*env, *httptest.Server) {
	t.Helper()
	e := newEnv(t, nil)
	e.seed()
	srv := httptest.NewServer(e.h)
	t.Cleanup(srv.Close)
	return e, srv
}

func newClient(t *testing.T, server, token string) *httpapi.Client {
	t.Helper()
	c, err := httpapi.NewClient(server, token, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func ids(incs []failover.Incident) string {
	s := make([]string, len(incs))
	for i, inc := range incs {
		s[i] = inc.ID
	}
	return strings.Join(s, ",")
}

func TestClientListIncidents(t *testing.T) {
	_, srv := newClientEnv(t)
	// A trailing slash on the server URL must not matter.
	c := newClient(t, srv.URL+"/", apiToken)
	tests := []struct {
		q    httpapi.ListQuery
		want string
	}{
		{httpapi.ListQuery{}, "eth-mainnet-1-1,eth-mainnet-2-1"},
		{httpapi.ListQuery{Validator: "eth-mainnet-1"}, "eth-mainnet-1-1"},
		{httpapi.ListQuery{OpenOnly: true}, "eth-mainnet-1-1"},
		{httpapi.ListQuery{State: "closed"}, "eth-mainnet-2-1"},
		{httpapi.ListQuery{State: "closed", Validator: "eth-mainnet-1"}, ""},
		{httpapi.ListQuery{Validator: "a b&c=d"}, ""}, // escaped, not a second parameter
	}
	for _, tc := range tests {
		incs, err := c.ListIncidents(context.Background(), tc.q)
		if err != nil {
			t.Fatalf("%+v: %v", tc.q, err)
		}
		if got := ids(incs); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.q, got, tc.want)
		}
	}
}

func TestClientGetTeardownSites(t *testing.T) {
	e, srv := newClientEnv(t)
	c := newClient(t, srv.URL, apiToken)
	ctx := context.Background()

	inc, err := c.GetIncident(ctx, "eth-mainnet-1-1")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := e.store.GetIncident(ctx, "eth-mainnet-1-1")
	if err != nil {
		t.Fatal(err)
	}
	if inc.ID != stored.ID || inc.State != stored.State || inc.Standby == nil || inc.Standby.Name != stored.Standby.Name ||
		len(inc.History) != len(stored.History) || !inc.CreatedAt.Equal(stored.CreatedAt) {
		t.Fatalf("round trip changed the incident:\n got %+v\nwant %+v", inc, stored)
	}

	inc, err = c.Teardown(ctx, "eth-mainnet-1-1", "carol")
	if err != nil {
		t.Fatal(err)
	}
	if inc.TornDownBy != "carol" || inc.State != failover.StateRecovering {
		t.Fatalf("teardown: %+v", inc)
	}
	if stored, _ = e.store.GetIncident(ctx, "eth-mainnet-1-1"); stored.TornDownBy != "carol" {
		t.Fatalf("teardown not stored: %+v", stored)
	}

	sites, err := c.ListSites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sites) != 1 || sites[0].Name != "basement" || sites[0].HeartbeatsSeen != 1 {
		t.Fatalf("sites %+v", sites)
	}
}

func TestClientErrors(t *testing.T) {
	_, srv := newClientEnv(t)
	ctx := context.Background()
	tests := []struct {
		name     string
		token    string
		call     func(*httpapi.Client) error
		status   int
		msg      string
		notFound bool
	}{
		{
			name: "no token", call: func(c *httpapi.Client) error { _, err := c.ListIncidents(ctx, httpapi.ListQuery{}); return err },
			status: 401, msg: "FAILOVERD_API_TOKEN",
		},
		{
			name: "wrong token", token: "wrong", call: func(c *httpapi.Client) error { _, err := c.ListSites(ctx); return err },
			status: 401, msg: "API token",
		},
		{
			name: "unknown incident", token: apiToken, call: func(c *httpapi.Client) error { _, err := c.GetIncident(ctx, "eth-mainnet-1-7"); return err },
			status: 404, msg: `"eth-mainnet-1-7" not found`, notFound: true,
		},
		{
			name: "teardown unknown", token: apiToken, call: func(c *httpapi.Client) error { _, err := c.Teardown(ctx, "x-1", "dave"); return err },
			status: 404, msg: `"x-1" not found`, notFound: true,
		},
		{
			name: "teardown without name", token: apiToken, call: func(c *httpapi.Client) error { _, err := c.Teardown(ctx, "eth-mainnet-1-1", ""); return err },
			status: 400, msg: "must name the person",
		},
		{
			// An ID with a slash is escaped into one path segment, not routed elsewhere.
			name: "ID with a slash", token: apiToken, call: func(c *httpapi.Client) error { _, err := c.GetIncident(ctx, "eth-mainnet-1-1/teardown"); return err },
			status: 404, notFound: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(newClient(t, srv.URL, tc.token))
			var ae *httpapi.APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T), want *APIError", err, err)
			}
			if ae.Status != tc.status || !strings.Contains(ae.Message, tc.msg) {
				t.Fatalf("APIError %d %q, want %d containing %q", ae.Status, ae.Message, tc.status, tc.msg)
			}
			if !strings.Contains(err.Error(), ae.Message) || strings.Contains(ae.Message, `{"error"`) {
				t.Fatalf("Error() %q should carry the plain message", err)
			}
			if httpapi.IsNotFound(err) != tc.notFound {
				t.Fatalf("IsNotFound = %v, want %v", !tc.notFound, tc.notFound)
			}
		})
	}
	if httpapi.IsNotFound(nil) || httpapi.IsNotFound(errors.New("404")) {
		t.Fatal("IsNotFound true for a non-APIError")
	}
}

// A reply that is not JSON (a proxy's error page) still becomes an APIError
// with its text.
func TestClientNonJSONError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "bad gateway from the proxy", http.StatusBadGateway)
	}))
	defer srv.Close()
	_, err := newClient(t, srv.URL, "").ListSites(context.Background())
	var ae *httpapi.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusBadGateway || ae.Message != "bad gateway from the proxy" {
		t.Fatalf("got %v", err)
	}
}

func TestClientUnreachable(t *testing.T) {
	// A port that was free a moment ago: nothing listens there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c, err := httpapi.NewClient("http://"+addr, apiToken, &http.Client{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ListIncidents(context.Background(), httpapi.ListQuery{})
	if err == nil {
		t.Fatal("no error from a server that is not there")
	}
	for _, want := range []string{"--server", "FAILOVERD_SERVER", addr} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	var ae *httpapi.APIError
	if errors.As(err, &ae) {
		t.Fatal("a connection failure is not an APIError")
	}
}

func TestNewClientURLs(t *testing.T) {
	tests := []struct {
		url string
		ok  bool
	}{
		{"http://127.0.0.1:9097", true},
		{"https://failoverd.example.invalid", true},
		{"http://127.0.0.1:9097/", true},
		{"", false},
		{"127.0.0.1:9097", false},
		{"localhost:9097", false},
		{"ftp://127.0.0.1", false},
		{"http://", false},
		{"http://[::1", false},
		{"/v1/incidents", false},
	}
	for _, tc := range tests {
		c, err := httpapi.NewClient(tc.url, "", nil)
		if tc.ok != (err == nil) || tc.ok != (c != nil) {
			t.Errorf("NewClient(%q): %v, want ok=%v", tc.url, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "http(s) URL") {
			t.Errorf("NewClient(%q) error %q does not say what is wanted", tc.url, err)
		}
	}
}

// The client's context bounds the call.
func TestClientContext(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := newClient(t, srv.URL, "").ListSites(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v, want the context's deadline", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("the call outlived its context")
	}
}
