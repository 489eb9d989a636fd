package httpapi

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the HTTP layer's instruments.
type Metrics struct {
	WebhookRequests *prometheus.CounterVec
	WebhookDuration prometheus.Histogram
	AlertsIgnored   *prometheus.CounterVec
}

// NewMetrics creates and registers them on reg (which may be nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		WebhookRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "failoverd_webhook_requests_total",
			Help: "Alertmanager deliveries by outcome: ok, duplicate, ignored, unauthorized, bad_request, too_large, read_error, store_error.",
		}, []string{"outcome"}),
		WebhookDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "failoverd_webhook_duration_seconds",
			Help:    "Time from a delivery's arrival to its reply (the ack latency Alertmanager sees).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}),
		AlertsIgnored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "failoverd_webhook_alerts_ignored_total",
			Help: "Alerts in deliveries that failoverd did not act on, by reason.",
		}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.WebhookRequests, m.WebhookDuration, m.AlertsIgnored)
	}
	return m
}
