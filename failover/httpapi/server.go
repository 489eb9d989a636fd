// Package httpapi is failoverd's HTTP surface: the Alertmanager webhook, the
// incident API the CLI is a client of, health and metrics.
package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/alertmanager"
)

// Observer stores what a webhook delivery says (the engine).
type Observer interface {
	Observe(ctx context.Context, obs []failover.Observation, hbs []failover.Heartbeat) (failover.ObserveResult, error)
}

// TearDowner ends an incident on a person's word (the engine).
type TearDowner interface {
	Teardown(ctx context.Context, id, by string) (failover.Incident, error)
}

// Options configure the handler.
type Options struct {
	Observer   Observer
	TearDowner TearDowner
	// Migrator takes approvals and answers the gate; nil: those routes 501.
	Migrator Migrator
	Store    failover.Store
	Mapper   *alertmanager.Mapper
	// WebhookToken and APIToken are the bearer tokens; both are required
	// unless AuthDisabled.
	WebhookToken string
	APIToken     string
	// GateToken (optional) is accepted by GET /v1/owners/{validator} only,
	// so a validator client's gate holds no token that can change anything.
	GateToken    string
	AuthDisabled bool
	// MaxBodyBytes bounds a webhook delivery.
	MaxBodyBytes int64
	// Ready reports whether the daemon can do its work (for /readyz).
	Ready    func() error
	Gatherer prometheus.Gatherer
	Metrics  *Metrics
	Logger   *slog.Logger
	Now      func() time.Time
}

// maxAPIBody bounds bodies of the /v1 API (a teardown names a person).
const maxAPIBody = 64 << 10

// storeTimeout bounds the write of a delivery. The write is not tied to the
// request: once begun it finishes even if Alertmanager hangs up, so that a
// retry finds it done.
const storeTimeout = 10 * time.Second

// NewHandler builds the router.
func NewHandler(o Options) (http.Handler, error) {
	if o.Observer == nil || o.Store == nil || o.Mapper == nil || o.TearDowner == nil {
		return nil, errors.New("httpapi: observer, teardowner, store and mapper are required")
	}
	if !o.AuthDisabled && (o.WebhookToken == "" || o.APIToken == "") {
		return nil, errors.New("httpapi: webhook and API tokens are required unless authentication is disabled")
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 1 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	if o.Ready == nil {
		o.Ready = func() error { return nil }
	}
	if o.Gatherer == nil {
		o.Gatherer = prometheus.NewRegistry()
	}
	h := &handler{o: o}
	r := chi.NewRouter()
	r.Use(h.recoverer)
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok\n") })
	r.Get("/readyz", h.readyz)
	r.Method(http.MethodGet, "/metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	r.Post("/webhook/alertmanager", h.webhook)
	r.Route("/v1", func(r chi.Router) {
		r.Group(func(r chi.Router) {
			r.Use(h.requireToken(o.APIToken))
			r.Get("/incidents", h.listIncidents)
			r.Get("/incidents/{id}", h.getIncident)
			r.Post("/incidents/{id}/teardown", h.teardown)
			r.Get("/sites", h.listSites)
			r.Get("/snapshot-runs", h.listSnapshotRuns)
			if o.Migrator != nil {
				r.Get("/incidents/{id}/plan", h.plan)
				r.Post("/incidents/{id}/approvals", h.approve)
				r.Get("/owners", h.owners)
			}
		})
		if o.Migrator != nil {
			r.With(h.requireToken(o.APIToken, o.GateToken)).Get("/owners/{validator}", h.owner)
		}
	})
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path))
	})
	return r, nil
}

// NewServer wraps a handler in an http.Server with every timeout set, so a
// slow or stuck client can hold nothing for long.
func NewServer(addr string, h http.Handler) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

type handler struct{ o Options }

func (h *handler) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				h.o.Logger.Error("handler panicked", "path", r.URL.Path, "panic", v)
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// authorized compares the bearer token in constant time.
func authorized(r *http.Request, token string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) == 1
}

// requireToken accepts any of tokens; an empty one (a gate token that is
// not configured) never matches, not even an empty bearer.
func (h *handler) requireToken(tokens ...string) func(http.Handler) http.Handler {
	ok := func(r *http.Request) bool {
		for _, t := range tokens {
			if t != "" && authorized(r, t) {
				return true
			}
		}
		return false
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !h.o.AuthDisabled && !ok(r) {
				w.Header().Set("WWW-Authenticate", `Bearer realm="failoverd"`)
				writeError(w, http.StatusUnauthorized, "missing or wrong API token (Authorization: Bearer <token>; the CLI reads FAILOVERD_API_TOKEN)")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// WebhookReply is the body of a 200 to Alertmanager.
type WebhookReply struct {
	New        int            `json:"new"`
	Duplicates int            `json:"duplicates"`
	Heartbeats int            `json:"heartbeats"`
	Ignored    map[string]int `json:"ignored,omitempty"`
}

// webhook takes an Alertmanager delivery. The reply is the contract with the
// sender: 200 only once every new observation is durable (or was already);
// 4xx when the request can never succeed, so Alertmanager does not retry it;
// 5xx when it may succeed later, and then a retry is harmless because
// observations are idempotent.
func (h *handler) webhook(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	outcome := "error"
	defer func() {
		h.o.Metrics.WebhookRequests.WithLabelValues(outcome).Inc()
		h.o.Metrics.WebhookDuration.Observe(time.Since(start).Seconds())
	}()
	if !h.o.AuthDisabled && !authorized(r, h.o.WebhookToken) {
		outcome = "unauthorized"
		w.Header().Set("WWW-Authenticate", `Bearer realm="failoverd"`)
		writeError(w, http.StatusUnauthorized, "missing or wrong webhook token: set http_config.authorization.credentials in the Alertmanager receiver")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.o.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			outcome = "too_large"
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf(
				"delivery larger than %d bytes (webhook.maxBodyBytes); lower max_alerts in the receiver or raise the limit", h.o.MaxBodyBytes))
			return
		}
		outcome = "read_error"
		writeError(w, http.StatusBadRequest, "could not read the request body: "+err.Error())
		return
	}
	msg, err := alertmanager.Decode(body)
	if err != nil {
		outcome = "bad_request"
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	mapped := h.o.Mapper.Map(msg, h.o.Now())
	for reason, n := range mapped.Ignored {
		h.o.Metrics.AlertsIgnored.WithLabelValues(reason).Add(float64(n))
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), storeTimeout)
	defer cancel()
	res, err := h.o.Observer.Observe(ctx, mapped.Observations, mapped.Heartbeats)
	if err != nil {
		outcome = "store_error"
		h.o.Logger.Error("could not store a delivery; Alertmanager will retry", "err", err, "group_key", msg.GroupKey)
		writeError(w, http.StatusServiceUnavailable, "could not store the observations; retry later")
		return
	}
	switch {
	case res.New > 0 || res.Heartbeats > 0:
		outcome = "ok"
	case res.Duplicates > 0:
		outcome = "duplicate"
	default:
		outcome = "ignored" // nothing in it concerns failoverd (or it was empty)
	}
	writeJSON(w, http.StatusOK, WebhookReply{New: res.New, Duplicates: res.Duplicates, Heartbeats: res.Heartbeats, Ignored: mapped.Ignored})
}

func (h *handler) readyz(w http.ResponseWriter, _ *http.Request) {
	if err := h.o.Ready(); err != nil {
		writeError(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
		return
	}
	writeText(w, http.StatusOK, "ok\n")
}

// IncidentList is the body of GET /v1/incidents.
type IncidentList struct {
	Incidents []failover.Incident `json:"incidents"`
}

func (h *handler) listIncidents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	opts := failover.ListOptions{Validator: q.Get("validator"), OpenOnly: q.Get("open") == "true"}
	incs, err := h.o.Store.ListIncidents(r.Context(), opts)
	if err != nil {
		h.storeError(w, "list incidents", err)
		return
	}
	if state := q.Get("state"); state != "" {
		kept := incs[:0]
		for _, inc := range incs {
			if string(inc.State) == state {
				kept = append(kept, inc)
			}
		}
		incs = kept
	}
	if incs == nil {
		incs = []failover.Incident{}
	}
	writeJSON(w, http.StatusOK, IncidentList{Incidents: incs})
}

func (h *handler) getIncident(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	inc, err := h.o.Store.GetIncident(r.Context(), id)
	if errors.Is(err, failover.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("incident %q not found (failoverd incidents list shows them)", id))
		return
	}
	if err != nil {
		h.storeError(w, "get incident", err)
		return
	}
	writeJSON(w, http.StatusOK, inc)
}

// TeardownRequest is the body of POST /v1/incidents/{id}/teardown.
type TeardownRequest struct {
	// By names the person; it goes into the incident history.
	By string `json:"by"`
}

func (h *handler) teardown(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	var req TeardownRequest
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body larger than %d bytes", maxAPIBody))
			return
		}
		writeError(w, http.StatusBadRequest, "could not read the request body: "+err.Error())
		return
	}
	if len(body) > 0 {
		if err := json.Unmarshal(body, &req); err != nil {
			writeError(w, http.StatusBadRequest, "bad teardown request: "+err.Error())
			return
		}
	}
	if strings.TrimSpace(req.By) == "" {
		writeError(w, http.StatusBadRequest, `a teardown must name the person ({"by": "alice"}); it is recorded in the incident history`)
		return
	}
	inc, err := h.o.TearDowner.Teardown(r.Context(), id, req.By)
	if errors.Is(err, failover.ErrNotFound) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("incident %q not found", id))
		return
	}
	if err != nil {
		h.refusalOrError(w, "teardown", err)
		return
	}
	h.o.Logger.Info("teardown requested", "incident", id, "by", req.By, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, inc)
}

// SiteList is the body of GET /v1/sites.
type SiteList struct {
	Sites []failover.SiteRecord `json:"sites"`
}

func (h *handler) listSites(w http.ResponseWriter, r *http.Request) {
	sites, err := h.o.Store.ListSites(r.Context())
	if err != nil {
		h.storeError(w, "list sites", err)
		return
	}
	if sites == nil {
		sites = []failover.SiteRecord{}
	}
	writeJSON(w, http.StatusOK, SiteList{Sites: sites})
}

// SnapshotRunList is the body of GET /v1/snapshot-runs.
type SnapshotRunList struct {
	Runs []failover.SnapshotRun `json:"runs"`
}

func (h *handler) listSnapshotRuns(w http.ResponseWriter, r *http.Request) {
	runs, err := h.o.Store.ListSnapshotRuns(r.Context(), r.URL.Query().Get("validator"))
	if err != nil {
		h.storeError(w, "list snapshot runs", err)
		return
	}
	if runs == nil {
		runs = []failover.SnapshotRun{}
	}
	writeJSON(w, http.StatusOK, SnapshotRunList{Runs: runs})
}

func (h *handler) storeError(w http.ResponseWriter, what string, err error) {
	h.o.Logger.Error(what+" failed", "err", err)
	writeError(w, http.StatusServiceUnavailable, what+" failed; retry later")
}

// ErrorReply is the body of every non-2xx reply.
type ErrorReply struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorReply{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v) // the client may have gone; nothing to do about it
}

func writeText(w http.ResponseWriter, code int, s string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = io.WriteString(w, s)
}
