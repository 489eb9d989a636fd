package failover

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the engine's instruments, registered on an injected registerer
// so that tests and two engines in one process never collide.
type Metrics struct {
	Observations     *prometheus.CounterVec
	Duplicates       prometheus.Counter
	Heartbeats       *prometheus.CounterVec
	LastHeartbeat    *prometheus.GaugeVec
	Transitions      *prometheus.CounterVec
	IncidentsOpened  prometheus.Counter
	Incidents        *prometheus.GaugeVec
	ProviderCalls    *prometheus.CounterVec
	ProviderErrors   *prometheus.CounterVec
	ProviderDuration *prometheus.HistogramVec
	ReconcileErrors  prometheus.Counter
	Notifications    *prometheus.CounterVec
	StandbyHours     prometheus.Gauge
	SiteDown         *prometheus.GaugeVec
	SiteOutages      *prometheus.CounterVec
	SiteNeverHeard   *prometheus.GaugeVec
}

// NewMetrics creates the engine's metrics and registers them on reg (which may be nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Observations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "failoverd_observations_total",
			Help: "Alert observations received, by result: new (stored), duplicate (already known).",
		}, []string{"result"}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "failoverd_duplicates_dropped_total",
			Help: "Observations and heartbeats dropped because they carried nothing new (HA peers, retries, repeats).",
		}),
		Heartbeats: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "failoverd_heartbeats_total",
			Help: "Watchdog heartbeats received per site, by result: stored or duplicate.",
		}, []string{"site", "result"}),
		LastHeartbeat: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "failoverd_site_last_heartbeat_timestamp_seconds",
			Help: "When the last Watchdog heartbeat of a site was stored.",
		}, []string{"site"}),
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "failoverd_incident_transitions_total",
			Help: "Incident state transitions.",
		}, []string{"from", "to"}),
		IncidentsOpened: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "failoverd_incidents_opened_total",
			Help: "Incidents opened.",
		}),
		Incidents: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "failoverd_incidents",
			Help: "Open incidents by state, as of the last resync.",
		}, []string{"state"}),
		ProviderCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "failoverd_provider_calls_total",
			Help: "Cloud provider calls, by provider, operation and outcome (ok or error).",
		}, []string{"provider", "op", "outcome"}),
		ProviderErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "failoverd_provider_errors_total",
			Help: "Cloud provider errors, by provider, operation and kind (not_found, capacity, quota, transient, permanent, unknown).",
		}, []string{"provider", "op", "kind"}),
		ProviderDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "failoverd_provider_call_duration_seconds",
			Help:    "Cloud provider call latency.",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 8),
		}, []string{"provider", "op"}),
		ReconcileErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "failoverd_reconcile_errors_total",
			Help: "Reconcile passes that ended in an error (store or provider); they are retried with backoff.",
		}),
		Notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "failoverd_notifications_total",
			Help: "Alerts failoverd posted to Alertmanager, by outcome.",
		}, []string{"outcome"}),
		StandbyHours: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "failoverd_standby_hours_used",
			Help: "Standby-hours used in the current calendar month (UTC), as of the last budget check.",
		}),
		SiteDown: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "failoverd_site_down",
			Help: "1 while a site is down (it sent Watchdog heartbeats, then none for heartbeat.siteDownAfter), else 0.",
		}, []string{"site"}),
		SiteOutages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "failoverd_site_outages_total",
			Help: "Whole-site outages detected (a site that sent heartbeats fell silent for heartbeat.siteDownAfter).",
		}, []string{"site"}),
		SiteNeverHeard: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "failoverd_site_never_heard",
			Help: "1 for a site of the fleet that has never sent a Watchdog heartbeat: an outage of the whole site cannot be detected there.",
		}, []string{"site"}),
	}
	if reg != nil {
		reg.MustRegister(m.Observations, m.Duplicates, m.Heartbeats, m.LastHeartbeat, m.Transitions,
			m.IncidentsOpened, m.Incidents, m.ProviderCalls, m.ProviderErrors, m.ProviderDuration,
			m.ReconcileErrors, m.Notifications, m.StandbyHours, m.SiteDown, m.SiteOutages, m.SiteNeverHeard)
	}
	return m
}
