package failover

import "time"

// AlertStatus is an alert's status as Alertmanager reports it.
type AlertStatus string

const (
	AlertFiring   AlertStatus = "firing"
	AlertResolved AlertStatus = "resolved"
)

// Observation is one alert about one validator as one delivery reported it.
// Observations only add information: the same one twice, from two
// Alertmanager peers or a retry, changes nothing the second time.
type Observation struct {
	Validator   string
	Site        string
	AlertName   string
	Fingerprint string
	Status      AlertStatus
	StartsAt    time.Time
	EndsAt      time.Time
}

// Heartbeat is one Watchdog delivery for a site.
type Heartbeat struct {
	Site string
	At   time.Time
}

// AlertRecord is the newest known instance of one alert (one fingerprint).
type AlertRecord struct {
	AlertName string      `json:"alertName"`
	Status    AlertStatus `json:"status"`
	StartsAt  time.Time   `json:"startsAt"`
	EndsAt    time.Time   `json:"endsAt,omitzero"`
}

// second truncates to whole seconds. Alertmanager deliveries of the same
// alert instance do not always agree below the second (a resolve may carry
// startsAt without its fraction), so ordering is decided at that precision.
func second(t time.Time) time.Time { return t.Truncate(time.Second) }

// supersedes reports whether the observation n carries newer information than
// the stored record r of the same fingerprint. The rule makes the ledger the
// same whatever order deliveries arrive in:
//   - a resolve wins over a firing unless it ended before that firing began
//     (a late resolve of an earlier instance);
//   - a firing wins over a resolve only if it began after the resolve ended
//     (a new instance, not a late copy of the old one);
//   - same status: only a newer instance counts.
func supersedes(n AlertRecord, r AlertRecord) bool {
	switch {
	case r.Status == AlertFiring && n.Status == AlertResolved:
		return !second(n.EndsAt).Before(second(r.StartsAt))
	case r.Status == AlertResolved && n.Status == AlertFiring:
		return second(n.StartsAt).After(second(r.EndsAt))
	default:
		return second(n.StartsAt).After(second(r.StartsAt))
	}
}

// maxAlertsPerValidator bounds the ledger; resolved records go first.
const maxAlertsPerValidator = 256

// Apply merges observations into the ledger and reports whether anything
// changed. Observations for other validators are ignored.
func (v *ValidatorRecord) Apply(obs []Observation) bool {
	changed := false
	for _, o := range obs {
		if o.Validator != v.Name {
			continue
		}
		n := AlertRecord{AlertName: o.AlertName, Status: o.Status, StartsAt: o.StartsAt.UTC()}
		if o.Status == AlertResolved {
			n.EndsAt = o.EndsAt.UTC()
		}
		if r, ok := v.Alerts[o.Fingerprint]; ok && !supersedes(n, r) {
			continue
		}
		if v.Alerts == nil {
			v.Alerts = map[string]AlertRecord{}
		}
		v.Alerts[o.Fingerprint] = n
		if v.Site == "" {
			v.Site = o.Site
		}
		changed = true
	}
	if changed {
		v.prune()
	}
	return changed
}

// Changes reports whether Apply would change the ledger, without changing it.
func (v ValidatorRecord) Changes(obs []Observation) bool {
	for _, o := range obs {
		if o.Validator != v.Name {
			continue
		}
		n := AlertRecord{Status: o.Status, StartsAt: o.StartsAt.UTC()}
		if o.Status == AlertResolved {
			n.EndsAt = o.EndsAt.UTC()
		}
		if r, ok := v.Alerts[o.Fingerprint]; !ok || supersedes(n, r) {
			return true
		}
	}
	return false
}

// prune drops the oldest resolved records once the ledger is over its bound.
func (v *ValidatorRecord) prune() {
	for len(v.Alerts) > maxAlertsPerValidator {
		oldest, found := "", false
		for fp, r := range v.Alerts {
			if r.Status != AlertResolved {
				continue
			}
			if !found || r.EndsAt.Before(v.Alerts[oldest].EndsAt) {
				oldest, found = fp, true
			}
		}
		if !found {
			return // all firing: keep them, they matter
		}
		delete(v.Alerts, oldest)
	}
}

// Firing reports whether any alert of the validator is firing, and since
// when (the earliest start among them).
func (v ValidatorRecord) Firing() (bool, time.Time) {
	var since time.Time
	firing := false
	for _, r := range v.Alerts {
		if r.Status != AlertFiring {
			continue
		}
		if !firing || r.StartsAt.Before(since) {
			since = r.StartsAt
		}
		firing = true
	}
	return firing, since
}

// Unhandled reports whether a firing alert began after HandledThrough: an
// outage no incident has dealt with yet.
func (v ValidatorRecord) Unhandled() (bool, time.Time) {
	var since time.Time
	found := false
	for _, r := range v.Alerts {
		if r.Status != AlertFiring || !second(r.StartsAt).After(second(v.HandledThrough)) {
			continue
		}
		if !found || r.StartsAt.Before(since) {
			since = r.StartsAt
		}
		found = true
	}
	return found, since
}

// LatestFiringStart is the newest start among firing alerts (zero if none).
func (v ValidatorRecord) LatestFiringStart() time.Time {
	var t time.Time
	for _, r := range v.Alerts {
		if r.Status == AlertFiring && r.StartsAt.After(t) {
			t = r.StartsAt
		}
	}
	return t
}

// LatestResolve is the newest end among resolved alerts (zero if none).
func (v ValidatorRecord) LatestResolve() time.Time {
	var t time.Time
	for _, r := range v.Alerts {
		if r.Status == AlertResolved && r.EndsAt.After(t) {
			t = r.EndsAt
		}
	}
	return t
}
