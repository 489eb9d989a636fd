package failover

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// A whole-site outage (the basement loses power or its uplink) silences the
// site's own Alertmanager: no alert about its validators will ever arrive.
// What arrives while the site is alive is the Watchdog heartbeat, so its
// absence is the signal. It is written as a synthetic alert, SiteDown, into
// the ledger of every validator of the site. From there the incident
// lifecycle applies unchanged: one open incident per validator, the
// hold-down, the standby, the caps, the gates of a migration, a resolve
// (the heartbeat is back) before a migration leading to recovering, a flap
// re-using the warm standby, a person's teardown being final. The decision
// lives in the store, so a restart neither forgets nor repeats it.

// SiteDownAlertName is the alertname of the synthetic alert a site outage
// puts in each of its validators' ledgers.
const SiteDownAlertName = "SiteDown"

const siteDownPrefix = "site-down/"

// SiteDownFingerprint is the ledger key of a site's outage: one per site, so
// that however often the outage is seen it is one alert instance.
func SiteDownFingerprint(site string) string { return siteDownPrefix + site }

// siteWatch is the engine's in-memory view of the sites. None of it decides
// anything on its own: the stored heartbeats and ledgers do.
type siteWatch struct {
	// checkMu serialises site checks (the resync and a returning heartbeat),
	// so that one outage is counted and logged once.
	checkMu sync.Mutex

	mu sync.Mutex
	// since is when this engine began watching: its first check, that is
	// the start of Run (of the leader's term with leader election). A site
	// is only found down after failoverd itself has watched it for a whole
	// siteDownAfter: failoverd's own downtime is not the site's.
	since time.Time
	// down: the sites found down (or still carrying an outage) at the last check.
	down map[string]bool
	// unheard: configured sites that never sent a heartbeat, already logged.
	unheard map[string]bool
}

// siteState is what the heartbeats say about a site now.
type siteState int

const (
	siteUnheard siteState = iota // no heartbeat ever: it cannot be found down
	siteUp                       // heard within siteDownAfter
	siteSilent                   // silent, but failoverd has not watched long enough to tell
	siteDown                     // silent for siteDownAfter while failoverd watched
	siteOff                      // heartbeat.siteDownAfter is 0s
)

// CheckSites looks at every site's last heartbeat and records or resolves
// site outages in the validators' ledgers. The reconcile loop runs it at
// every resync; a returning heartbeat runs it at once.
func (e *Engine) CheckSites(ctx context.Context) error {
	vs, err := e.store.ListValidators(ctx)
	if err != nil {
		return fmt.Errorf("list validators: %w", err)
	}
	return e.siteCheck(ctx, vs)
}

// checkSites is the resync's hook: vs is the listing it already made.
func (e *Engine) checkSites(ctx context.Context, vs []ValidatorRecord) {
	if err := e.siteCheck(ctx, vs); err != nil && ctx.Err() == nil {
		e.log.Error("site check failed; retrying at the next resync", "err", err)
	}
}

// siteHeard is Observe's hook for a stored heartbeat: a site that was down
// is resolved now rather than at the next resync, so that its incidents are
// recovering before anybody acts on them. Only the engine that found the
// site down (the reconciling one) does this; other replicas only store.
func (e *Engine) siteHeard(ctx context.Context, site string) {
	e.sites.mu.Lock()
	down := e.sites.down[site]
	e.sites.mu.Unlock()
	if !down {
		return
	}
	if err := e.CheckSites(ctx); err != nil && ctx.Err() == nil {
		e.log.Warn("site heard from again, but its outage could not be resolved yet; the next resync will", "site", site, "err", err)
	}
}

func (e *Engine) siteCheck(ctx context.Context, vs []ValidatorRecord) error {
	e.sites.checkMu.Lock()
	defer e.sites.checkMu.Unlock()
	now := e.now()
	e.sites.mu.Lock()
	if e.sites.since.IsZero() {
		e.sites.since = now
	}
	since := e.sites.since
	e.sites.mu.Unlock()

	records, err := e.store.ListSites(ctx)
	if err != nil {
		return fmt.Errorf("list sites: %w", err)
	}
	bySite := map[string]SiteRecord{}
	for _, s := range records {
		bySite[s.Name] = s
		if !s.LastHeartbeat.IsZero() {
			// Restored from the store, so the gauge is right after a restart too.
			e.m.LastHeartbeat.WithLabelValues(s.Name).Set(float64(s.LastHeartbeat.Unix()))
		}
	}
	members := map[string][]string{} // site -> its validators, in fleet order
	siteOf := map[string]string{}
	for _, vc := range e.cfg.Fleet {
		members[vc.Site] = append(members[vc.Site], vc.Name)
		siteOf[vc.Name] = vc.Site
	}
	firing := map[string][]string{} // site -> validators whose outage of it is recorded and firing
	for _, v := range vs {
		for fp, r := range v.Alerts {
			if site, ok := strings.CutPrefix(fp, siteDownPrefix); ok && r.Status == AlertFiring {
				firing[site] = append(firing[site], v.Name)
			}
		}
	}
	var sites []string
	for s := range bySite {
		sites = append(sites, s)
	}
	for s := range members {
		sites = append(sites, s)
	}
	for s := range firing {
		sites = append(sites, s)
	}
	sort.Strings(sites)
	sites = slices.Compact(sites)

	var errs []error
	for _, site := range sites {
		if site == "" {
			continue
		}
		if err := e.checkSite(ctx, site, bySite[site], members[site], firing[site], siteOf, now, since); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) siteStateOf(rec SiteRecord, now, since time.Time) siteState {
	after := e.cfg.Heartbeat.SiteDownAfter
	switch {
	case after <= 0:
		return siteOff
	case rec.LastHeartbeat.IsZero():
		return siteUnheard
	case now.Sub(rec.LastHeartbeat) < after:
		return siteUp
	case now.Sub(since) < after:
		return siteSilent
	default:
		return siteDown
	}
}

func (e *Engine) checkSite(ctx context.Context, site string, rec SiteRecord, members, firing []string,
	siteOf map[string]string, now, since time.Time) error {
	state := e.siteStateOf(rec, now, since)
	var errs []error
	// An outage is recorded only for the validators that are at the site
	// now: one moved elsewhere, or out of the fleet, is no longer in it.
	var resolved int
	var still []string
	for _, name := range firing {
		end := now
		switch {
		case siteOf[name] != site:
		case state == siteUp:
			end = rec.LastHeartbeat
		case state == siteOff:
		default:
			still = append(still, name)
			continue
		}
		if _, err := e.resolveSiteDown(ctx, name, site, end); err != nil {
			errs = append(errs, err)
			continue
		}
		resolved++
	}

	e.sites.mu.Lock()
	wasDown := e.sites.down[site]
	if e.sites.down == nil {
		e.sites.down, e.sites.unheard = map[string]bool{}, map[string]bool{}
	}
	e.sites.mu.Unlock()

	isDown := len(still) > 0
	switch state {
	case siteUnheard:
		e.sites.mu.Lock()
		logged := e.sites.unheard[site]
		e.sites.unheard[site] = true
		e.sites.mu.Unlock()
		if !logged && len(members) > 0 {
			e.log.Warn("no heartbeat has ever arrived from this site: an outage of the whole site cannot be detected until one does; route the heartbeat alert to failoverd",
				"site", site, "alert", e.cfg.Heartbeat.AlertName, "validators", members)
		}
		e.m.SiteNeverHeard.WithLabelValues(site).Set(1)
	case siteUp:
		if resolved > 0 || wasDown {
			e.log.Info("site heard from again: its site outage is resolved", "site", site,
				"heartbeat_at", rec.LastHeartbeat.UTC(), "validators", resolved)
		}
	case siteSilent:
		if len(still) > 0 && !wasDown {
			e.log.Warn("site still silent; its outage was recorded before this failoverd started", "site", site,
				"cause", e.siteDownCause(site, rec.LastHeartbeat), "validators", still)
		}
	case siteDown:
		isDown = true
		silentSince := rec.LastHeartbeat
		if since.After(silentSince) {
			silentSince = since
		}
		newly := 0
		for _, name := range members {
			wrote, err := e.fireSiteDown(ctx, name, site, silentSince)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if wrote {
				newly++
			}
		}
		if !wasDown {
			cause := e.siteDownCause(site, rec.LastHeartbeat)
			switch {
			case len(members) == 0:
				e.m.SiteOutages.WithLabelValues(site).Inc()
				e.log.Warn("site outage, but no validator of the fleet is at this site", "site", site, "cause", cause)
			case len(still) > 0:
				e.log.Warn("site still silent; its outage was recorded before this failoverd started", "site", site,
					"cause", cause, "validators", members)
			default:
				e.m.SiteOutages.WithLabelValues(site).Inc()
				e.log.Warn("site outage: opening an incident for every validator of the site", "site", site,
					"cause", cause, "validators", members, "recorded", newly)
			}
		}
	}
	if state != siteUnheard {
		e.m.SiteNeverHeard.WithLabelValues(site).Set(0)
		e.sites.mu.Lock()
		logged := e.sites.unheard[site]
		delete(e.sites.unheard, site)
		e.sites.mu.Unlock()
		if logged && len(members) > 0 {
			e.log.Info("heartbeats arrive from this site: an outage of the whole site will be detected now", "site", site,
				"site_down_after", e.cfg.Heartbeat.SiteDownAfter)
		}
	}
	down := 0.0
	if isDown {
		down = 1
	}
	e.m.SiteDown.WithLabelValues(site).Set(down)
	e.sites.mu.Lock()
	e.sites.down[site] = isDown
	e.sites.mu.Unlock()
	return errors.Join(errs...)
}

// fireSiteDown records the site outage in a validator's ledger, unless it
// already fires there (a repeat check, or another replica, wrote it).
func (e *Engine) fireSiteDown(ctx context.Context, name, site string, silentSince time.Time) (bool, error) {
	fp := SiteDownFingerprint(site)
	wrote, err := e.editLedger(ctx, name, func(v *ValidatorRecord) bool {
		r, ok := v.Alerts[fp]
		if ok && r.Status == AlertFiring {
			return false
		}
		at := second(silentSince)
		// A new instance must start after the last one ended, or the ledger
		// takes it for a late copy of the old one.
		if ok && !at.After(second(r.EndsAt)) {
			at = second(r.EndsAt).Add(time.Second)
		}
		// An incident that closed while the site was already silent (the
		// validator's own outage, torn down) did not handle this outage,
		// which nobody knew of yet.
		if v.OpenIncident == "" && !at.After(second(v.HandledThrough)) {
			at = second(v.HandledThrough).Add(time.Second)
		}
		return v.Apply([]Observation{{Validator: name, Site: site, AlertName: SiteDownAlertName,
			Fingerprint: fp, Status: AlertFiring, StartsAt: at}})
	})
	if wrote {
		e.Trigger(name)
	}
	return wrote, err
}

// resolveSiteDown ends a validator's recorded outage of a site at end.
func (e *Engine) resolveSiteDown(ctx context.Context, name, site string, end time.Time) (bool, error) {
	fp := SiteDownFingerprint(site)
	wrote, err := e.editLedger(ctx, name, func(v *ValidatorRecord) bool {
		r, ok := v.Alerts[fp]
		if !ok || r.Status != AlertFiring {
			return false
		}
		if end.Before(r.StartsAt) {
			end = r.StartsAt
		}
		return v.Apply([]Observation{{Validator: name, Site: site, AlertName: SiteDownAlertName,
			Fingerprint: fp, Status: AlertResolved, StartsAt: r.StartsAt, EndsAt: end}})
	})
	if wrote {
		e.Trigger(name)
	}
	return wrote, err
}

// editLedger changes a validator's record with a compare-and-swap, reading
// it afresh on every attempt so that the decision is made on what is stored.
// edit reports whether it changed anything; nothing is written if not.
func (e *Engine) editLedger(ctx context.Context, name string, edit func(*ValidatorRecord) bool) (bool, error) {
	for range maxCASRetries {
		v, err := e.store.GetValidator(ctx, name)
		if errors.Is(err, ErrNotFound) {
			v = ValidatorRecord{Name: name}
		} else if err != nil {
			return false, fmt.Errorf("read validator %s: %w", name, err)
		}
		if !edit(&v) {
			e.remember(v)
			return false, nil
		}
		err = e.store.PutValidator(ctx, &v)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("store site outage of %s: %w", name, err)
		}
		e.remember(v)
		return true, nil
	}
	return false, fmt.Errorf("store site outage of %s: %w after %d attempts", name, ErrConflict, maxCASRetries)
}

func (e *Engine) siteDownCause(site string, last time.Time) string {
	return fmt.Sprintf("site %s silent: no %s heartbeat since %s (siteDownAfter %s)",
		site, e.cfg.Heartbeat.AlertName, last.UTC().Format(time.RFC3339), shortDuration(e.cfg.Heartbeat.SiteDownAfter))
}

// siteCause says, for an incident about to open, which site outages of the
// validator fire ("" for none): the reason a person reads must say that the
// whole site went silent, not only that some alert fired.
func (e *Engine) siteCause(ctx context.Context, v ValidatorRecord) string {
	var causes []string
	for fp, r := range v.Alerts {
		site, ok := strings.CutPrefix(fp, siteDownPrefix)
		if !ok || r.Status != AlertFiring {
			continue
		}
		last := r.StartsAt
		if s, err := e.store.GetSite(ctx, site); err == nil && !s.LastHeartbeat.IsZero() {
			last = s.LastHeartbeat
		}
		causes = append(causes, e.siteDownCause(site, last))
	}
	sort.Strings(causes)
	return strings.Join(causes, "; ")
}

// shortDuration writes 5m rather than 5m0s, as the configuration does.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
