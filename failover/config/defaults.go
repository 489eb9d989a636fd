package config

import (
	"time"
)

// Default is the configuration before any file, environment variable or flag
// is applied: a local, loopback-only daemon with the simulated cloud and the
// embedded store, and timings suited to real outages (not to demos).
func Default() Config {
	return Config{
		// Loopback: the webhook and API must be exposed on purpose.
		Listen:  "127.0.0.1:9097",
		DataDir: "./data",
		Store: Store{Type: StoreBolt, LeaseName: "failoverd-leader",
			// client-go's usual timings: a dead leader is replaced within ~15s.
			LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second},
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
			// Five times the Watchdog repeat_interval we tell people to
			// route with (1m): a few lost deliveries are not an outage.
			SiteDownAfter: 5 * time.Minute,
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
			CallTimeout:    10 * time.Minute, // above cloud.gcp.operationTimeout: a create waits for its operation
		},
		Caps: Caps{
			MaxConcurrentStandbys: 2,
			// About ten standby-days a month: a couple of real outages.
			MonthlyStandbyHours: 240,
		},
		Agent: Agent{Port: 7443, Image: "ghcr.io/failoverd/failoverd:latest"},
		Approval: Approval{
			Threshold:    1,
			Validity:     15 * time.Minute,
			SilentEpochs: 3,
			SilentBlocks: 150,
			// Long enough for an approver to read keystores and unlock them.
			ImportTimeout: 30 * time.Minute,
		},
		Cloud: Cloud{
			Providers: []string{ProviderSim},
			GC:        GC{Interval: 10 * time.Minute, GracePeriod: 30 * time.Minute},
			Sim: Sim{
				Zones:    []string{"sim-a", "sim-b"},
				DiskGB:   2000,
				BootTime: 20 * time.Second,
				SyncTime: 60 * time.Second,
				Peers:    25,
				// Priced like the GCP default, so the demo shows a realistic estimate.
				Price: Price{HourlyUSD: 0.39, DiskGBMonthUSD: 0.17, SpotDiscount: 0.7},
			},
			GCP: GCP{
				MachineType:      "n2-standard-8",
				DiskType:         "pd-ssd",
				DiskGB:           2000,
				BootImage:        "projects/debian-cloud/global/images/family/debian-12",
				Network:          "global/networks/default",
				OperationTimeout: 5 * time.Minute,
				// n2-standard-8 and pd-ssd list prices (us-central1).
				Price: Price{HourlyUSD: 0.3885, DiskGBMonthUSD: 0.17, SpotDiscount: 0.7},
			},
			AWS: AWS{
				InstanceType: "m6i.2xlarge",
				VolumeGB:     2000,
				VolumeType:   "gp3",
				// m6i.2xlarge and gp3 list prices (us-east-1).
				Price: Price{HourlyUSD: 0.384, DiskGBMonthUSD: 0.08, SpotDiscount: 0.6},
			},
		},
	}
}

// Store types and cloud providers this build knows.
const (
	StoreBolt       = "bolt"
	StoreKubernetes = "kubernetes"
	ProviderSim     = "sim"
	ProviderGCP     = "gcp"
	ProviderAWS     = "aws"
)
