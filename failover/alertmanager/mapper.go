package alertmanager

import (
	"fmt"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/config"
)

// Reasons an alert is ignored, as counted in Mapped.Ignored. They are stable
// metric label values.
const (
	// ReasonHeartbeatResolved: a resolved heartbeat says nothing about the
	// site being alive (Alertmanager sends it when the Watchdog stops).
	ReasonHeartbeatResolved = "heartbeat_resolved"
	// ReasonHeartbeatNoSite: a heartbeat without a site label and no default site.
	ReasonHeartbeatNoSite = "heartbeat_no_site"
	// ReasonNotMatched: the alert failed one of the configured matchers.
	ReasonNotMatched = "not_matched"
	// ReasonNoValidatorLabel: the alert matched but names no validator.
	ReasonNoValidatorLabel = "no_validator_label"
	// ReasonUnknownValidator: the alert names a validator not in the fleet.
	ReasonUnknownValidator = "unknown_validator"
	// ReasonInvalidStatus: neither firing nor resolved (only for messages
	// that did not come through Decode).
	ReasonInvalidStatus = "invalid_status"
	// ReasonTruncated: alerts Alertmanager dropped from the delivery
	// (the receiver's max_alerts); counted so that the loss is visible.
	ReasonTruncated = "truncated"
)

// Reasons lists every ignore reason, so metrics can start each at zero.
func Reasons() []string {
	return []string{
		ReasonHeartbeatResolved, ReasonHeartbeatNoSite, ReasonNotMatched,
		ReasonNoValidatorLabel, ReasonUnknownValidator, ReasonInvalidStatus, ReasonTruncated,
	}
}

// Defaults applied by NewMapper to label names left empty, the same as
// config.Default, so a hand-built Config behaves like a loaded one.
const (
	DefaultValidatorLabel = "validator"
	DefaultSiteLabel      = "site"
)

// Mapper turns webhook messages into observations and heartbeats. It is a
// snapshot of the configuration: build a new one when the configuration
// changes. It is safe for concurrent use.
type Mapper struct {
	matchers       []*labels.Matcher
	validatorLabel string
	siteLabel      string
	hbAlertName    string
	hbSiteLabel    string
	hbDefaultSite  string
	// fleet maps validator name to its configured site.
	fleet map[string]string
}

// Mapped is what one message says.
type Mapped struct {
	Observations []failover.Observation
	Heartbeats   []failover.Heartbeat
	// Ignored counts alerts that were not used, by reason (nil when none).
	Ignored map[string]int
}

// NewMapper builds a Mapper from the configuration. An empty matcher list
// lets every alert naming a fleet validator count, as the configuration's
// own warning for that case says; the loader supplies failover="true".
func NewMapper(cfg *config.Config) (*Mapper, error) {
	m := &Mapper{
		validatorLabel: or(cfg.Alerts.ValidatorLabel, DefaultValidatorLabel),
		siteLabel:      or(cfg.Alerts.SiteLabel, DefaultSiteLabel),
		hbAlertName:    cfg.Heartbeat.AlertName,
		hbDefaultSite:  cfg.Heartbeat.DefaultSite,
		fleet:          make(map[string]string, len(cfg.Fleet)),
	}
	m.hbSiteLabel = or(cfg.Heartbeat.SiteLabel, m.siteLabel)
	for i, s := range cfg.Alerts.Matchers {
		lm, err := labels.ParseMatcher(s)
		if err != nil {
			return nil, fmt.Errorf("alerts.matchers[%d] %q: %w", i, s, err)
		}
		m.matchers = append(m.matchers, lm)
	}
	for _, v := range cfg.Fleet {
		// First entry wins, as in config.Config.Validator.
		if _, dup := m.fleet[v.Name]; !dup {
			m.fleet[v.Name] = v.Site
		}
	}
	return m, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Map classifies every alert of msg. now is the receipt time: it dates
// heartbeats, because a Watchdog's startsAt is when it first fired, long ago.
func (m *Mapper) Map(msg *Message, now time.Time) Mapped {
	var out Mapped
	ignore := func(reason string, n int) {
		if out.Ignored == nil {
			out.Ignored = make(map[string]int, 2)
		}
		out.Ignored[reason] += n
	}
	if msg.TruncatedAlerts > 0 {
		ignore(ReasonTruncated, int(min(msg.TruncatedAlerts, uint64(1<<31-1))))
	}
	for i := range msg.Alerts {
		a := &msg.Alerts[i]
		if a.Status != failover.AlertFiring && a.Status != failover.AlertResolved {
			ignore(ReasonInvalidStatus, 1)
			continue
		}
		if m.hbAlertName != "" && a.Labels[labelAlertName] == m.hbAlertName {
			if a.Status == failover.AlertResolved {
				ignore(ReasonHeartbeatResolved, 1)
				continue
			}
			site := or(a.Labels[m.hbSiteLabel], m.hbDefaultSite)
			if site == "" {
				ignore(ReasonHeartbeatNoSite, 1)
				continue
			}
			out.addHeartbeat(failover.Heartbeat{Site: site, At: now})
			continue
		}
		if !m.matches(a.Labels) {
			ignore(ReasonNotMatched, 1)
			continue
		}
		name := a.Labels[m.validatorLabel]
		if name == "" {
			ignore(ReasonNoValidatorLabel, 1)
			continue
		}
		site, ok := m.fleet[name]
		if !ok {
			ignore(ReasonUnknownValidator, 1)
			continue
		}
		out.Observations = append(out.Observations, failover.Observation{
			Validator:   name,
			Site:        m.site(site, a.Labels),
			AlertName:   a.Labels[labelAlertName],
			Fingerprint: a.Fingerprint,
			Status:      a.Status,
			StartsAt:    a.StartsAt,
			EndsAt:      a.EndsAt,
		})
	}
	return out
}

// site: the fleet entry's, else the alert's label, else the default site,
// which is also where label-less heartbeats go, so such a validator and its
// heartbeats still meet.
func (m *Mapper) site(fleetSite string, ls map[string]string) string {
	if fleetSite != "" {
		return fleetSite
	}
	return or(ls[m.siteLabel], m.hbDefaultSite)
}

// matches applies Alertmanager semantics: a missing label matches as "".
func (m *Mapper) matches(ls map[string]string) bool {
	for _, lm := range m.matchers {
		if !lm.Matches(ls[lm.Name]) {
			return false
		}
	}
	return true
}

// addHeartbeat drops same-site repeats within one message: they carry the
// same receipt time and would only be written twice.
func (o *Mapped) addHeartbeat(hb failover.Heartbeat) {
	for _, h := range o.Heartbeats {
		if h.Site == hb.Site {
			return
		}
	}
	o.Heartbeats = append(o.Heartbeats, hb)
}
