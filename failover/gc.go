package failover

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/failoverd/failoverd/cloud"
)

// GCMetrics count what the garbage collector found and did.
type GCMetrics struct {
	Runs    prometheus.Counter
	Orphans *prometheus.CounterVec
	Deleted *prometheus.CounterVec
	Errors  *prometheus.CounterVec
}

func newGCMetrics(reg prometheus.Registerer) *GCMetrics {
	m := &GCMetrics{
		Runs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "failoverd_gc_runs_total", Help: "Garbage collections run.",
		}),
		Orphans: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "failoverd_gc_orphans_found_total",
			Help: "Owned cloud resources no open incident claims, past the grace period, by provider and kind.",
		}, []string{"provider", "kind"}),
		Deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "failoverd_gc_deleted_total", Help: "Orphaned cloud resources deleted, by provider and kind.",
		}, []string{"provider", "kind"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "failoverd_gc_errors_total", Help: "Garbage collector failures (listing or deleting), by provider.",
		}, []string{"provider"}),
	}
	if reg != nil {
		reg.MustRegister(m.Runs, m.Orphans, m.Deleted, m.Errors)
	}
	return m
}

// GCResult is what one collection saw and did.
type GCResult struct {
	Orphans []cloud.Resource // unclaimed and past the grace period
	Deleted []cloud.Resource // removed (none in dry-run)
	Young   int              // unclaimed but inside the grace period
	Undated int              // unclaimed but without a creation time: never deleted
}

// CollectGarbage removes owned cloud resources that no open incident claims
// and that are older than the grace period. The cloud is listed before the
// store: a resource made after the store was read belongs to an incident
// whose intent was written before the resource existed, so that incident is
// in the store listing and the resource is claimed. Only resources the
// providers list as owned (managed-by=failoverd) are ever considered.
func (e *Engine) CollectGarbage(ctx context.Context) (GCResult, error) {
	var res GCResult
	e.gcm.Runs.Inc()
	type listed struct {
		c   cloud.Collector
		rs  []cloud.Resource
		err error
	}
	var all []listed
	for name, p := range e.providers {
		c, ok := p.(cloud.Collector)
		if !ok {
			continue
		}
		rs, err := c.ListOwned(ctx)
		if err != nil {
			e.gcm.Errors.WithLabelValues(name).Inc()
			// A provider that cannot be listed is skipped, not guessed at.
			e.log.Warn("garbage collector: cannot list owned resources", "provider", name, "err", err)
		}
		all = append(all, listed{c: c, rs: rs, err: err})
	}
	open, err := e.store.ListIncidents(ctx, ListOptions{OpenOnly: true})
	if err != nil {
		return res, fmt.Errorf("garbage collector: list incidents: %w", err)
	}
	claimedIncidents := map[string]bool{}
	var claimedNames []string
	for _, inc := range open {
		claimedIncidents[cloud.LabelValue(inc.ID)] = true
		claimedNames = append(claimedNames, cloud.NameFor(inc.ID))
		if inc.Standby != nil {
			claimedNames = append(claimedNames, inc.Standby.Name)
		}
	}
	// A snapshot run in progress claims its node as an incident does.
	runs, err := e.store.ListSnapshotRuns(ctx, "")
	if err != nil {
		return res, fmt.Errorf("garbage collector: list snapshot runs: %w", err)
	}
	for _, r := range runs {
		if !r.State.Finished() {
			claimedIncidents[cloud.LabelValue(r.ID)] = true
			claimedNames = append(claimedNames, cloud.NameFor(r.ID))
		}
	}
	grace := e.cfg.Cloud.GC.GracePeriod
	t := e.now()
	for _, l := range all {
		for _, r := range l.rs {
			if claimedIncidents[r.Labels[cloud.LabelIncident]] || claimedByName(r.Name, claimedNames) {
				continue
			}
			switch {
			case r.CreatedAt.IsZero():
				res.Undated++
				continue
			case t.Sub(r.CreatedAt) < grace:
				res.Young++
				continue
			}
			res.Orphans = append(res.Orphans, r)
			e.gcm.Orphans.WithLabelValues(r.Provider, r.Kind).Inc()
			if e.cfg.Cloud.GC.DryRun {
				e.log.Warn("garbage collector (dry run): would delete an orphaned resource", "provider", r.Provider,
					"kind", r.Kind, "name", r.Name, "zone", r.Zone, "incident", r.Labels[cloud.LabelIncident], "age", t.Sub(r.CreatedAt).Round(time.Second))
				continue
			}
			if err := l.c.DeleteOwned(ctx, r); err != nil {
				e.gcm.Errors.WithLabelValues(r.Provider).Inc()
				e.log.Warn("garbage collector: delete failed; next run tries again", "provider", r.Provider, "kind", r.Kind, "name", r.Name, "err", err)
				continue
			}
			res.Deleted = append(res.Deleted, r)
			e.gcm.Deleted.WithLabelValues(r.Provider, r.Kind).Inc()
			e.log.Info("garbage collector: deleted an orphaned resource", "provider", r.Provider, "kind", r.Kind,
				"name", r.Name, "zone", r.Zone, "incident", r.Labels[cloud.LabelIncident])
		}
	}
	return res, nil
}

// claimedByName covers resources that carry no labels (GCP firewall rules):
// their names embed the standby name as a whole dash-separated part.
func claimedByName(name string, standbys []string) bool {
	for _, s := range standbys {
		if name == s || strings.HasPrefix(name, s+"-") || strings.HasSuffix(name, "-"+s) {
			return true
		}
	}
	return false
}
