package alertmanager

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"
)

// newServer listens on 127.0.0.1 only.
func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

type captured struct {
	method, path, contentType, auth string
	body                            []byte
}

func TestClientPost(t *testing.T) {
	starts := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	alerts := []PostableAlert{
		{
			Labels:       map[string]string{"alertname": "FailoverStandbyReady", "validator": "eth-mainnet-1"},
			Annotations:  map[string]string{"summary": "standby ready"},
			StartsAt:     starts,
			GeneratorURL: "http://failoverd:8080/v1/incidents/x",
		},
		{Labels: map[string]string{"alertname": "FailoverIncidentFailed"}, EndsAt: starts.Add(time.Hour)},
	}
	tests := []struct {
		name   string
		prefix string // path prefix of the base URL
		status int
		answer string
		// wantErr are substrings of the error; none means success.
		wantErr []string
	}{
		{name: "ok", status: http.StatusOK},
		{name: "path prefix", prefix: "/alertmanager/", status: http.StatusOK},
		{name: "400", status: http.StatusBadRequest, answer: `{"code":400,"message":"labels: bad"}`, wantErr: []string{"400 Bad Request", "labels: bad"}},
		{name: "503 long body", status: http.StatusServiceUnavailable, answer: strings.Repeat("x", 2000), wantErr: []string{"503"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := make(chan captured, 1)
			srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				user, pass, _ := r.BasicAuth()
				got <- captured{r.Method, r.URL.Path, r.Header.Get("Content-Type"), user + ":" + pass, b}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.answer)
			}))
			base := strings.Replace(srv.URL, "http://", "http://am:s3cret@", 1) + tt.prefix
			c, err := NewClient(base, srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			err = c.Post(context.Background(), alerts)
			req := <-got
			if req.method != http.MethodPost || req.contentType != "application/json" || req.auth != "am:s3cret" {
				t.Errorf("request %s %q auth %q", req.method, req.contentType, req.auth)
			}
			if want := strings.TrimSuffix(tt.prefix, "/") + "/api/v2/alerts"; req.path != want {
				t.Errorf("path = %q, want %q", req.path, want)
			}
			var body []map[string]any
			if err := json.Unmarshal(req.body, &body); err != nil {
				t.Fatalf("body %s: %v", req.body, err)
			}
			want := []map[string]any{
				{
					"labels":       map[string]any{"alertname": "FailoverStandbyReady", "validator": "eth-mainnet-1"},
					"annotations":  map[string]any{"summary": "standby ready"},
					"startsAt":     "2026-11-21T09:00:00Z",
					"generatorURL": "http://failoverd:8080/v1/incidents/x",
				},
				{"labels": map[string]any{"alertname": "FailoverIncidentFailed"}, "endsAt": "2026-11-21T10:00:00Z"},
			}
			if !reflect.DeepEqual(body, want) {
				t.Errorf("body = %s", req.body)
			}
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Post: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Post succeeded, want error")
			}
			var se *StatusError
			if !errors.As(err, &se) || se.Code != tt.status || len(se.Body) > errBodyLimit {
				t.Errorf("error %v: StatusError %+v", err, se)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestClientContext(t *testing.T) {
	release := make(chan struct{})
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer close(release)
	c, err := NewClient(srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = c.Post(ctx, []PostableAlert{{Labels: map[string]string{"alertname": "A"}}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Post = %v, want deadline exceeded", err)
	}
}

func TestClientNoRequest(t *testing.T) {
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
	}))
	c, err := NewClient(srv.URL, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Post(context.Background(), nil); err != nil {
		t.Errorf("Post(nil) = %v", err)
	}
	err = c.Post(context.Background(), []PostableAlert{{Labels: map[string]string{"a": "b"}}, {}})
	if err == nil || !strings.Contains(err.Error(), "alerts[1]") {
		t.Errorf("Post without labels = %v", err)
	}
}

func TestClientUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	c, err := NewClient("http://u:s3cret@"+addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Post(context.Background(), []PostableAlert{{Labels: map[string]string{"alertname": "A"}}})
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Post = %v, want an error without the password", err)
	}
}

func TestNewClient(t *testing.T) {
	tests := []struct {
		in      string
		want    string // the request URL, or "" for an error
		errPart string
	}{
		{in: "http://alertmanager:9093", want: "http://alertmanager:9093/api/v2/alerts"},
		{in: "https://am.example.com/", want: "https://am.example.com/api/v2/alerts"},
		{in: "http://proxy/alertmanager/", want: "http://proxy/alertmanager/api/v2/alerts"},
		{in: "", errPart: "scheme"},
		{in: "alertmanager:9093", errPart: "scheme"},
		{in: "ftp://am", errPart: "scheme"},
		{in: "http://", errPart: "no host"},
		{in: "http://am:9093?x=1", errPart: "query"},
		{in: "http://u:s3cret@am:9093#frag", errPart: "xxxxx"},
		{in: "http://u:s3cret@am:bad port", errPart: "invalid port"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			c, err := NewClient(tt.in, nil)
			if tt.want == "" {
				if err == nil || !strings.Contains(err.Error(), tt.errPart) {
					t.Fatalf("NewClient(%q) error = %v, want it to mention %q", tt.in, err, tt.errPart)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.url != tt.want {
				t.Errorf("url = %q, want %q", c.url, tt.want)
			}
		})
	}
}
