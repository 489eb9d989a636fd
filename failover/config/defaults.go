package config

import (
	"time"

	"github.com/failoverd/failoverd/cloud"
)

// Default is the configuration before any file, environment variable or flag
// is applied: a local, loopback-only daemon with the simulated cloud and the
// embedded store, and timings suited to real outages (not to demos).
func Default() Config {
	return Config{
		// Loopback: the webhook and API must be exposed on purpose.
		Listen:  "127.0.0.1:9097",
		DataDir: "./data",
		Store:   Store{Type: StoreBolt},
		Webhook: Webhook{MaxBodyBytes: 1 << 20},
		Alerts: Alerts{
			ValidatorLabel: "validator",
			SiteLabel:      "site",
			// Opt-in: only rules labelled for failover open incidents, so a
			// noisy unrelated alert never provisions a standby.
			Matchers: []string{`failover="true"`},
		},
		Heartbeat: Heartbeat{
			AlertName:   "Watchdog", // kube-prometheus-stack's always-firing alert
			SiteLabel:   "site",
			DefaultSite: "home",
			Resolution:  15 * time.Second,
		},
		Engine: Engine{
			ConfirmFor:     2 * time.Minute,
			KeepWarm:       30 * time.Minute,
			PollInterval:   15 * time.Second,
			ResyncInterval: 30 * time.Second,
			MaxAttempts:    8,
			BackoffBase:    time.Second,
			BackoffMax:     5 * time.Minute,
			Workers:        4,
			CallTimeout:    2 * time.Minute,
		},
		Caps: Caps{
			MaxConcurrentStandbys: 2,
			// About ten standby-days a month: a couple of real outages.
			MonthlyStandbyHours: 240,
		},
		Cloud: Cloud{
			Provider: ProviderSim,
			Placement: cloud.Placement{
				Zones:       []string{"sim-a", "sim-b"},
				MachineType: "n2-standard-8",
				DiskGB:      2000,
			},
			Sim: Sim{
				BootTime: 20 * time.Second,
				SyncTime: 60 * time.Second,
				Peers:    25,
			},
		},
	}
}

// Store types and cloud providers this build knows.
const (
	StoreBolt   = "bolt"
	ProviderSim = "sim"
)
