package failover

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/failover/config"
)

// The snapshot keeper keeps a warm chain-data snapshot per validator: on the
// validator's schedule it boots a keyless node (which starts from the
// previous snapshot, as every standby does), waits until it is in sync,
// stops its clients cleanly, snapshots the data disk, deletes the node and
// prunes snapshots past retention. A real outage always wins: no run starts
// while the validator has an open incident, and a run in progress gives way
// (deleting its node) when one opens.

// maxRunSync bounds how long a run may take to sync before it fails, and
// maxClientStop how long its clients may take to stop.
const (
	maxRunSync    = 48 * time.Hour
	maxClientStop = 30 * time.Minute
)

// stoppingSince is when the run entered the stopping step.
func stoppingSince(run *SnapshotRun) time.Time {
	for i := len(run.History) - 1; i >= 0; i-- {
		if strings.Contains(run.History[i].Cause, "-> "+string(RunStopping)+":") {
			return run.History[i].At
		}
	}
	return time.Time{}
}

// KeeperMetrics count the keeper's runs.
type KeeperMetrics struct {
	Runs        *prometheus.CounterVec
	LastSuccess *prometheus.GaugeVec
	Snapshots   *prometheus.GaugeVec
}

func newKeeperMetrics(reg prometheus.Registerer) *KeeperMetrics {
	m := &KeeperMetrics{
		Runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "failoverd_snapshot_runs_total",
			Help: "Snapshot-keeper runs that ended, by validator and outcome (done, failed, aborted).",
		}, []string{"validator", "outcome"}),
		LastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "failoverd_snapshot_last_success_timestamp_seconds",
			Help: "When the validator's newest warm snapshot was made.",
		}, []string{"validator"}),
		Snapshots: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "failoverd_snapshots",
			Help: "Ready warm snapshots kept per validator, after the last prune.",
		}, []string{"validator"}),
	}
	if reg != nil {
		reg.MustRegister(m.Runs, m.LastSuccess, m.Snapshots)
	}
	return m
}

// KeepSnapshots takes every scheduled validator's run one pass further, or
// starts one that is due. It runs on the leader, one pass at a time.
func (e *Engine) KeepSnapshots(ctx context.Context) error {
	var errs []error
	for _, vc := range e.cfg.Fleet {
		if vc.Snapshots.Every <= 0 {
			continue
		}
		if err := e.keep(ctx, vc); err != nil {
			errs = append(errs, fmt.Errorf("snapshot keeper, %s: %w", vc.Name, err))
		}
	}
	return errors.Join(errs...)
}

// keeps reports whether any validator has a snapshot schedule.
func (e *Engine) keeps() bool {
	for _, v := range e.cfg.Fleet {
		if v.Snapshots.Every > 0 {
			return true
		}
	}
	return false
}

func (e *Engine) keepEvery(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := e.KeepSnapshots(ctx); err != nil && ctx.Err() == nil {
			e.log.Warn("snapshot keeper", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (e *Engine) keep(ctx context.Context, vc config.Validator) error {
	runs, err := e.store.ListSnapshotRuns(ctx, vc.Name)
	if err != nil {
		return err
	}
	var cur *SnapshotRun
	if n := len(runs); n > 0 && !runs[n-1].State.Finished() {
		cur = &runs[n-1]
	}
	if cur == nil {
		if n := len(runs); n > 0 && e.now().Before(runs[n-1].CreatedAt.Add(vc.Snapshots.Every)) {
			return nil // not due
		}
		if busy, err := e.hasOpenIncident(ctx, vc.Name); err != nil || busy {
			return err // an outage comes first; try again on a later pass
		}
		e.capMu.Lock()
		used, err := e.budgetLocked(ctx)
		e.capMu.Unlock()
		if err != nil {
			return err
		}
		if used >= e.cfg.Caps.MonthlyStandbyHours {
			e.log.Warn("snapshot keeper: the monthly standby budget is spent; no run this month", "validator", vc.Name,
				"used_hours", used, "budget_hours", e.cfg.Caps.MonthlyStandbyHours)
			return nil
		}
		p, ok := e.snapshotProvider(vc)
		if !ok {
			return fmt.Errorf("none of the providers %v keeps snapshots", e.cfg.ProvidersFor(vc))
		}
		t := e.now().UTC()
		id := fmt.Sprintf("%s-snap-%d", vc.Name, len(runs)+1)
		run := SnapshotRun{ID: id, Validator: vc.Name, Provider: p.Name(), State: RunProvisioning,
			Snapshot: cloud.NameFor(id), CreatedAt: t, UpdatedAt: t,
			Reason: "booting a keyless node to make a fresh chain-data snapshot"}
		run.History = append(run.History, Entry{At: t, Cause: "scheduled every " + vc.Snapshots.Every.String()})
		if err := e.store.PutSnapshotRun(ctx, &run); err != nil {
			if errors.Is(err, ErrConflict) {
				return nil // another pass made it
			}
			return err
		}
		e.log.Info("snapshot run started", "run", id, "validator", vc.Name, "provider", p.Name())
		cur = &run
	}
	for range maxStepsPerReconcile {
		progressed, err := e.stepRun(ctx, vc, cur)
		if err != nil || !progressed || cur.State.Finished() {
			return err
		}
	}
	return nil
}

func (e *Engine) hasOpenIncident(ctx context.Context, validator string) (bool, error) {
	v, err := e.store.GetValidator(ctx, validator)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return v.OpenIncident != "", err
}

// snapshotProvider is the validator's first provider that keeps snapshots.
func (e *Engine) snapshotProvider(vc config.Validator) (cloud.Provider, bool) {
	for _, name := range e.cfg.ProvidersFor(vc) {
		if p, ok := e.providers[name]; ok {
			if _, ok := p.(cloud.Snapshotter); ok {
				return p, true
			}
		}
	}
	return nil, false
}

// runTo moves a run on and stores it.
func (e *Engine) runTo(ctx context.Context, run *SnapshotRun, next RunState, reason string) error {
	t := e.now().UTC()
	run.History = append(run.History, Entry{At: t, Cause: fmt.Sprintf("%s -> %s: %s", run.State, next, reason)})
	run.State, run.Reason, run.UpdatedAt = next, reason, t
	run.Attempts, run.NextAttemptAt = 0, time.Time{}
	if next.Finished() {
		run.FinishedAt = &t
	}
	e.stampRunCost(run)
	if err := e.store.PutSnapshotRun(ctx, run); err != nil {
		return fmt.Errorf("store run %s: %w", run.ID, err)
	}
	if next.Finished() {
		e.km.Runs.WithLabelValues(run.Validator, string(next)).Inc()
		if next == RunDone {
			e.km.LastSuccess.WithLabelValues(run.Validator).Set(float64(t.Unix()))
		}
	}
	e.log.Info("snapshot run moved", "run", run.ID, "state", next, "reason", reason)
	return nil
}

func (e *Engine) stampRunCost(run *SnapshotRun) {
	inc := Incident{Standby: run.Standby}
	e.stampCost(&inc)
}

// runRetry records a failed attempt of the current step; past MaxAttempts
// the run fails (a person looks at the metrics, nothing is at stake).
func (e *Engine) runRetry(ctx context.Context, run *SnapshotRun, what string, err error) (bool, error) {
	run.Attempts++
	if run.Attempts >= e.cfg.Engine.MaxAttempts || !cloud.Retryable(err) {
		return false, e.failRun(ctx, run, fmt.Sprintf("%s failed: %v", what, err))
	}
	d := e.backoff(run.Attempts)
	run.NextAttemptAt = e.now().Add(d).UTC()
	run.Reason = fmt.Sprintf("%s failed (attempt %d of %d): %v; retrying in %s", what, run.Attempts, e.cfg.Engine.MaxAttempts, err, d.Round(time.Second))
	run.UpdatedAt = e.now().UTC()
	return false, e.store.PutSnapshotRun(ctx, run)
}

// failRun ends a run as failed, deleting its node so it stops costing.
func (e *Engine) failRun(ctx context.Context, run *SnapshotRun, reason string) error {
	e.deleteRunStandby(ctx, run)
	return e.runTo(ctx, run, RunFailed, reason)
}

func (e *Engine) deleteRunStandby(ctx context.Context, run *SnapshotRun) {
	if run.Standby == nil || run.Standby.State == cloud.StateDeleted {
		return
	}
	p, ok := e.providers[run.Provider]
	if !ok {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, e.cfg.Engine.CallTimeout)
	defer cancel()
	if _, err := e.call(p, "delete", func() (cloud.Standby, error) { return cloud.Standby{}, p.Delete(cctx, run.Standby.Name) }); err != nil && !errors.Is(err, cloud.ErrNotFound) {
		// The garbage collector removes it once the run no longer claims it.
		e.log.Warn("snapshot run: could not delete its node; the garbage collector will", "run", run.ID, "err", err)
		return
	}
	t := e.now().UTC()
	run.Standby.State, run.Standby.DeletedAt = cloud.StateDeleted, &t
}

// stepRun takes one step; it reports whether it made progress worth another step now.
func (e *Engine) stepRun(ctx context.Context, vc config.Validator, run *SnapshotRun) (bool, error) {
	if busy, err := e.hasOpenIncident(ctx, run.Validator); err != nil {
		return false, err
	} else if busy {
		e.deleteRunStandby(ctx, run)
		return false, e.runTo(ctx, run, RunAborted, "a real outage of the validator began; the run gave way and deleted its node")
	}
	if run.NextAttemptAt.After(e.now()) {
		return false, nil
	}
	p, ok := e.providers[run.Provider]
	if !ok {
		return false, e.failRun(ctx, run, fmt.Sprintf("provider %q is not running in this failoverd", run.Provider))
	}
	snap, _ := p.(cloud.Snapshotter)
	cctx, cancel := context.WithTimeout(ctx, e.cfg.Engine.CallTimeout)
	defer cancel()
	name := cloud.NameFor(run.ID)

	switch run.State {
	case RunProvisioning:
		zones := e.cfg.ZonesFor(run.Provider)
		zone := ""
		if len(zones) > 0 {
			zone = zones[0]
		}
		if run.Standby == nil {
			// Intent first, as for incidents: a crash leaves a name to clean up.
			run.Standby = &Standby{Provider: run.Provider, Name: name, Zone: zone, State: "requested",
				HourlyUSD: e.cfg.HourlyCost(run.Provider)}
			run.UpdatedAt = e.now().UTC()
			if err := e.store.PutSnapshotRun(ctx, run); err != nil {
				return false, err
			}
		}
		spec := cloud.StandbySpec{Name: name, IncidentID: run.ID, Validator: vc.Name, Site: vc.Site,
			Chain: vc.Chain, Network: vc.Network, Zone: zone}
		if e.bootstrap != nil {
			ud, err := e.bootstrap(ctx, Incident{ID: run.ID, Validator: vc.Name, Site: vc.Site, Chain: vc.Chain,
				Network: vc.Network, CreatedAt: run.CreatedAt}, run.Provider)
			if err != nil {
				return false, e.failRun(ctx, run, "cannot render the bootstrap: "+err.Error())
			}
			spec.UserData = ud
		}
		sb, err := e.call(p, "ensure", func() (cloud.Standby, error) { return p.Ensure(cctx, spec) })
		if err != nil {
			return e.runRetry(ctx, run, "creating the node", err)
		}
		run.Standby = standbyFrom(sb, run.Standby)
		return true, e.runTo(ctx, run, RunSyncing, fmt.Sprintf("node %s exists in %s/%s; waiting for it to sync", sb.Name, sb.Provider, sb.Zone))

	case RunSyncing:
		if e.now().Sub(run.CreatedAt) > maxRunSync {
			return false, e.failRun(ctx, run, fmt.Sprintf("the node did not sync within %s", maxRunSync))
		}
		sb, err := e.call(p, "get", func() (cloud.Standby, error) { return p.Get(cctx, name) })
		if errors.Is(err, cloud.ErrNotFound) {
			run.Standby = nil // lost (a spot reclaim): boot another
			return true, e.runTo(ctx, run, RunProvisioning, "the node is gone from the cloud; booting another")
		}
		if err != nil {
			return e.runRetry(ctx, run, "reading the node", err)
		}
		reporter := e.syncReporter(p)
		if reporter == nil {
			run.Reason = "waiting: this build has no way to read the node's sync status"
			return false, e.store.PutSnapshotRun(ctx, run)
		}
		st, err := e.syncStatus(cctx, p, reporter, sb)
		if err != nil || !st.Ready() {
			run.Standby = standbyFrom(sb, run.Standby)
			if err != nil {
				run.Reason = fmt.Sprintf("node %s: waiting for its agent (%v)", sb.Name, err)
			} else {
				run.Reason = fmt.Sprintf("node %s is syncing: %v", sb.Name, st.NotReady())
			}
			run.UpdatedAt = e.now().UTC()
			e.stampRunCost(run)
			return false, e.store.PutSnapshotRun(ctx, run)
		}
		return true, e.runTo(ctx, run, RunStopping, fmt.Sprintf("node %s is in sync; stopping its clients cleanly", sb.Name))

	case RunStopping:
		stopper, ok := p.(cloud.ClientStopper)
		if !ok {
			stopper, ok = e.sync.(cloud.ClientStopper)
		}
		if !ok {
			return false, e.failRun(ctx, run, "no way to stop the node's clients cleanly; a snapshot of running clients is not taken")
		}
		sb := cloud.Standby{Name: name, Provider: run.Provider, Zone: run.Standby.Zone}
		if got, err := p.Get(cctx, name); err == nil {
			sb = got
		}
		stopped, err := stopper.StopClients(cctx, sb)
		if err != nil {
			return e.runRetry(ctx, run, "stopping the clients", err)
		}
		if !stopped {
			if since := stoppingSince(run); !since.IsZero() && e.now().Sub(since) > maxClientStop {
				return false, e.failRun(ctx, run, fmt.Sprintf("the clients did not stop within %s", maxClientStop))
			}
			run.Reason = "waiting for the clients to stop cleanly (they flush their databases)"
			run.UpdatedAt = e.now().UTC()
			return false, e.store.PutSnapshotRun(ctx, run)
		}
		return true, e.runTo(ctx, run, RunSnapshotting, "clients stopped; snapshotting the data disk as "+run.Snapshot)

	case RunSnapshotting:
		if snap == nil {
			return false, e.failRun(ctx, run, "the provider does not keep snapshots")
		}
		s, err := snap.SnapshotData(cctx, name, run.Snapshot, e.cfg.SnapshotLabels(run.Provider))
		if err != nil {
			return e.runRetry(ctx, run, "snapshotting the data disk", err)
		}
		if !s.Ready {
			if all, err := snap.Snapshots(cctx, vc.Name); err == nil {
				for _, x := range all {
					if x.Name == run.Snapshot {
						s = x
					}
				}
			}
		}
		if !s.Ready {
			run.Reason = fmt.Sprintf("snapshot %s is being made", run.Snapshot)
			run.UpdatedAt = e.now().UTC()
			return false, e.store.PutSnapshotRun(ctx, run)
		}
		run.SnapshotReady = true
		return true, e.runTo(ctx, run, RunCleanup, fmt.Sprintf("snapshot %s is ready (%d GB); deleting the node and pruning", s.Name, s.SizeGB))

	case RunCleanup:
		e.deleteRunStandby(ctx, run)
		if run.Standby != nil && run.Standby.State != cloud.StateDeleted {
			return e.runRetry(ctx, run, "deleting the node", errors.New("delete did not finish"))
		}
		pruned, kept, err := e.prune(cctx, snap, vc)
		if err != nil {
			return e.runRetry(ctx, run, "pruning old snapshots", err)
		}
		run.Pruned = append(run.Pruned, pruned...)
		e.km.Snapshots.WithLabelValues(vc.Name).Set(float64(kept))
		return false, e.runTo(ctx, run, RunDone, fmt.Sprintf("snapshot %s made; node deleted; %d kept, %d pruned", run.Snapshot, kept, len(pruned)))
	}
	return false, nil
}

// prune deletes the validator's snapshots past retention: the newest
// Retain ready ones stay; older ones and failed ones go. Snapshots still
// being made are left alone.
func (e *Engine) prune(ctx context.Context, snap cloud.Snapshotter, vc config.Validator) (pruned []string, kept int, err error) {
	all, err := snap.Snapshots(ctx, vc.Name)
	if err != nil {
		return nil, 0, err
	}
	for _, s := range all { // newest first
		switch {
		case s.Ready && kept < vc.Snapshots.Retain:
			kept++
			continue
		case !s.Ready && e.now().Sub(s.CreatedAt) < maxRunSync:
			continue // still being made (or just failed: give it a day before calling it dead)
		}
		if err := snap.DeleteSnapshot(ctx, s.Name); err != nil {
			return pruned, kept, err
		}
		pruned = append(pruned, s.Name)
	}
	return pruned, kept, nil
}
