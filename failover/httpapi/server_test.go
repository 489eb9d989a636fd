package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/failoverd/failoverd/cloud/sim"
	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/alertmanager"
	"github.com/failoverd/failoverd/failover/config"
	"github.com/failoverd/failoverd/failover/httpapi"
	"github.com/failoverd/failoverd/failover/store/bolt"
)

const (
	webhookToken = "webhook-secret"
	apiToken     = "api-secret"
	webhookPath  = "/webhook/alertmanager"
)

// now is the fixed clock of the engine, the simulated cloud and the handler:
// shortly after the real samples' startsAt (2026-11-21T08:59:34Z).
var now = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return now }

// sample reads one of the real Alertmanager deliveries.
func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "alertmanager", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// firingFor is the real firing sample, re-labelled for another validator
// (with its own fingerprint, as Alertmanager would send).
func firingFor(t testing.TB, validator string) []byte {
	t.Helper()
	b := sample(t, "validator-down-firing.json")
	if validator == "eth-mainnet-1" {
		return b
	}
	b = bytes.ReplaceAll(b, []byte("eth-mainnet-1"), []byte(validator))
	return bytes.ReplaceAll(b, []byte("ef617387aa3ff4e3"), []byte("0000"+validator))
}

func testConfig() *config.Config {
	cfg := config.Default()
	cfg.Engine.ConfirmFor = 0
	cfg.Engine.KeepWarm = 0
	cfg.Heartbeat.DefaultSite = "basement"
	cfg.Fleet = []config.Validator{
		{Name: "eth-mainnet-1", Chain: "ethereum", Network: "mainnet", Site: "basement"},
		{Name: "eth-mainnet-2", Chain: "ethereum", Network: "mainnet", Site: "basement"},
	}
	return &cfg
}

// env is a handler over a real engine, bolt store, sim cloud and mapper.
type env struct {
	t      *testing.T
	cfg    *config.Config
	path   string
	store  *bolt.Store
	engine *failover.Engine
	reg    *prometheus.Registry
	ready  atomic.Bool
	h      http.Handler
	saved  string // a value a table case's before hands to its check
}

// newEnv builds an env; tweak may change the handler options (after the
// real engine and store are filled in) before NewHandler.
func newEnv(t *testing.T, tweak func(*httpapi.Options)) *env {
	t.Helper()
	e := &env{t: t, cfg: testConfig(), path: filepath.Join(t.TempDir(), "failoverd.db")}
	e.ready.Store(true)
	e.open()
	h, err := httpapi.NewHandler(e.options(tweak))
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	return e
}

// open opens the store at e.path and builds an engine on it.
func (e *env) open() {
	e.t.Helper()
	st, err := bolt.Open(e.path, bolt.Options{NoSync: true})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { st.Close() })
	c, err := sim.New(sim.Options{Now: fixedNow, BootTime: 0, SyncTime: time.Hour, Peers: 20})
	if err != nil {
		e.t.Fatal(err)
	}
	eng, err := failover.New(failover.Options{Config: e.cfg, Store: st, Provider: c, Sync: c, Now: fixedNow})
	if err != nil {
		e.t.Fatal(err)
	}
	e.store, e.engine = st, eng
}

func (e *env) options(tweak func(*httpapi.Options)) httpapi.Options {
	e.t.Helper()
	mapper, err := alertmanager.NewMapper(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.reg = prometheus.NewRegistry()
	o := httpapi.Options{
		Observer: e.engine, TearDowner: e.engine, Store: e.store, Mapper: mapper,
		WebhookToken: webhookToken, APIToken: apiToken,
		Gatherer: e.reg, Metrics: httpapi.NewMetrics(e.reg), Now: fixedNow,
		Ready: func() error {
			if !e.ready.Load() {
				return errors.New("engine still loading")
			}
			return nil
		},
	}
	if tweak != nil {
		tweak(&o)
	}
	return o
}

// reply is a recorded response.
type reply struct {
	code   int
	header http.Header
	body   string
}

func (r reply) errorMessage(t *testing.T) string {
	t.Helper()
	var e httpapi.ErrorReply
	if err := json.Unmarshal([]byte(r.body), &e); err != nil || e.Error == "" {
		t.Fatalf("error body %q is not {\"error\": ...}: %v", r.body, err)
	}
	return e.Error
}

func (e *env) do(method, path, token string, body []byte) reply {
	e.t.Helper()
	return e.doCtx(context.Background(), method, path, token, body)
}

func (e *env) doCtx(ctx context.Context, method, path, token string, body []byte) reply {
	e.t.Helper()
	req := httptest.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return reply{code: rec.Code, header: rec.Header(), body: rec.Body.String()}
}

func (e *env) post(body []byte) reply {
	e.t.Helper()
	return e.do(http.MethodPost, webhookPath, webhookToken, body)
}

func (e *env) metrics() string {
	e.t.Helper()
	r := e.do(http.MethodGet, "/metrics", "", nil)
	if r.code != http.StatusOK {
		e.t.Fatalf("/metrics: %d %s", r.code, r.body)
	}
	return r.body
}

func decodeWebhookReply(t *testing.T, r reply) httpapi.WebhookReply {
	t.Helper()
	if r.code != http.StatusOK {
		t.Fatalf("webhook answered %d %s, want 200", r.code, r.body)
	}
	var wr httpapi.WebhookReply
	if err := json.Unmarshal([]byte(r.body), &wr); err != nil {
		t.Fatalf("webhook reply %q: %v", r.body, err)
	}
	return wr
}

func (e *env) validator(name string) (failover.ValidatorRecord, error) {
	return e.store.GetValidator(context.Background(), name)
}

func (e *env) wantNothingStored() {
	e.t.Helper()
	vs, err := e.store.ListValidators(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	sites, err := e.store.ListSites(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	if len(vs) != 0 || len(sites) != 0 {
		e.t.Fatalf("stored %d validators and %d sites, want none", len(vs), len(sites))
	}
}

// failingObserver is the contract's worst case: the store is down.
type failingObserver struct{ calls atomic.Int32 }

func (f *failingObserver) Observe(context.Context, []failover.Observation, []failover.Heartbeat) (failover.ObserveResult, error) {
	f.calls.Add(1)
	return failover.ObserveResult{}, errors.New("disk on fire")
}

func TestWebhookReplies(t *testing.T) {
	firing := sample(t, "validator-down-firing.json")
	watchdog := sample(t, "watchdog-firing.json")
	// An alert for a validator not in the fleet and one without failover="true".
	ignored := bytes.Replace(firingFor(t, "eth-mainnet-9"), []byte(`"alerts": [`), []byte(`"alerts": [
        {"status": "firing", "labels": {"alertname": "DiskFull", "validator": "eth-mainnet-1"}, "startsAt": "2026-11-21T08:59:34Z"},`), 1)
	badStatus := bytes.Replace(firing, []byte(`"status": "firing",
            "labels"`), []byte(`"status": "pending",
            "labels"`), 1)
	if bytes.Equal(badStatus, firing) {
		t.Fatal("could not make the bad-status sample")
	}

	type check func(t *testing.T, e *env, r reply)
	tests := []struct {
		name    string
		method  string
		path    string
		token   string
		body    []byte
		tweak   func(*httpapi.Options)
		before  func(t *testing.T, e *env) // runs before the request
		code    int
		msg     string // substring of the error message (non-2xx) or body
		outcome string // failoverd_webhook_requests_total label; "" when the webhook handler is not reached
		check   check
	}{
		{
			name: "new observation", body: firing, code: 200, outcome: "ok",
			check: func(t *testing.T, e *env, r reply) {
				wr := decodeWebhookReply(t, r)
				if wr.New != 1 || wr.Duplicates != 0 || wr.Heartbeats != 0 || wr.Ignored != nil {
					t.Fatalf("reply %+v, want new=1", wr)
				}
				v, err := e.validator("eth-mainnet-1")
				if err != nil {
					t.Fatalf("validator not stored: %v", err)
				}
				if a, ok := v.Alerts["ef617387aa3ff4e3"]; !ok || a.Status != failover.AlertFiring {
					t.Fatalf("ledger %+v lacks the firing alert", v.Alerts)
				}
			},
		},
		{
			name: "duplicate delivery", body: firing, code: 200, outcome: "duplicate",
			before: func(t *testing.T, e *env) {
				if wr := decodeWebhookReply(t, e.post(firing)); wr.New != 1 {
					t.Fatalf("first delivery: %+v", wr)
				}
				v, err := e.validator("eth-mainnet-1")
				if err != nil {
					t.Fatal(err)
				}
				e.saved = v.Version
			},
			check: func(t *testing.T, e *env, r reply) {
				wr := decodeWebhookReply(t, r)
				if wr.New != 0 || wr.Duplicates != 1 {
					t.Fatalf("reply %+v, want duplicates=1 new=0", wr)
				}
				v, err := e.validator("eth-mainnet-1")
				if err != nil {
					t.Fatal(err)
				}
				if v.Version == "" || v.Version != e.saved {
					t.Fatalf("a duplicate was written: version %q, was %q", v.Version, e.saved)
				}
			},
		},
		{
			name: "heartbeat", body: watchdog, code: 200, outcome: "ok",
			check: func(t *testing.T, e *env, r reply) {
				wr := decodeWebhookReply(t, r)
				if wr.Heartbeats != 1 || wr.New != 0 {
					t.Fatalf("reply %+v, want heartbeats=1", wr)
				}
				s, err := e.store.GetSite(context.Background(), "basement")
				if err != nil || s.HeartbeatsSeen != 1 || !s.LastHeartbeat.Equal(now) {
					t.Fatalf("site %+v, %v: want one heartbeat at %s", s, err, now)
				}
			},
		},
		{
			name: "ignored alerts", body: ignored, code: 200, outcome: "ignored",
			check: func(t *testing.T, e *env, r reply) {
				wr := decodeWebhookReply(t, r)
				want := map[string]int{alertmanager.ReasonUnknownValidator: 1, alertmanager.ReasonNotMatched: 1}
				if wr.New != 0 || len(wr.Ignored) != len(want) {
					t.Fatalf("reply %+v, want ignored %v", wr, want)
				}
				for k, n := range want {
					if wr.Ignored[k] != n {
						t.Fatalf("ignored %v, want %v", wr.Ignored, want)
					}
				}
				e.wantNothingStored()
				if m := e.metrics(); !strings.Contains(m, `failoverd_webhook_alerts_ignored_total{reason="unknown_validator"} 1`) {
					t.Fatalf("ignored alerts not counted:\n%s", m)
				}
			},
		},
		{
			name: "bad JSON", body: []byte(`{"version": "4", "alerts": [`), code: 400, outcome: "bad_request",
			msg: "bad alertmanager payload",
		},
		{
			name: "bad JSON type", body: []byte(`{"version": "4", "alerts": {}}`), code: 400, outcome: "bad_request",
			msg: "at offset",
		},
		{
			name: "wrong version", body: bytes.Replace(firing, []byte(`"version": "4"`), []byte(`"version": "3"`), 1),
			code: 400, outcome: "bad_request", msg: `got version "3"`,
		},
		{
			name: "bad alert status", body: badStatus, code: 400, outcome: "bad_request",
			msg: `alerts[0].status: "pending"`,
		},
		{
			name: "missing token", token: "-", body: firing, code: 401, outcome: "unauthorized",
			msg: "webhook token",
		},
		{
			name: "wrong token", token: "guess", body: firing, code: 401, outcome: "unauthorized",
			msg: "webhook token",
		},
		{
			name: "API token on the webhook", token: apiToken, body: firing, code: 401, outcome: "unauthorized",
		},
		{
			name: "GET on the webhook", method: http.MethodGet, code: 405, msg: "method GET is not allowed",
		},
		{
			name: "unknown path", path: "/webhook/slack", body: firing, code: 404, msg: "no such endpoint",
		},
		{
			name: "body over the limit", body: firing, code: 413, outcome: "too_large",
			tweak: func(o *httpapi.Options) { o.MaxBodyBytes = 100 },
			msg:   "larger than 100 bytes",
		},
		{
			name: "body at the limit", body: firing, code: 200, outcome: "ok",
			tweak: func(o *httpapi.Options) { o.MaxBodyBytes = int64(len(firing)) },
		},
		{
			name: "store fails (observer)", body: firing, code: 503, outcome: "store_error",
			tweak: func(o *httpapi.Options) { o.Observer = &failingObserver{} },
			msg:   "retry later",
		},
		{
			name: "store fails (closed bolt)", body: firing, code: 503, outcome: "store_error",
			before: func(t *testing.T, e *env) {
				if err := e.store.Close(); err != nil {
					t.Fatal(err)
				}
			},
			msg: "retry later",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.tweak)
			if tc.before != nil {
				tc.before(t, e)
			}
			method, path, token := tc.method, tc.path, tc.token
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = webhookPath
			}
			switch token {
			case "":
				token = webhookToken
			case "-":
				token = ""
			}
			r := e.do(method, path, token, tc.body)
			if r.code != tc.code {
				t.Fatalf("%s %s answered %d %s, want %d", method, path, r.code, r.body, tc.code)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q, want application/json", ct)
			}
			if tc.code/100 != 2 {
				if msg := r.errorMessage(t); !strings.Contains(msg, tc.msg) {
					t.Fatalf("error %q does not say %q", msg, tc.msg)
				}
			}
			if tc.code == http.StatusUnauthorized {
				if got := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") {
					t.Fatalf("WWW-Authenticate %q, want a Bearer challenge", got)
				}
			}
			if tc.code/100 == 4 && tc.code != 0 && tc.before == nil {
				e.wantNothingStored()
			}
			if tc.outcome != "" {
				want := fmt.Sprintf(`failoverd_webhook_requests_total{outcome=%q} 1`, tc.outcome)
				if m := e.metrics(); !strings.Contains(m, want) {
					t.Fatalf("metrics lack %s:\n%s", want, m)
				}
			} else if m := e.metrics(); strings.Contains(m, "failoverd_webhook_requests_total{") {
				t.Fatalf("the webhook handler counted a request it never saw:\n%s", m)
			}
			if tc.check != nil {
				tc.check(t, e, r)
			}
		})
	}
}

// TestWebhookStoreFailureThenRetry: a 503 leaves nothing behind, and the
// retry Alertmanager makes after recovery is taken as new.
func TestWebhookStoreFailureThenRetry(t *testing.T) {
	firing := sample(t, "validator-down-firing.json")
	e := newEnv(t, nil)
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	r := e.post(firing)
	if r.code != http.StatusServiceUnavailable {
		t.Fatalf("closed store: %d %s, want 503", r.code, r.body)
	}
	if msg := r.errorMessage(t); strings.Contains(msg, "closed") || strings.Contains(msg, e.path) {
		t.Fatalf("503 leaks internals: %q", msg)
	}

	// Recovery: the store comes back (a restart).
	e.open()
	if _, err := e.validator("eth-mainnet-1"); !errors.Is(err, failover.ErrNotFound) {
		t.Fatalf("after a 503 the validator is stored (err %v)", err)
	}
	h, err := httpapi.NewHandler(e.options(nil))
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	if wr := decodeWebhookReply(t, e.post(firing)); wr.New != 1 || wr.Duplicates != 0 {
		t.Fatalf("retry after recovery: %+v, want new=1", wr)
	}
	if _, err := e.validator("eth-mainnet-1"); err != nil {
		t.Fatalf("retry did not store: %v", err)
	}
}

// flakyStore fails PutValidator for one validator while failing is set.
type flakyStore struct {
	failover.Store
	name    string
	failing atomic.Bool
}

func (f *flakyStore) PutValidator(ctx context.Context, v *failover.ValidatorRecord) error {
	if f.failing.Load() && v.Name == f.name {
		return errors.New("write failed")
	}
	return f.Store.PutValidator(ctx, v)
}

// TestWebhookPartialFailure: a delivery whose second write fails is a 503
// (not a 200 that would lose it); the retry stores the rest, and what was
// already stored counts as a duplicate.
func TestWebhookPartialFailure(t *testing.T) {
	two := bytes.Replace(firingFor(t, "eth-mainnet-2"), []byte(`"alerts": [`),
		append([]byte(`"alerts": [`), append(alertOf(t, sample(t, "validator-down-firing.json")), ',')...), 1)
	e := newEnv(t, nil)
	fs := &flakyStore{Store: e.store, name: "eth-mainnet-2"}
	fs.failing.Store(true)
	eng, err := failover.New(failover.Options{Config: e.cfg, Store: fs, Provider: mustSim(t), Sync: mustSim(t), Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.NewHandler(e.options(func(o *httpapi.Options) { o.Observer, o.Store = eng, fs }))
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	if r := e.post(two); r.code != http.StatusServiceUnavailable {
		t.Fatalf("half-stored delivery: %d %s, want 503", r.code, r.body)
	}
	if _, err := e.validator("eth-mainnet-2"); !errors.Is(err, failover.ErrNotFound) {
		t.Fatalf("failed write stored anyway: %v", err)
	}
	fs.failing.Store(false)
	wr := decodeWebhookReply(t, e.post(two))
	if wr.New != 1 || wr.Duplicates != 1 {
		t.Fatalf("retry: %+v, want new=1 (eth-mainnet-2) duplicates=1 (eth-mainnet-1)", wr)
	}
}

func mustSim(t *testing.T) *sim.Cloud {
	t.Helper()
	c, err := sim.New(sim.Options{Now: fixedNow})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// alertOf extracts the first alert object of a delivery as JSON.
func alertOf(t *testing.T, delivery []byte) []byte {
	t.Helper()
	var m struct {
		Alerts []json.RawMessage `json:"alerts"`
	}
	if err := json.Unmarshal(delivery, &m); err != nil || len(m.Alerts) == 0 {
		t.Fatalf("sample has no alerts: %v", err)
	}
	return m.Alerts[0]
}

// blockingObserver stops inside Observe until released, then reports the
// state of the context it was given.
type blockingObserver struct {
	entered  chan struct{}
	release  chan struct{}
	mu       sync.Mutex
	ctxErr   error
	deadline time.Time
}

func (b *blockingObserver) Observe(ctx context.Context, _ []failover.Observation, _ []failover.Heartbeat) (failover.ObserveResult, error) {
	close(b.entered)
	<-b.release
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ctxErr = ctx.Err()
	b.deadline, _ = ctx.Deadline()
	return failover.ObserveResult{New: 1}, ctx.Err()
}

// TestWebhookWriteOutlivesRequest: once the body is read, Alertmanager hanging
// up does not abort the write (a retry then finds it done), yet the write is
// still bounded in time.
func TestWebhookWriteOutlivesRequest(t *testing.T) {
	firing := sample(t, "validator-down-firing.json")
	t.Run("stub", func(t *testing.T) {
		obs := &blockingObserver{entered: make(chan struct{}), release: make(chan struct{})}
		e := newEnv(t, func(o *httpapi.Options) { o.Observer = obs })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan reply, 1)
		start := time.Now()
		go func() { done <- e.doCtx(ctx, http.MethodPost, webhookPath, webhookToken, firing) }()
		select {
		case <-obs.entered:
		case <-time.After(10 * time.Second):
			t.Fatal("Observe was never called")
		}
		cancel() // the sender hangs up after the body was read
		close(obs.release)
		r := <-done
		if r.code != http.StatusOK {
			t.Fatalf("answered %d %s, want 200", r.code, r.body)
		}
		obs.mu.Lock()
		defer obs.mu.Unlock()
		if obs.ctxErr != nil {
			t.Fatalf("the write's context ended with the request: %v", obs.ctxErr)
		}
		if obs.deadline.IsZero() {
			t.Fatal("the write has no deadline: a stuck store would hold the handler forever")
		}
		if d := obs.deadline.Sub(start); d <= 0 || d > 11*time.Second {
			t.Fatalf("write deadline %s after the request, want at most ~10s", d)
		}
	})
	t.Run("real store", func(t *testing.T) {
		e := newEnv(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // bolt refuses a cancelled context outright
		r := e.doCtx(ctx, http.MethodPost, webhookPath, webhookToken, firing)
		if wr := decodeWebhookReply(t, r); wr.New != 1 {
			t.Fatalf("reply %+v, want new=1", wr)
		}
		if _, err := e.validator("eth-mainnet-1"); err != nil {
			t.Fatalf("not stored: %v", err)
		}
	})
}

// seed opens two incidents through the webhook and the engine: eth-mainnet-1-1
// stays open (syncing), eth-mainnet-2-1 is torn down and closed. A heartbeat
// makes the basement site known.
func (e *env) seed() {
	e.t.Helper()
	ctx := context.Background()
	for _, v := range []string{"eth-mainnet-1", "eth-mainnet-2"} {
		if wr := decodeWebhookReply(e.t, e.post(firingFor(e.t, v))); wr.New != 1 {
			e.t.Fatalf("seed %s: %+v", v, wr)
		}
		if _, err := e.engine.Reconcile(ctx, v); err != nil {
			e.t.Fatal(err)
		}
	}
	if _, err := e.engine.Teardown(ctx, "eth-mainnet-2-1", "seed"); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.engine.Reconcile(ctx, "eth-mainnet-2"); err != nil {
		e.t.Fatal(err)
	}
	if wr := decodeWebhookReply(e.t, e.post(sample(e.t, "watchdog-firing.json"))); wr.Heartbeats != 1 {
		e.t.Fatalf("seed heartbeat: %+v", wr)
	}
	for id, want := range map[string]failover.State{"eth-mainnet-1-1": failover.StateSyncing, "eth-mainnet-2-1": failover.StateClosed} {
		inc, err := e.store.GetIncident(ctx, id)
		if err != nil || inc.State != want {
			e.t.Fatalf("seed: %s is %s (%v), want %s", id, inc.State, err, want)
		}
	}
}

func incidentIDs(t *testing.T, r reply) []string {
	t.Helper()
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.body), &raw); err != nil {
		t.Fatalf("list body %q: %v", r.body, err)
	}
	list, ok := raw["incidents"]
	if !ok || string(list) == "null" {
		t.Fatalf("list body %s has no incidents array", r.body)
	}
	var incs []failover.Incident
	if err := json.Unmarshal(list, &incs); err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, inc := range incs {
		ids = append(ids, inc.ID)
	}
	return ids
}

func TestAPI(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	tests := []struct {
		name   string
		method string
		path   string
		token  string // "" = the API token; "-" = none
		body   string
		code   int
		msg    string   // substring of the error message
		ids    []string // for a list
		check  func(t *testing.T, r reply)
	}{
		{name: "no token", path: "/v1/incidents", token: "-", code: 401, msg: "API token"},
		{name: "wrong token", path: "/v1/incidents", token: "nope", code: 401, msg: "API token"},
		{name: "webhook token", path: "/v1/incidents", token: webhookToken, code: 401, msg: "API token"},
		{name: "no token on teardown", method: http.MethodPost, path: "/v1/incidents/eth-mainnet-1-1/teardown", token: "-", body: `{"by":"mallory"}`, code: 401},
		{name: "no token on sites", path: "/v1/sites", token: "-", code: 401},
		{name: "list", path: "/v1/incidents", code: 200, ids: []string{"eth-mainnet-1-1", "eth-mainnet-2-1"}},
		{name: "list by validator", path: "/v1/incidents?validator=eth-mainnet-2", code: 200, ids: []string{"eth-mainnet-2-1"}},
		{name: "list open", path: "/v1/incidents?open=true", code: 200, ids: []string{"eth-mainnet-1-1"}},
		{name: "list by state", path: "/v1/incidents?state=closed", code: 200, ids: []string{"eth-mainnet-2-1"}},
		{name: "list none", path: "/v1/incidents?state=ready", code: 200, ids: []string{}},
		{name: "list unknown validator", path: "/v1/incidents?validator=nobody", code: 200, ids: []string{}},
		{
			name: "get", path: "/v1/incidents/eth-mainnet-1-1", code: 200,
			check: func(t *testing.T, r reply) {
				var m map[string]any
				if err := json.Unmarshal([]byte(r.body), &m); err != nil {
					t.Fatal(err)
				}
				for k, want := range map[string]string{
					"id": "eth-mainnet-1-1", "validator": "eth-mainnet-1", "site": "basement", "state": "syncing",
					"chain": "ethereum", "network": "mainnet",
					"createdAt": now.Format(time.RFC3339), "updatedAt": now.Format(time.RFC3339),
				} {
					if m[k] != want {
						t.Errorf("%s = %v, want %q", k, m[k], want)
					}
				}
				if s, _ := m["reason"].(string); s == "" {
					t.Error("reason is empty")
				}
				sb, _ := m["standby"].(map[string]any)
				if sb == nil {
					t.Fatalf("no standby in %s", r.body)
				}
				for _, k := range []string{"provider", "name", "zone", "state"} {
					if s, _ := sb[k].(string); s == "" {
						t.Errorf("standby.%s missing in %v", k, sb)
					}
				}
				if sb["provider"] != "sim" || sb["zone"] != "sim-a" {
					t.Errorf("standby %v, want provider sim in sim-a", sb)
				}
				hist, _ := m["history"].([]any)
				if len(hist) == 0 {
					t.Fatalf("no history in %s", r.body)
				}
				for i, h := range hist {
					entry, _ := h.(map[string]any)
					if at, _ := entry["at"].(string); at == "" {
						t.Errorf("history[%d] has no at: %v", i, entry)
					}
					if c, _ := entry["cause"].(string); c == "" {
						t.Errorf("history[%d] has no cause: %v", i, entry)
					}
				}
			},
		},
		{name: "get unknown", path: "/v1/incidents/eth-mainnet-1-99", code: 404, msg: `"eth-mainnet-1-99" not found`},
		{name: "teardown without body", method: http.MethodPost, path: "/v1/incidents/eth-mainnet-1-1/teardown", code: 400, msg: "must name the person"},
		{name: "teardown without by", method: http.MethodPost, path: "/v1/incidents/eth-mainnet-1-1/teardown", body: `{"by": "  "}`, code: 400, msg: "must name the person"},
		{name: "teardown bad JSON", method: http.MethodPost, path: "/v1/incidents/eth-mainnet-1-1/teardown", body: `{"by":`, code: 400, msg: "bad teardown request"},
		{name: "teardown unknown", method: http.MethodPost, path: "/v1/incidents/nope-1/teardown", body: `{"by":"alice"}`, code: 404, msg: `"nope-1" not found`},
		{name: "teardown body too large", method: http.MethodPost, path: "/v1/incidents/eth-mainnet-1-1/teardown", body: `{"by":"` + strings.Repeat("a", 70<<10) + `"}`, code: 413},
		{name: "GET on teardown", path: "/v1/incidents/eth-mainnet-1-1/teardown", code: 405, msg: "not allowed"},
		{name: "unknown API path", path: "/v1/nope", code: 404, msg: "no such endpoint"},
		{
			name: "sites", path: "/v1/sites", code: 200,
			check: func(t *testing.T, r reply) {
				var sl httpapi.SiteList
				if err := json.Unmarshal([]byte(r.body), &sl); err != nil {
					t.Fatal(err)
				}
				if len(sl.Sites) != 1 || sl.Sites[0].Name != "basement" || sl.Sites[0].HeartbeatsSeen != 1 || !sl.Sites[0].LastHeartbeat.Equal(now) {
					t.Fatalf("sites %+v, want basement with one heartbeat at %s", sl.Sites, now)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method, token := tc.method, tc.token
			if method == "" {
				method = http.MethodGet
			}
			switch token {
			case "":
				token = apiToken
			case "-":
				token = ""
			}
			var body []byte
			if tc.body != "" {
				body = []byte(tc.body)
			}
			r := e.do(method, tc.path, token, body)
			if r.code != tc.code {
				t.Fatalf("%s %s: %d %s, want %d", method, tc.path, r.code, r.body, tc.code)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
			if tc.code/100 != 2 {
				if msg := r.errorMessage(t); !strings.Contains(msg, tc.msg) {
					t.Fatalf("error %q does not say %q", msg, tc.msg)
				}
			}
			if tc.code == http.StatusUnauthorized && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer ") {
				t.Fatalf("401 without a Bearer challenge: %v", r.header)
			}
			if tc.ids != nil {
				if got := incidentIDs(t, r); strings.Join(got, ",") != strings.Join(tc.ids, ",") {
					t.Fatalf("incidents %v, want %v", got, tc.ids)
				}
			}
			if tc.check != nil {
				tc.check(t, r)
			}
		})
	}

	// Nothing above changed the open incident.
	inc, err := e.store.GetIncident(context.Background(), "eth-mainnet-1-1")
	if err != nil || inc.State != failover.StateSyncing || inc.TornDownBy != "" {
		t.Fatalf("the failed requests changed eth-mainnet-1-1: %+v %v", inc, err)
	}
}

func TestAPITeardown(t *testing.T) {
	e := newEnv(t, nil)
	e.seed()
	r := e.do(http.MethodPost, "/v1/incidents/eth-mainnet-1-1/teardown", apiToken, []byte(`{"by": "alice"}`))
	if r.code != http.StatusOK {
		t.Fatalf("teardown: %d %s", r.code, r.body)
	}
	var inc failover.Incident
	if err := json.Unmarshal([]byte(r.body), &inc); err != nil {
		t.Fatal(err)
	}
	if inc.ID != "eth-mainnet-1-1" || inc.State != failover.StateRecovering || inc.TornDownBy != "alice" {
		t.Fatalf("teardown answered %+v, want eth-mainnet-1-1 recovering, torn down by alice", inc)
	}
	stored, err := e.store.GetIncident(context.Background(), "eth-mainnet-1-1")
	if err != nil {
		t.Fatal(err)
	}
	last := stored.History[len(stored.History)-1]
	if last.Event != failover.EventTeardown || !strings.Contains(last.Cause, "alice") {
		t.Fatalf("history does not name alice: %+v", last)
	}
	// Idempotent: a second teardown by someone else changes nothing.
	r = e.do(http.MethodPost, "/v1/incidents/eth-mainnet-1-1/teardown", apiToken, []byte(`{"by": "bob"}`))
	if r.code != http.StatusOK || !strings.Contains(r.body, `"tornDownBy":"alice"`) {
		t.Fatalf("second teardown: %d %s", r.code, r.body)
	}
	again, err := e.store.GetIncident(context.Background(), "eth-mainnet-1-1")
	if err != nil || again.Version != stored.Version {
		t.Fatalf("second teardown wrote: version %q -> %q (%v)", stored.Version, again.Version, err)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	e := newEnv(t, nil)
	if r := e.do(http.MethodGet, "/healthz", "", nil); r.code != 200 || r.body != "ok\n" {
		t.Fatalf("/healthz: %d %q", r.code, r.body)
	}
	e.ready.Store(false)
	r := e.do(http.MethodGet, "/readyz", "", nil)
	if r.code != http.StatusServiceUnavailable || !strings.Contains(r.errorMessage(t), "engine still loading") {
		t.Fatalf("/readyz before ready: %d %s, want 503 naming the cause", r.code, r.body)
	}
	e.ready.Store(true)
	if r := e.do(http.MethodGet, "/readyz", "", nil); r.code != 200 {
		t.Fatalf("/readyz when ready: %d %s", r.code, r.body)
	}

	e.post(sample(t, "validator-down-firing.json"))
	e.post(sample(t, "validator-down-firing.json"))
	e.do(http.MethodPost, webhookPath, "", nil)
	m := e.metrics()
	for _, want := range []string{
		`failoverd_webhook_requests_total{outcome="ok"} 1`,
		`failoverd_webhook_requests_total{outcome="duplicate"} 1`,
		`failoverd_webhook_requests_total{outcome="unauthorized"} 1`,
		`failoverd_webhook_duration_seconds_count 3`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Log(m)
	}
}

func TestAuthDisabled(t *testing.T) {
	e := newEnv(t, func(o *httpapi.Options) {
		o.AuthDisabled, o.WebhookToken, o.APIToken = true, "", ""
	})
	if wr := decodeWebhookReply(t, e.do(http.MethodPost, webhookPath, "", sample(t, "validator-down-firing.json"))); wr.New != 1 {
		t.Fatalf("webhook without a token: %+v", wr)
	}
	for _, p := range []string{"/v1/incidents", "/v1/sites"} {
		if r := e.do(http.MethodGet, p, "", nil); r.code != http.StatusOK {
			t.Fatalf("%s without a token: %d %s", p, r.code, r.body)
		}
	}
	// A token sent anyway does no harm.
	if r := e.do(http.MethodGet, "/v1/incidents", "whatever", nil); r.code != http.StatusOK {
		t.Fatalf("with a stray token: %d %s", r.code, r.body)
	}
}

func TestNewHandlerRequires(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name  string
		tweak func(*httpapi.Options)
		ok    bool
	}{
		{"complete", func(*httpapi.Options) {}, true},
		{"no tokens", func(o *httpapi.Options) { o.WebhookToken, o.APIToken = "", "" }, false},
		{"no webhook token", func(o *httpapi.Options) { o.WebhookToken = "" }, false},
		{"no API token", func(o *httpapi.Options) { o.APIToken = "" }, false},
		{"no tokens, auth disabled", func(o *httpapi.Options) { o.WebhookToken, o.APIToken, o.AuthDisabled = "", "", true }, true},
		{"no observer", func(o *httpapi.Options) { o.Observer = nil }, false},
		{"no teardowner", func(o *httpapi.Options) { o.TearDowner = nil }, false},
		{"no store", func(o *httpapi.Options) { o.Store = nil }, false},
		{"no mapper", func(o *httpapi.Options) { o.Mapper = nil }, false},
		{"minimal", func(o *httpapi.Options) {
			*o = httpapi.Options{Observer: o.Observer, TearDowner: o.TearDowner, Store: o.Store, Mapper: o.Mapper, WebhookToken: "a", APIToken: "b"}
		}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := httpapi.NewHandler(e.options(tc.tweak))
			if tc.ok && (err != nil || h == nil) {
				t.Fatalf("NewHandler: %v", err)
			}
			if !tc.ok && (err == nil || h != nil) {
				t.Fatal("NewHandler built a handler it should refuse")
			}
			if tc.name == "no tokens" && !strings.Contains(err.Error(), "token") {
				t.Fatalf("error %q does not mention tokens", err)
			}
		})
	}
}

func TestNewServerTimeouts(t *testing.T) {
	h := http.NewServeMux()
	srv := httpapi.NewServer("127.0.0.1:0", h)
	if srv.Addr != "127.0.0.1:0" || srv.Handler != http.Handler(h) {
		t.Fatalf("server %q %v does not use its arguments", srv.Addr, srv.Handler)
	}
	for name, d := range map[string]time.Duration{
		"ReadHeaderTimeout": srv.ReadHeaderTimeout, "ReadTimeout": srv.ReadTimeout,
		"WriteTimeout": srv.WriteTimeout, "IdleTimeout": srv.IdleTimeout,
	} {
		if d <= 0 || d > 2*time.Minute {
			t.Errorf("%s = %s, want a bound between 0 and 2m", name, d)
		}
	}
	if srv.ReadHeaderTimeout > 10*time.Second {
		t.Errorf("ReadHeaderTimeout %s lets a slow client hold a connection too long", srv.ReadHeaderTimeout)
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 1<<20 {
		t.Errorf("MaxHeaderBytes %d", srv.MaxHeaderBytes)
	}
	// The write of a delivery (bounded by 10s) must fit in the write timeout,
	// or a slow store would turn a stored delivery into a dropped reply.
	if srv.WriteTimeout <= 10*time.Second {
		t.Errorf("WriteTimeout %s is not above the webhook's 10s store bound", srv.WriteTimeout)
	}
}

// A panic in a handler is a 500 with a JSON body, not a dropped connection.
type panickyStore struct{ failover.Store }

func (panickyStore) ListSites(context.Context) ([]failover.SiteRecord, error) { panic("boom") }

func TestRecoverer(t *testing.T) {
	e := newEnv(t, nil)
	h, err := httpapi.NewHandler(e.options(func(o *httpapi.Options) { o.Store = panickyStore{e.store} }))
	if err != nil {
		t.Fatal(err)
	}
	e.h = h
	r := e.do(http.MethodGet, "/v1/sites", apiToken, nil)
	if r.code != http.StatusInternalServerError || r.errorMessage(t) != "internal error" {
		t.Fatalf("panic: %d %s", r.code, r.body)
	}
}

func TestSnapshotRunsAPI(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	for _, r := range []failover.SnapshotRun{
		{ID: "eth-mainnet-1-snap-1", Validator: "eth-mainnet-1", Provider: "sim", State: failover.RunDone, Snapshot: "fo-eth-mainnet-1-snap-1", CreatedAt: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)},
		{ID: "eth-mainnet-10-snap-1", Validator: "eth-mainnet-10", Provider: "sim", State: failover.RunSyncing, Snapshot: "fo-eth-mainnet-10-snap-1", CreatedAt: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)},
	} {
		if err := e.store.PutSnapshotRun(ctx, &r); err != nil {
			t.Fatal(err)
		}
	}
	if r := e.do(http.MethodGet, "/v1/snapshot-runs", "", nil); r.code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", r.code)
	}
	for path, want := range map[string]int{"/v1/snapshot-runs": 2, "/v1/snapshot-runs?validator=eth-mainnet-1": 1, "/v1/snapshot-runs?validator=nope": 0} {
		r := e.do(http.MethodGet, path, apiToken, nil)
		var got httpapi.SnapshotRunList
		if r.code != http.StatusOK || json.Unmarshal([]byte(r.body), &got) != nil || got.Runs == nil || len(got.Runs) != want {
			t.Fatalf("%s: %d %s, want %d runs", path, r.code, r.body, want)
		}
	}
}
