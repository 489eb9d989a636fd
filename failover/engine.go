package failover

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/failover/config"
)

// Notifier tells people about an incident through their own alerting.
type Notifier interface {
	// Notify reports the incident's current state. Called when an incident
	// becomes ready or failed, and again when it leaves that state.
	Notify(ctx context.Context, inc Incident) error
}

// Options configure an Engine.
type Options struct {
	Config *config.Config
	Store  Store
	// Providers are the configured clouds; cloud.providers (and a
	// validator's providers) name them in order of preference.
	Providers []cloud.Provider
	// Provider is a shorthand for a single provider.
	Provider cloud.Provider
	// Sync reports sync status for standbys of providers that do not
	// implement cloud.SyncReporter themselves: the standby agent client.
	Sync cloud.SyncReporter
	// Bootstrap renders what a standby boots with (clients, agent and its
	// credentials) for a provider; nil, or nil bytes, for none (the
	// simulated cloud). It must be deterministic: the same incident gives
	// the same bytes, so a repeated create sends an identical request.
	Bootstrap func(ctx context.Context, inc Incident, provider string) ([]byte, error)
	Notifier  Notifier // may be nil
	Now       func() time.Time
	Logger    *slog.Logger
	Metrics   *Metrics
	// Registerer receives the garbage collector's and keeper's metrics (may be nil).
	Registerer prometheus.Registerer
	// Migration configures key moves (approvals, gates, the standby agent).
	Migration MigrationOptions
}

// Engine turns stored observations into incident progress. Webhooks only add
// observations (Observe); the reconcile loop (Run) looks at stored state and
// the cloud and takes the next step, level-triggered: it does the right thing
// whatever happened before, including a crash halfway through a step.
type Engine struct {
	cfg       *config.Config
	store     Store
	providers map[string]cloud.Provider
	sync      cloud.SyncReporter
	bootstrap func(ctx context.Context, inc Incident, provider string) ([]byte, error)
	notifier  Notifier
	now       func() time.Time
	log       *slog.Logger
	m         *Metrics
	gcm       *GCMetrics
	km        *KeeperMetrics
	mm        *migrationMetrics
	mig       MigrationOptions
	queue     *queue

	// capMu makes "count the standbys, then record the intent to create one"
	// atomic, so two workers can never both take the last slot. Only one
	// engine reconciles at a time (the leader), so a process lock suffices.
	capMu sync.Mutex

	readyOnce sync.Once
	ready     chan struct{}

	// known is each validator's alert ledger as this process last read or
	// wrote it, so that a duplicate (most deliveries) is recognised without
	// touching the store. Safe with several replicas writing: the ledger only
	// ever gains information, so an observation that changes nothing in an
	// older version of it changes nothing in a newer one either.
	knownMu sync.RWMutex
	known   map[string]map[string]AlertRecord

	// holders are the open incidents that hold (or are creating) a standby,
	// for the concurrent-standby cap; guarded by capMu. Rebuilt from the
	// store at every resync and kept current by every incident write.
	holders       map[string]bool
	holdersLoaded bool
	// budgetUsed is the month's standby-hours, recomputed at most once per
	// resync interval (a full scan of incidents); guarded by capMu.
	budgetUsed float64
	budgetAt   time.Time

	// notified remembers when each incident's page was last posted, so a
	// ready or failed incident is re-posted before the page expires. Lost on
	// restart on purpose: the first pass after a restart posts again, in case
	// Alertmanager lost it too.
	notifiedMu sync.Mutex
	notified   map[string]notice

	// sites watches the Watchdog heartbeats for whole-site outages (site.go).
	sites siteWatch
}

// RenotifyEvery is how often the page of a ready or failed incident is
// posted again while it lasts; well within the alerts' one-hour lifetime.
const RenotifyEvery = 20 * time.Minute

// New builds an engine. Config, Store, Provider and Sync are required.
func New(o Options) (*Engine, error) {
	if o.Provider != nil {
		o.Providers = append(o.Providers, o.Provider)
	}
	if o.Config == nil || o.Store == nil || len(o.Providers) == 0 {
		return nil, errors.New("engine: config, store and at least one provider are required")
	}
	providers := map[string]cloud.Provider{}
	for _, p := range o.Providers {
		providers[p.Name()] = p
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	return &Engine{
		cfg: o.Config, store: o.Store, providers: providers, sync: o.Sync, bootstrap: o.Bootstrap, notifier: o.Notifier,
		now: o.Now, log: o.Logger, m: o.Metrics, queue: newQueue(), ready: make(chan struct{}),
		gcm:      newGCMetrics(o.Registerer),
		km:       newKeeperMetrics(o.Registerer),
		mm:       newMigrationMetrics(o.Registerer),
		mig:      o.Migration,
		notified: map[string]notice{}, known: map[string]map[string]AlertRecord{}, holders: map[string]bool{},
	}, nil
}

// ObserveResult counts what a delivery brought.
type ObserveResult struct {
	New        int // observations that changed a validator's ledger (now durable)
	Duplicates int // observations that changed nothing
	Heartbeats int // heartbeats stored
}

// maxCASRetries bounds compare-and-swap retries under contention; beyond it
// the caller gets an error (and Alertmanager retries the delivery).
const maxCASRetries = 16

// Observe stores what a delivery says. It returns nil only once every new
// observation is durable; duplicates are dropped without a write. It makes
// no cloud call: the reconcile loop acts on what was stored.
func (e *Engine) Observe(ctx context.Context, obs []Observation, hbs []Heartbeat) (ObserveResult, error) {
	var res ObserveResult
	byValidator := map[string][]Observation{}
	var order []string
	for _, o := range obs {
		if _, ok := byValidator[o.Validator]; !ok {
			order = append(order, o.Validator)
		}
		byValidator[o.Validator] = append(byValidator[o.Validator], o)
	}
	var errs []error
	for _, name := range order {
		changed, err := e.observeValidator(ctx, name, byValidator[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n := len(byValidator[name])
		if changed {
			res.New += n
			e.m.Observations.WithLabelValues("new").Add(float64(n))
			e.queue.add(name, time.Now())
		} else {
			res.Duplicates += n
			e.m.Observations.WithLabelValues("duplicate").Add(float64(n))
			e.m.Duplicates.Add(float64(n))
		}
	}
	for _, hb := range hbs {
		stored, err := e.observeHeartbeat(ctx, hb)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if stored {
			res.Heartbeats++
			e.m.Heartbeats.WithLabelValues(hb.Site, "stored").Inc()
			e.siteHeard(ctx, hb.Site)
		} else {
			e.m.Heartbeats.WithLabelValues(hb.Site, "duplicate").Inc()
			e.m.Duplicates.Inc()
		}
	}
	return res, errors.Join(errs...)
}

func (e *Engine) observeValidator(ctx context.Context, name string, obs []Observation) (bool, error) {
	if e.alreadyKnown(name, obs) {
		return false, nil
	}
	for range maxCASRetries {
		v, err := e.store.GetValidator(ctx, name)
		if errors.Is(err, ErrNotFound) {
			v = ValidatorRecord{Name: name}
		} else if err != nil {
			return false, fmt.Errorf("read validator %s: %w", name, err)
		}
		if !v.Apply(obs) {
			e.remember(v)
			return false, nil
		}
		err = e.store.PutValidator(ctx, &v)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("store observations of %s: %w", name, err)
		}
		e.remember(v)
		return true, nil
	}
	return false, fmt.Errorf("store observations of %s: %w after %d attempts", name, ErrConflict, maxCASRetries)
}

func (e *Engine) alreadyKnown(name string, obs []Observation) bool {
	e.knownMu.RLock()
	defer e.knownMu.RUnlock()
	ledger, ok := e.known[name]
	return ok && !ValidatorRecord{Name: name, Alerts: ledger}.Changes(obs)
}

func (e *Engine) remember(v ValidatorRecord) {
	ledger := maps.Clone(v.Alerts) // records are values: a shallow copy is a copy
	e.knownMu.Lock()
	e.known[v.Name] = ledger
	e.knownMu.Unlock()
}

func (e *Engine) observeHeartbeat(ctx context.Context, hb Heartbeat) (bool, error) {
	for range maxCASRetries {
		s, err := e.store.GetSite(ctx, hb.Site)
		if errors.Is(err, ErrNotFound) {
			s = SiteRecord{Name: hb.Site}
		} else if err != nil {
			return false, fmt.Errorf("read site %s: %w", hb.Site, err)
		}
		// An HA pair delivers every heartbeat twice; within the resolution
		// a second copy tells nothing new and is not written.
		if !s.LastHeartbeat.IsZero() && hb.At.Sub(s.LastHeartbeat) < e.cfg.Heartbeat.Resolution {
			return false, nil
		}
		s.LastHeartbeat = hb.At.UTC()
		s.HeartbeatsSeen++
		err = e.store.PutSite(ctx, &s)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("store heartbeat of %s: %w", hb.Site, err)
		}
		e.m.LastHeartbeat.WithLabelValues(hb.Site).Set(float64(hb.At.Unix()))
		return true, nil
	}
	return false, fmt.Errorf("store heartbeat of %s: %w after %d attempts", hb.Site, ErrConflict, maxCASRetries)
}

// Ready is closed once the engine has loaded the stored state and reconciles.
func (e *Engine) Ready() <-chan struct{} { return e.ready }

// Run reconciles until ctx ends: workers take validators from the queue, and
// every resyncInterval all known validators are queued again, so nothing
// depends on a webhook arriving at the right moment.
func (e *Engine) Run(ctx context.Context) error {
	workers := max(e.cfg.Engine.Workers, 1)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.work(ctx)
		}()
	}
	if every := e.cfg.Cloud.GC.Interval; every > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.collectEvery(ctx, every)
		}()
	}
	if e.keeps() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.keepEvery(ctx, e.cfg.Engine.ResyncInterval)
		}()
	}
	ticker := time.NewTicker(e.cfg.Engine.ResyncInterval)
	defer ticker.Stop()
	for {
		if err := e.resync(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("resync failed; retrying at the next interval", "err", err)
		} else {
			e.readyOnce.Do(func() { close(e.ready) })
		}
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-ticker.C:
		}
	}
}

func (e *Engine) collectEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		res, err := e.CollectGarbage(ctx)
		if err != nil && ctx.Err() == nil {
			e.log.Warn("garbage collection failed", "err", err)
			continue
		}
		if len(res.Orphans) > 0 || res.Undated > 0 {
			e.log.Info("garbage collection", "orphans", len(res.Orphans), "deleted", len(res.Deleted),
				"young", res.Young, "undated", res.Undated, "dry_run", e.cfg.Cloud.GC.DryRun)
		}
	}
}

// Trigger queues a validator for an immediate reconcile.
func (e *Engine) Trigger(name string) { e.queue.add(name, time.Now()) }

func (e *Engine) resync(ctx context.Context) error {
	vs, err := e.store.ListValidators(ctx)
	if err != nil {
		return fmt.Errorf("list validators: %w", err)
	}
	for _, v := range vs {
		e.queue.add(v.Name, time.Now())
	}
	e.checkSites(ctx, vs)
	// The holder index is rebuilt under capMu so that no admission can record
	// an intent between the listing and the swap and then be forgotten.
	e.capMu.Lock()
	open, err := e.store.ListIncidents(ctx, ListOptions{OpenOnly: true})
	if err != nil {
		e.capMu.Unlock()
		return fmt.Errorf("list incidents: %w", err)
	}
	counts := map[State]int{}
	holders := map[string]bool{}
	for _, inc := range open {
		counts[inc.State]++
		if holdsStandby(inc) {
			holders[inc.ID] = true
		}
	}
	e.holders, e.holdersLoaded = holders, true
	e.capMu.Unlock()
	for _, s := range States {
		if s.Open() {
			e.m.Incidents.WithLabelValues(string(s)).Set(float64(counts[s]))
		}
	}
	return nil
}

func (e *Engine) work(ctx context.Context) {
	for {
		name, ok := e.queue.get(ctx)
		if !ok {
			return
		}
		after, err := e.Reconcile(ctx, name)
		if err != nil && ctx.Err() == nil {
			e.m.ReconcileErrors.Inc()
			e.log.Warn("reconcile failed; will retry", "validator", name, "err", err, "retry_in", after)
		}
		if after > 0 {
			e.queue.add(name, time.Now().Add(after))
		}
		e.queue.done(name)
	}
}

// maxStepsPerReconcile bounds how many transitions one pass takes, so that a
// bug can never spin a worker.
const maxStepsPerReconcile = 8

// Reconcile takes a validator as far as it can go now and says when it wants
// to look again (0: only when something new arrives or at the next resync).
func (e *Engine) Reconcile(ctx context.Context, name string) (time.Duration, error) {
	for range maxStepsPerReconcile {
		r, err := e.step(ctx, name)
		if err != nil {
			if errors.Is(err, ErrConflict) {
				continue // somebody else wrote: read again and redo the step
			}
			return e.cfg.Engine.BackoffBase, err
		}
		if !r.again {
			return r.after, nil
		}
	}
	return e.cfg.Engine.BackoffBase, nil
}

// result says what the reconciler should do after one step.
type result struct {
	again bool          // take another step now
	after time.Duration // otherwise look again after this long (0: no timer)
}

func wait(after time.Duration) result { return result{after: after} }

var again = result{again: true}

func (e *Engine) step(ctx context.Context, name string) (result, error) {
	v, err := e.store.GetValidator(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return result{}, nil
	}
	if err != nil {
		return result{}, fmt.Errorf("read validator %s: %w", name, err)
	}
	if v.OpenIncident == "" {
		return e.maybeOpen(ctx, v)
	}
	inc, err := e.store.GetIncident(ctx, v.OpenIncident)
	if errors.Is(err, ErrNotFound) {
		// The validator was claimed but the crash came before the incident
		// was written: write it now, as it would have been.
		return e.createIncident(ctx, v, v.OpenIncident)
	}
	if err != nil {
		return result{}, fmt.Errorf("read incident %s: %w", v.OpenIncident, err)
	}
	firing, _ := v.Firing()
	switch inc.State {
	case StateConfirming:
		return e.confirm(ctx, &inc, firing)
	case StateProvisioning:
		return e.provision(ctx, &inc, firing)
	case StateSyncing, StateReady:
		return e.watchSync(ctx, &inc, firing)
	case StateMigrating:
		return e.migrating(ctx, &inc)
	case StateMigrated:
		return e.migrated(ctx, &inc)
	case StateFailingBack:
		return e.failingBack(ctx, &inc)
	case StateRecovering:
		return e.recover(ctx, &inc, v)
	case StateClosed:
		return e.release(ctx, v, inc)
	case StateFailed:
		// A person decides; teardown moves it on. Until then, keep paging.
		if e.notifier == nil {
			return result{}, nil
		}
		if !e.renotify(ctx, inc) {
			// The page did not get through: try again soon, not in 20 minutes.
			return wait(max(e.cfg.Engine.BackoffBase, time.Second)), nil
		}
		return wait(RenotifyEvery), nil
	default:
		// A state this build does not know (a newer failoverd wrote it):
		// stop here rather than guess.
		e.log.Error("incident in a state this version does not know; leaving it alone", "incident", inc.ID, "state", inc.State)
		return result{}, nil
	}
}

// maybeOpen opens an incident for an outage no incident has handled yet.
func (e *Engine) maybeOpen(ctx context.Context, v ValidatorRecord) (result, error) {
	unhandled, _ := v.Unhandled()
	if !unhandled {
		return result{}, nil
	}
	if _, ok := e.cfg.Validator(v.Name); !ok {
		e.log.Warn("alerts fire for a validator that is no longer in the fleet; not opening an incident", "validator", v.Name)
		return result{}, nil
	}
	// Claim the validator first (compare-and-swap on its record): of two
	// replicas or two workers, exactly one wins; the loser re-reads.
	v.Seq++
	id := fmt.Sprintf("%s-%d", v.Name, v.Seq)
	v.OpenIncident = id
	if err := e.store.PutValidator(ctx, &v); err != nil {
		return result{}, fmt.Errorf("claim validator %s for incident %s: %w", v.Name, id, err)
	}
	return e.createIncident(ctx, v, id)
}

func (e *Engine) createIncident(ctx context.Context, v ValidatorRecord, id string) (result, error) {
	t := e.now().UTC()
	_, since := v.Unhandled()
	if since.IsZero() {
		_, since = v.Firing()
	}
	if since.IsZero() || since.After(t) {
		since = t
	}
	inc := Incident{
		ID: id, Validator: v.Name, Site: v.Site, State: StateConfirming,
		CreatedAt: t, UpdatedAt: t, FiringSince: since,
	}
	if vc, ok := e.cfg.Validator(v.Name); ok {
		inc.Chain, inc.Network = vc.Chain, vc.Network
		if vc.Site != "" {
			inc.Site = vc.Site
		}
	}
	inc.Reason = fmt.Sprintf("alerts firing since %s; confirming for %s before provisioning a standby",
		since.Format(time.RFC3339), e.cfg.Engine.ConfirmFor)
	if cause := e.siteCause(ctx, v); cause != "" {
		inc.Reason = cause + "; " + inc.Reason
	}
	inc.record(Entry{At: t, To: StateConfirming, Cause: "outage observed: " + inc.Reason})
	err := e.store.PutIncident(ctx, &inc)
	if errors.Is(err, ErrConflict) {
		return again, nil // already written by an earlier attempt
	}
	if err != nil {
		return result{}, fmt.Errorf("create incident %s: %w", id, err)
	}
	e.m.IncidentsOpened.Inc()
	e.log.Info("incident opened", "incident", id, "validator", v.Name, "site", inc.Site)
	return again, nil
}

// transition moves inc through ev and stores it. The caller has already
// changed whatever else the step changed; it is all written at once.
func (e *Engine) transition(ctx context.Context, inc *Incident, ev Event, reason string) error {
	from := inc.State
	next, err := Transition(from, ev)
	if err != nil {
		return fmt.Errorf("incident %s: %w", inc.ID, err)
	}
	t := e.now().UTC()
	inc.record(Entry{At: t, From: from, To: next, Event: ev, Cause: reason})
	inc.State, inc.Reason, inc.UpdatedAt = next, reason, t
	inc.Attempts, inc.NextAttemptAt = 0, time.Time{}
	e.stampCost(inc)
	if err := e.store.PutIncident(ctx, inc); err != nil {
		return fmt.Errorf("store incident %s (%s -> %s): %w", inc.ID, from, next, err)
	}
	e.track(*inc)
	e.m.Transitions.WithLabelValues(string(from), string(next)).Inc()
	e.log.Info("incident moved", "incident", inc.ID, "validator", inc.Validator, "from", from, "to", next, "event", ev, "reason", reason)
	if e.notifier != nil && (next == StateReady || next == StateFailed || from == StateReady || from == StateFailed) {
		e.notify(ctx, *inc)
	}
	return nil
}

// update stores inc without a transition (a new reason, a sync report, an attempt).
func (e *Engine) update(ctx context.Context, inc *Incident) error {
	inc.UpdatedAt = e.now().UTC()
	e.stampCost(inc)
	if err := e.store.PutIncident(ctx, inc); err != nil {
		return fmt.Errorf("store incident %s: %w", inc.ID, err)
	}
	e.track(*inc)
	return nil
}

// stampCost refreshes the standby's hours and estimated cost so far, so
// that every read of an incident shows what it has cost.
func (e *Engine) stampCost(inc *Incident) {
	s := inc.Standby
	if s == nil || s.CreatedAt == nil {
		return
	}
	end := e.now()
	if s.DeletedAt != nil {
		end = *s.DeletedAt
	}
	h := max(end.Sub(*s.CreatedAt).Hours(), 0)
	s.Hours = math.Round(h*100) / 100
	s.CostUSD = math.Round(h*s.HourlyUSD*100) / 100
}

// track keeps the standby-holder index current after an incident write.
func (e *Engine) track(inc Incident) {
	e.capMu.Lock()
	defer e.capMu.Unlock()
	e.trackLocked(inc)
}

func (e *Engine) trackLocked(inc Incident) {
	if inc.State.Open() && holdsStandby(inc) {
		e.holders[inc.ID] = true
	} else {
		delete(e.holders, inc.ID)
	}
}

// notice is the last page Alertmanager took for an incident.
type notice struct {
	at    time.Time
	state State
}

// notify posts the incident's page; it reports whether Alertmanager took it.
func (e *Engine) notify(ctx context.Context, inc Incident) bool {
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := e.notifier.Notify(nctx, inc); err != nil {
		e.m.Notifications.WithLabelValues("error").Inc()
		e.log.Warn("could not tell Alertmanager; will try again", "incident", inc.ID, "state", inc.State, "err", err)
		return false
	}
	e.m.Notifications.WithLabelValues("ok").Inc()
	e.notifiedMu.Lock()
	if inc.State == StateReady || inc.State == StateFailed {
		e.notified[inc.ID] = notice{at: e.now(), state: inc.State}
	} else {
		delete(e.notified, inc.ID)
	}
	e.notifiedMu.Unlock()
	return true
}

// renotify posts the page of a ready or failed incident again when it is due.
// It reports false when the page is due and Alertmanager did not take it.
// Only a page of the same state counts as sent: a failure whose post was
// refused is not held back by the ready page before it.
func (e *Engine) renotify(ctx context.Context, inc Incident) bool {
	e.notifiedMu.Lock()
	last, ok := e.notified[inc.ID]
	e.notifiedMu.Unlock()
	if ok && last.state == inc.State && e.now().Sub(last.at) < RenotifyEvery {
		return true
	}
	return e.notify(ctx, inc)
}

func (e *Engine) confirm(ctx context.Context, inc *Incident, firing bool) (result, error) {
	if !firing {
		return again, e.transition(ctx, inc, EventResolved, "alerts resolved during the hold-down; nothing was created")
	}
	until := inc.FiringSince.Add(e.cfg.Engine.ConfirmFor)
	if t := e.now(); t.Before(until) {
		return wait(until.Sub(t)), nil
	}
	return again, e.transition(ctx, inc, EventConfirmed,
		fmt.Sprintf("outage confirmed: alerts fired for %s; provisioning a standby", e.cfg.Engine.ConfirmFor))
}

// toRecovering resolves an incident that has, or may have, a standby.
func (e *Engine) toRecovering(ctx context.Context, inc *Incident) (result, error) {
	t := e.now().UTC()
	warm := t.Add(e.cfg.Engine.KeepWarm)
	inc.ResolvedAt, inc.KeepWarmUntil = &t, &warm
	return again, e.transition(ctx, inc, EventResolved,
		fmt.Sprintf("alerts resolved; keeping the standby warm until %s in case they fire again", warm.Format(time.RFC3339)))
}

// backingOff reports whether the current step must wait, and for how long.
func (e *Engine) backingOff(inc *Incident) (time.Duration, bool) {
	if d := inc.NextAttemptAt.Sub(e.now()); d > 0 {
		return d, true
	}
	return 0, false
}

// failedAttempt records a failed attempt at the current step and schedules
// the next with exponential backoff and jitter; past MaxAttempts the incident
// fails and a person is paged.
func (e *Engine) failedAttempt(ctx context.Context, inc *Incident, what string, err error) (result, error) {
	inc.Attempts++
	if inc.Attempts >= e.cfg.Engine.MaxAttempts {
		return result{}, e.transition(ctx, inc, EventFail,
			fmt.Sprintf("%s failed %d times in a row (last: %v); a person must decide", what, inc.Attempts, err))
	}
	d := e.backoff(inc.Attempts)
	inc.NextAttemptAt = e.now().Add(d).UTC()
	inc.Reason = fmt.Sprintf("%s failed (attempt %d of %d): %v; retrying in %s", what, inc.Attempts, e.cfg.Engine.MaxAttempts, err, d.Round(time.Second))
	inc.record(Entry{At: e.now().UTC(), Cause: inc.Reason})
	if uerr := e.update(ctx, inc); uerr != nil {
		return result{}, uerr
	}
	return wait(d), nil
}

func (e *Engine) backoff(attempt int) time.Duration {
	d := e.cfg.Engine.BackoffBase << min(attempt-1, 30)
	if d <= 0 || d > e.cfg.Engine.BackoffMax {
		d = e.cfg.Engine.BackoffMax
	}
	// Up to 20% jitter so that many incidents do not retry in lockstep.
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// slot is one place a standby may be created: a provider and one of its zones.
type slot struct {
	provider cloud.Provider
	zone     string
}

func (s slot) String() string { return s.provider.Name() + "/" + s.zone }

// slots lists where the validator's standby may go, in order of preference:
// each provider's zones in order, then the next provider.
func (e *Engine) slots(vc config.Validator) []slot {
	var out []slot
	for _, name := range e.cfg.ProvidersFor(vc) {
		p, ok := e.providers[name]
		if !ok {
			continue
		}
		zones := e.cfg.ZonesFor(name)
		if len(zones) == 0 {
			zones = []string{""}
		}
		for _, z := range zones {
			out = append(out, slot{provider: p, zone: z})
		}
	}
	return out
}

func (e *Engine) provision(ctx context.Context, inc *Incident, firing bool) (result, error) {
	if !firing {
		return e.toRecovering(ctx, inc)
	}
	if d, ok := e.backingOff(inc); ok {
		return wait(d), nil
	}
	vc, ok := e.cfg.Validator(inc.Validator)
	if !ok {
		return result{}, e.transition(ctx, inc, EventFail, "validator is no longer in the fleet configuration; a person must decide")
	}
	slots := e.slots(vc)
	if len(slots) == 0 {
		return result{}, e.transition(ctx, inc, EventFail, fmt.Sprintf(
			"none of the validator's providers %v is running in this failoverd; fix cloud.providers and tear down", e.cfg.ProvidersFor(vc)))
	}
	name := cloud.NameFor(inc.ID)

	if res, proceed, err := e.admit(ctx, inc, name, slots); !proceed || err != nil {
		return res, err
	}

	at := slots[inc.ZoneIndex%len(slots)]
	spec := cloud.StandbySpec{
		Name: name, IncidentID: inc.ID, Validator: inc.Validator, Site: inc.Site,
		Chain: vc.Chain, Network: vc.Network, Zone: at.zone,
	}
	if e.bootstrap != nil {
		ud, err := e.bootstrap(ctx, *inc, at.provider.Name())
		if err != nil {
			return result{}, e.transition(ctx, inc, EventFail, fmt.Sprintf(
				"cannot render the standby's bootstrap: %v; fix the configuration (failoverd bootstrap render shows it), then tear down", err))
		}
		spec.UserData = ud
	}
	cctx, cancel := context.WithTimeout(ctx, e.cfg.Engine.CallTimeout)
	sb, err := e.call(at.provider, "ensure", func() (cloud.Standby, error) { return at.provider.Ensure(cctx, spec) })
	cancel()
	if err != nil {
		if errors.Is(err, cloud.ErrCapacity) || errors.Is(err, cloud.ErrQuota) {
			return e.nextZone(ctx, inc, slots, at, err)
		}
		if !cloud.Retryable(err) {
			return result{}, e.transition(ctx, inc, EventFail, fmt.Sprintf("the cloud refused the standby: %v; a person must decide", err))
		}
		return e.failedAttempt(ctx, inc, "creating the standby in "+at.String(), err)
	}
	adoptStandby(inc, sb)
	inc.Intent = nil
	return again, e.transition(ctx, inc, EventProvisioned,
		fmt.Sprintf("standby %s exists in %s/%s (%s); waiting for it to sync", sb.Name, sb.Provider, sb.Zone, sb.State))
}

// admit checks the caps and records the intent to create the standby, under
// capMu so that the check and the claim are one step.
func (e *Engine) admit(ctx context.Context, inc *Incident, name string, slots []slot) (result, bool, error) {
	res, proceed, spent, err := e.admitLocked(ctx, inc, name, slots)
	if spent != "" {
		return result{}, false, e.transition(ctx, inc, EventFail, spent)
	}
	return res, proceed, err
}

// admitLocked does admit's work under capMu. It returns spent (a reason)
// when the budget refuses the standby; the caller fails the incident after
// the lock is released.
func (e *Engine) admitLocked(ctx context.Context, inc *Incident, name string, slots []slot) (res result, proceed bool, spent string, err error) {
	e.capMu.Lock()
	defer e.capMu.Unlock()
	if inc.Intent == nil || inc.Intent.Action != "ensure-standby" {
		if err := e.loadHoldersLocked(ctx); err != nil {
			return result{}, false, "", err
		}
		var holders []string
		for id := range e.holders {
			if id != inc.ID {
				holders = append(holders, id)
			}
		}
		sort.Strings(holders)
		if len(holders) >= e.cfg.Caps.MaxConcurrentStandbys {
			reason := fmt.Sprintf("waiting: %d of %d standbys in use (%v); raise caps.maxConcurrentStandbys or tear one down",
				len(holders), e.cfg.Caps.MaxConcurrentStandbys, holders)
			if inc.Reason != reason {
				inc.Reason = reason
				inc.record(Entry{At: e.now().UTC(), Cause: reason})
				if err := e.putLocked(ctx, inc); err != nil {
					return result{}, false, "", err
				}
			}
			return wait(e.cfg.Engine.PollInterval), false, "", nil
		}
		used, err := e.budgetLocked(ctx)
		if err != nil {
			return result{}, false, "", err
		}
		if budget := e.cfg.Caps.MonthlyStandbyHours; used >= budget {
			return result{}, false, fmt.Sprintf(
				"the monthly standby budget is spent (%.1f of %.0f hours); raise caps.monthlyStandbyHours or wait for next month, then tear down and let the alert open a new incident",
				used, budget), nil
		}
	}
	// Record the intent before the call: after a crash the same idempotent
	// call is repeated, and a resolve in between still knows what to delete.
	t := e.now().UTC()
	at := slots[inc.ZoneIndex%len(slots)]
	inc.Intent = &Intent{Action: "ensure-standby", Target: at.provider.Name() + "/" + name, At: t}
	if inc.Standby == nil || inc.Standby.State == cloud.StateDeleted {
		// A deleted standby's span is closed; it stays in the budget.
		if old := inc.Standby; old != nil && old.DeletedAt != nil {
			if span, ok := billedSpan(old, t); ok {
				inc.PastStandbys = append(inc.PastStandbys, span)
			}
		}
		inc.Standby = &Standby{Name: name, State: "requested"}
	}
	if inc.Standby.RequestedAt == nil {
		inc.Standby.RequestedAt = &t
	}
	inc.Standby.Provider, inc.Standby.Zone = at.provider.Name(), at.zone
	inc.Standby.HourlyUSD = e.cfg.HourlyCost(at.provider.Name())
	inc.Reason = fmt.Sprintf("creating standby %s in %s", name, at)
	if err := e.putLocked(ctx, inc); err != nil {
		return result{}, false, "", err
	}
	return result{}, true, "", nil
}

// putLocked is update for callers that hold capMu.
func (e *Engine) putLocked(ctx context.Context, inc *Incident) error {
	inc.UpdatedAt = e.now().UTC()
	e.stampCost(inc)
	if err := e.store.PutIncident(ctx, inc); err != nil {
		// The write may have taken effect with its answer lost: count a
		// would-be holder as one until the next resync reads the store,
		// so that the cap never admits past it.
		if inc.State.Open() && holdsStandby(*inc) {
			e.holders[inc.ID] = true
		}
		return fmt.Errorf("store incident %s: %w", inc.ID, err)
	}
	e.trackLocked(*inc)
	return nil
}

// loadHoldersLocked builds the holder index once, for an engine whose
// reconcile runs before its first resync (tests, the first pass).
func (e *Engine) loadHoldersLocked(ctx context.Context) error {
	if e.holdersLoaded {
		return nil
	}
	open, err := e.store.ListIncidents(ctx, ListOptions{OpenOnly: true})
	if err != nil {
		return fmt.Errorf("list incidents for the standby cap: %w", err)
	}
	for _, o := range open {
		if holdsStandby(o) {
			e.holders[o.ID] = true
		}
	}
	e.holdersLoaded = true
	return nil
}

// budgetLocked returns the month's standby-hours, scanning every incident at
// most once per resync interval: admission of a standby must not cost a scan
// of the whole history each time. Within that interval the figure can be
// stale by a few standby-minutes; the cap refuses new standbys, it never
// stops running ones.
func (e *Engine) budgetLocked(ctx context.Context) (float64, error) {
	t := e.now()
	if !e.budgetAt.IsZero() && t.Sub(e.budgetAt) < e.cfg.Engine.ResyncInterval && t.Month() == e.budgetAt.Month() {
		return e.budgetUsed + t.Sub(e.budgetAt).Hours()*float64(len(e.holders)), nil
	}
	all, err := e.store.ListIncidents(ctx, ListOptions{})
	if err != nil {
		return 0, fmt.Errorf("list incidents for the budget: %w", err)
	}
	// The snapshot keeper's nodes spend the same budget.
	runs, err := e.store.ListSnapshotRuns(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("list snapshot runs for the budget: %w", err)
	}
	for _, r := range runs {
		all = append(all, Incident{Standby: r.Standby})
	}
	e.budgetUsed, e.budgetAt = StandbyHours(all, t), t
	e.m.StandbyHours.Set(e.budgetUsed)
	return e.budgetUsed, nil
}

// holdsStandby reports whether an incident has, or is about to have, a standby.
func holdsStandby(inc Incident) bool {
	if inc.Intent != nil && inc.Intent.Action == "ensure-standby" {
		return true
	}
	return inc.Standby != nil && inc.Standby.State != cloud.StateDeleted
}

// nextZone moves on to the next placement slot (zone, then provider) after
// a capacity or quota error; once every slot has failed, the round counts as
// one failed attempt.
func (e *Engine) nextZone(ctx context.Context, inc *Incident, slots []slot, at slot, cause error) (result, error) {
	inc.ZoneIndex++
	if inc.ZoneIndex%len(slots) != 0 {
		next := slots[inc.ZoneIndex%len(slots)]
		inc.Reason = fmt.Sprintf("zone %s: %v; trying %s", at, cause, next)
		inc.record(Entry{At: e.now().UTC(), Cause: inc.Reason})
		return again, e.update(ctx, inc)
	}
	names := make([]string, len(slots))
	for i, s := range slots {
		names[i] = s.String()
	}
	return e.failedAttempt(ctx, inc, fmt.Sprintf("creating the standby in every zone (%s)", strings.Join(names, ", ")), cause)
}

// adoptStandby records what the cloud says of the incident's standby. A
// different creation time is another node (the old one was lost and made
// again under the same name): the old one's hours stay in the budget, up to
// when the new one was created.
//
// A node whose creation was never read (its answer lost) and that appears
// long after it was requested may be the second of two: the first was made,
// lost while failoverd was down, and made again. The time from the request
// to the creation read now is billed too; for a node that was merely slow
// to appear that over-counts a little, which a budget can afford.
func adoptStandby(inc *Incident, sb cloud.Standby) {
	old := inc.Standby
	switch {
	case old == nil || sb.CreatedAt.IsZero():
	case old.CreatedAt != nil && !sb.CreatedAt.Equal(*old.CreatedAt):
		end := sb.CreatedAt.UTC()
		if old.DeletedAt != nil && old.DeletedAt.Before(end) {
			end = *old.DeletedAt
		}
		inc.PastStandbys = append(inc.PastStandbys, Span{From: *old.CreatedAt, To: end})
	case old.CreatedAt == nil && old.RequestedAt != nil && sb.CreatedAt.Sub(*old.RequestedAt) > unreadCreateSlack:
		inc.PastStandbys = append(inc.PastStandbys, Span{From: *old.RequestedAt, To: sb.CreatedAt.UTC()})
	}
	inc.Standby = standbyFrom(sb, inc.Standby)
}

// unreadCreateSlack is how long after its request a node may appear and
// still be taken for the one requested (clouds answer within seconds).
const unreadCreateSlack = 5 * time.Minute

func standbyFrom(sb cloud.Standby, old *Standby) *Standby {
	s := &Standby{Provider: sb.Provider, Name: sb.Name, Zone: sb.Zone, State: sb.State}
	if old != nil {
		s.HourlyUSD = old.HourlyUSD
	}
	if !sb.CreatedAt.IsZero() {
		c := sb.CreatedAt.UTC()
		s.CreatedAt = &c
	}
	if old != nil {
		s.Sync, s.RequestedAt = old.Sync, old.RequestedAt
		if s.CreatedAt == nil {
			s.CreatedAt = old.CreatedAt
		}
	}
	return s
}

// watchSync polls a syncing or ready standby.
func (e *Engine) watchSync(ctx context.Context, inc *Incident, firing bool) (result, error) {
	if !firing {
		return e.toRecovering(ctx, inc)
	}
	if d, ok := e.backingOff(inc); ok {
		return wait(d), nil
	}
	poll := e.cfg.Engine.PollInterval
	if inc.Standby == nil {
		return result{}, e.transition(ctx, inc, EventStandbyLost, "no standby recorded; provisioning one")
	}
	provider, ok := e.providers[inc.Standby.Provider]
	if !ok {
		return e.failedAttempt(ctx, inc, "reading the standby", fmt.Errorf("provider %q is not running in this failoverd (cloud.providers)", inc.Standby.Provider))
	}
	cctx, cancel := context.WithTimeout(ctx, e.cfg.Engine.CallTimeout)
	defer cancel()
	sb, err := e.call(provider, "get", func() (cloud.Standby, error) { return provider.Get(cctx, inc.Standby.Name) })
	if errors.Is(err, cloud.ErrNotFound) {
		inc.Standby.State = cloud.StateDeleted
		t := e.now().UTC()
		inc.Standby.DeletedAt = &t
		return again, e.transition(ctx, inc, EventStandbyLost,
			fmt.Sprintf("standby %s is gone from the cloud; creating it again", inc.Standby.Name))
	}
	if err != nil {
		return e.failedAttempt(ctx, inc, "reading the standby", err)
	}
	reporter := e.syncReporter(provider)
	if reporter == nil {
		// Real clouds report sync through the standby agent on the node.
		adoptStandby(inc, sb)
		inc.Attempts, inc.NextAttemptAt = 0, time.Time{}
		inc.Reason = fmt.Sprintf("standby %s is %s in %s/%s; its sync status comes from the standby agent, which this build does not have yet",
			sb.Name, sb.State, sb.Provider, sb.Zone)
		return result{after: poll}, e.update(ctx, inc)
	}
	st, err := e.syncStatus(cctx, provider, reporter, sb)
	if errors.Is(err, cloud.ErrTransient) {
		// The agent does not answer yet: the VM is still booting and
		// installing its clients, which takes minutes. Waiting is not a
		// failure; the reason says what the incident waits for.
		adoptStandby(inc, sb)
		inc.Reason = fmt.Sprintf("standby %s is %s in %s/%s; waiting for its agent to answer (%v)", sb.Name, sb.State, sb.Provider, sb.Zone, err)
		return result{after: poll}, e.update(ctx, inc)
	}
	if err != nil && !errors.Is(err, cloud.ErrNotFound) {
		return e.failedAttempt(ctx, inc, "reading the standby's sync status", err)
	}
	report := &SyncReport{ExecutionSynced: st.ExecutionSynced, ConsensusSynced: st.ConsensusSynced,
		Optimistic: st.Optimistic, ELOffline: st.ELOffline, Health: st.Health, Peers: st.Peers,
		ExecutionPeers: st.ExecutionPeers, SyncDistance: st.SyncDistance, DiskFreeBytes: st.DiskFreeBytes,
		ClockOffsetMillis: st.ClockOffset.Milliseconds(), NotReady: st.NotReady(), CheckedAt: e.now().UTC()}
	adoptStandby(inc, sb)
	inc.Standby.Sync = report
	inc.Attempts, inc.NextAttemptAt = 0, time.Time{}
	switch {
	case inc.State == StateSyncing && st.Ready():
		return result{after: poll}, e.transition(ctx, inc, EventSynced,
			fmt.Sprintf("standby %s is in sync (%d peers); ready for a person to approve a migration", sb.Name, st.Peers))
	case inc.State == StateReady && !st.Ready():
		return result{after: poll}, e.transition(ctx, inc, EventSyncLost,
			fmt.Sprintf("standby %s is no longer ready: %s", sb.Name, strings.Join(st.NotReady(), ", ")))
	}
	if inc.State == StateReady && e.notifier != nil {
		e.renotify(ctx, *inc)
	}
	if inc.State == StateSyncing {
		if sb.State == cloud.StatePending {
			inc.Reason = fmt.Sprintf("standby %s is booting in %s", sb.Name, sb.Zone)
		} else {
			inc.Reason = fmt.Sprintf("standby %s is %s, not ready yet: %s", sb.Name, sb.State, strings.Join(st.NotReady(), ", "))
		}
	}
	return result{after: poll}, e.update(ctx, inc)
}

// syncReporter is the provider's own reporter (the simulated cloud models
// sync), else the standby agent client.
func (e *Engine) syncReporter(p cloud.Provider) cloud.SyncReporter {
	if r, ok := p.(cloud.SyncReporter); ok {
		return r
	}
	return e.sync
}

func (e *Engine) syncStatus(ctx context.Context, p cloud.Provider, r cloud.SyncReporter, sb cloud.Standby) (cloud.SyncStatus, error) {
	start := time.Now()
	st, err := r.SyncStatus(ctx, sb)
	e.observeCall(p, "sync_status", start, err)
	return st, err
}

func (e *Engine) recover(ctx context.Context, inc *Incident, v ValidatorRecord) (result, error) {
	// A flap: the alert fires again while the standby is warm. Only for a
	// resolve-driven recovery: a person's teardown is final.
	// The ledger only turns a resolved alert back to firing for a new
	// instance, so any firing alert here is news, not a late copy.
	if firing, _ := v.Firing(); firing && inc.TornDownBy == "" {
		inc.ResolvedAt, inc.KeepWarmUntil = nil, nil
		return again, e.transition(ctx, inc, EventRefired, "alerts fire again; re-using the warm standby")
	}
	if inc.KeepWarmUntil != nil {
		if d := inc.KeepWarmUntil.Sub(e.now()); d > 0 {
			return wait(d), nil
		}
	}
	if d, ok := e.backingOff(inc); ok {
		return wait(d), nil
	}
	return e.deleteStandby(ctx, inc, "")
}

// deleteStandby deletes the incident's standby (intent first) and closes
// the incident; why prefixes the closing reason.
func (e *Engine) deleteStandby(ctx context.Context, inc *Incident, why string) (result, error) {
	if why != "" {
		why += "; "
	}
	if inc.Standby == nil || inc.Standby.State == cloud.StateDeleted {
		inc.Intent = nil
		return again, e.transition(ctx, inc, EventStandbyDeleted, why+"no standby to delete; incident closed")
	}
	name := inc.Standby.Name
	if inc.Intent == nil || inc.Intent.Action != "delete-standby" {
		inc.Intent = &Intent{Action: "delete-standby", Target: name, At: e.now().UTC()}
		inc.Reason = "deleting standby " + name
		if err := e.update(ctx, inc); err != nil {
			return result{}, err
		}
	}
	provider, ok := e.providers[inc.Standby.Provider]
	if !ok {
		return e.failedAttempt(ctx, inc, "deleting the standby", fmt.Errorf("provider %q is not running in this failoverd (cloud.providers)", inc.Standby.Provider))
	}
	cctx, cancel := context.WithTimeout(ctx, e.cfg.Engine.CallTimeout)
	_, err := e.call(provider, "delete", func() (cloud.Standby, error) { return cloud.Standby{}, provider.Delete(cctx, name) })
	cancel()
	if err != nil && !errors.Is(err, cloud.ErrNotFound) {
		return e.failedAttempt(ctx, inc, "deleting the standby", err)
	}
	t := e.now().UTC()
	inc.Standby.State, inc.Standby.DeletedAt = cloud.StateDeleted, &t
	inc.Intent = nil
	return again, e.transition(ctx, inc, EventStandbyDeleted, fmt.Sprintf("%sstandby %s deleted; incident closed", why, name))
}

// release frees the validator of its closed incident. Alerts that started
// before the close belonged to that incident and do not open another.
func (e *Engine) release(ctx context.Context, v ValidatorRecord, inc Incident) (result, error) {
	v.OpenIncident = ""
	if inc.UpdatedAt.After(v.HandledThrough) {
		v.HandledThrough = inc.UpdatedAt
	}
	if err := e.store.PutValidator(ctx, &v); err != nil {
		return result{}, fmt.Errorf("release validator %s from incident %s: %w", v.Name, inc.ID, err)
	}
	return again, nil
}

// Teardown is a person ending an incident: its standby is deleted now, not
// after the keep-warm time, and alerts that fire on do not re-open it.
func (e *Engine) Teardown(ctx context.Context, id, by string) (Incident, error) {
	if by == "" {
		by = "unknown"
	}
	for range maxCASRetries {
		inc, err := e.store.GetIncident(ctx, id)
		if err != nil {
			return Incident{}, fmt.Errorf("incident %s: %w", id, err)
		}
		// Idempotent, except after a failed teardown (its delete failed
		// maxAttempts times): a person's next teardown tries again.
		if inc.State == StateClosed || inc.TornDownBy != "" && inc.State != StateFailed {
			return inc, nil
		}
		if own, err := e.Owner(ctx, inc.Validator); err == nil && own.Incident == inc.ID && !own.AtHome() {
			return Incident{}, refused(RefuseOwner, "standby %s holds the signing right of %s (generation %d): deleting it would leave the validator offline and home gated. Fail back first: failoverd failback %s",
				own.Current(), inc.Validator, own.Generation, inc.ID)
		} else if err != nil {
			return Incident{}, err
		}
		switch inc.State {
		case StateMigrating, StateMigrated, StateFailingBack:
			return Incident{}, refused(RefuseState, "incident %s is %s: keys are moving or moved; only failoverd failback %s ends it", inc.ID, inc.State, inc.ID)
		}
		t := e.now().UTC()
		inc.TornDownBy, inc.KeepWarmUntil, inc.Attempts = by, &t, 0
		why := fmt.Sprintf("torn down by %s; deleting the standby", by)
		if inc.State == StateRecovering {
			// Already on its way out (kept warm after a resolve): the
			// keep-warm time ends now.
			inc.Reason = why
			inc.record(Entry{At: t, Cause: why})
			err = e.update(ctx, &inc)
		} else {
			err = e.transition(ctx, &inc, EventTeardown, why)
		}
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return Incident{}, err
		}
		e.Trigger(inc.Validator)
		return inc, nil
	}
	return Incident{}, fmt.Errorf("teardown of %s: %w after %d attempts", id, ErrConflict, maxCASRetries)
}

// call runs one provider call and counts it.
func (e *Engine) call(provider cloud.Provider, op string, f func() (cloud.Standby, error)) (cloud.Standby, error) {
	start := time.Now()
	sb, err := f()
	e.observeCall(provider, op, start, err)
	return sb, err
}

func (e *Engine) observeCall(provider cloud.Provider, op string, start time.Time, err error) {
	p := provider.Name()
	e.m.ProviderDuration.WithLabelValues(p, op).Observe(time.Since(start).Seconds())
	if err == nil {
		e.m.ProviderCalls.WithLabelValues(p, op, "ok").Inc()
		return
	}
	e.m.ProviderCalls.WithLabelValues(p, op, "error").Inc()
	e.m.ProviderErrors.WithLabelValues(p, op, errorKind(err)).Inc()
}

func errorKind(err error) string {
	switch {
	case errors.Is(err, cloud.ErrNotFound):
		return "not_found"
	case errors.Is(err, cloud.ErrCapacity):
		return "capacity"
	case errors.Is(err, cloud.ErrQuota):
		return "quota"
	case errors.Is(err, cloud.ErrTransient):
		return "transient"
	case errors.Is(err, cloud.ErrPermanent):
		return "permanent"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	default:
		return "unknown"
	}
}

// StandbyHours sums the standby-hours incidents used in the calendar month
// (UTC) of t: from each standby's creation to its deletion, or to t.
func StandbyHours(incs []Incident, t time.Time) float64 {
	t = t.UTC()
	monthStart := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	var total time.Duration
	add := func(s Span) {
		from, to := s.From, s.To
		if from.Before(monthStart) {
			from = monthStart
		}
		if to.After(t) {
			to = t
		}
		if to.After(from) {
			total += to.Sub(from)
		}
	}
	for _, inc := range incs {
		for _, s := range inc.PastStandbys {
			add(s)
		}
		if span, ok := billedSpan(inc.Standby, t); ok {
			add(span)
		}
	}
	return total.Hours()
}

// billedSpan is the time a standby is billed for, up to now while it
// exists; from its creation, or from its request when the creation was
// never read (its answer lost).
func billedSpan(s *Standby, now time.Time) (Span, bool) {
	if s == nil {
		return Span{}, false
	}
	from := s.CreatedAt
	if from == nil {
		from = s.RequestedAt
	}
	if from == nil {
		return Span{}, false
	}
	to := now
	if s.DeletedAt != nil {
		to = *s.DeletedAt
	}
	return Span{From: *from, To: to}, true
}
