// Package config is failoverd's configuration: the fleet of validators, how
// alerts map to them, the engine's timings and caps, the cloud and the store.
// It is read with viper (no global instance) from a YAML file, FAILOVERD_*
// environment variables and command-line flags, in rising precedence.
package config

import (
	"time"

	"github.com/failoverd/failoverd/cloud"
)

// Config is the whole configuration. Keys are camelCase in YAML; every key
// except the fleet and maps also has an environment variable, FAILOVERD_ +
// the key path in upper snake case (engine.confirmFor ->
// FAILOVERD_ENGINE_CONFIRM_FOR), and a flag name, its kebab case
// (engine-confirm-for). Keys lists them all; docs/configuration.md explains each.
type Config struct {
	// Listen is the HTTP listen address (webhook, API, metrics).
	Listen string `mapstructure:"listen" json:"listen"`
	// DataDir holds the embedded store (failoverd.db).
	DataDir string `mapstructure:"dataDir" json:"dataDir"`

	Store     Store       `mapstructure:"store" json:"store"`
	Auth      Auth        `mapstructure:"auth" json:"auth"`
	Webhook   Webhook     `mapstructure:"webhook" json:"webhook"`
	Alerts    Alerts      `mapstructure:"alerts" json:"alerts"`
	Heartbeat Heartbeat   `mapstructure:"heartbeat" json:"heartbeat"`
	Engine    Engine      `mapstructure:"engine" json:"engine"`
	Caps      Caps        `mapstructure:"caps" json:"caps"`
	Cloud     Cloud       `mapstructure:"cloud" json:"cloud"`
	Notify    Notify      `mapstructure:"notify" json:"notify"`
	Fleet     []Validator `mapstructure:"fleet" json:"fleet"`
}

// Store selects where state lives.
type Store struct {
	// Type is "bolt" (embedded, the default). "kubernetes" comes with the chart.
	Type string `mapstructure:"type" json:"type"`
}

// Auth holds the bearer tokens. Tokens are never written in the config file
// itself: they come from files or from FAILOVERD_WEBHOOK_TOKEN / FAILOVERD_API_TOKEN.
type Auth struct {
	// WebhookTokenFile holds the token Alertmanager sends on /webhook/alertmanager.
	WebhookTokenFile string `mapstructure:"webhookTokenFile" json:"webhookTokenFile"`
	// APITokenFile holds the token for /v1 (the CLI and people).
	APITokenFile string `mapstructure:"apiTokenFile" json:"apiTokenFile"`
	// Disabled switches authentication off. Only for a loopback demo; serve
	// logs a loud warning for as long as it runs.
	Disabled bool `mapstructure:"disabled" json:"disabled"`
}

// Webhook tunes the Alertmanager receiver.
type Webhook struct {
	// MaxBodyBytes bounds a delivery; larger ones get 413.
	MaxBodyBytes int64 `mapstructure:"maxBodyBytes" json:"maxBodyBytes"`
}

// Alerts says which alerts count and how they map to validators.
type Alerts struct {
	// ValidatorLabel names the validator an alert is about (default "validator").
	ValidatorLabel string `mapstructure:"validatorLabel" json:"validatorLabel"`
	// SiteLabel names the site (default "site"); the fleet entry's site wins.
	SiteLabel string `mapstructure:"siteLabel" json:"siteLabel"`
	// Matchers must all match an alert's labels for it to count, in
	// Alertmanager matcher syntax: name="value", name!="value", name=~"re", name!~"re".
	// Default: failover="true".
	Matchers []string `mapstructure:"matchers" json:"matchers"`
}

// Heartbeat describes the Watchdog alert that proves a site's monitoring is alive.
type Heartbeat struct {
	AlertName string `mapstructure:"alertName" json:"alertName"`
	SiteLabel string `mapstructure:"siteLabel" json:"siteLabel"`
	// DefaultSite is the site of a heartbeat without a site label.
	DefaultSite string `mapstructure:"defaultSite" json:"defaultSite"`
	// Resolution: heartbeats closer together than this are duplicates and
	// are not written (an Alertmanager HA pair delivers each one twice).
	Resolution time.Duration `mapstructure:"resolution" json:"resolution"`
}

// Engine holds the lifecycle timings.
type Engine struct {
	// ConfirmFor is the hold-down: alerts must keep firing this long before a standby is made.
	ConfirmFor time.Duration `mapstructure:"confirmFor" json:"confirmFor"`
	// KeepWarm is how long a standby outlives a resolve before deletion (flaps).
	KeepWarm time.Duration `mapstructure:"keepWarm" json:"keepWarm"`
	// PollInterval is how often a syncing or ready standby is checked.
	PollInterval time.Duration `mapstructure:"pollInterval" json:"pollInterval"`
	// ResyncInterval is how often every validator is reconciled even when nothing happened.
	ResyncInterval time.Duration `mapstructure:"resyncInterval" json:"resyncInterval"`
	// MaxAttempts: consecutive failures of one step before the incident fails and pages.
	MaxAttempts int `mapstructure:"maxAttempts" json:"maxAttempts"`
	// BackoffBase and BackoffMax bound the retry delay (doubling, with jitter).
	BackoffBase time.Duration `mapstructure:"backoffBase" json:"backoffBase"`
	BackoffMax  time.Duration `mapstructure:"backoffMax" json:"backoffMax"`
	// Workers reconcile validators in parallel (one validator is never reconciled twice at once).
	Workers int `mapstructure:"workers" json:"workers"`
	// CallTimeout bounds each cloud call.
	CallTimeout time.Duration `mapstructure:"callTimeout" json:"callTimeout"`
}

// Caps bound what failoverd may spend.
type Caps struct {
	// MaxConcurrentStandbys: incidents beyond it wait (with a reason) for one to close.
	MaxConcurrentStandbys int `mapstructure:"maxConcurrentStandbys" json:"maxConcurrentStandbys"`
	// MonthlyStandbyHours: the standby-hours budget for a calendar month (UTC).
	// An incident that would need a standby once it is spent fails and pages.
	MonthlyStandbyHours float64 `mapstructure:"monthlyStandbyHours" json:"monthlyStandbyHours"`
}

// Cloud selects and tunes the provider.
type Cloud struct {
	// Provider is "sim" (the local default). "gcp" and "aws" come with their packages.
	Provider string `mapstructure:"provider" json:"provider"`
	// Placement is the default placement; a fleet entry may override it.
	Placement cloud.Placement `mapstructure:"placement" json:"placement"`
	Sim       Sim             `mapstructure:"sim" json:"sim"`
}

// Sim tunes the simulated cloud.
type Sim struct {
	// BootTime is how long a new node stays pending.
	BootTime time.Duration `mapstructure:"bootTime" json:"bootTime"`
	// SyncTime is how long a running node takes to sync.
	SyncTime time.Duration `mapstructure:"syncTime" json:"syncTime"`
	// Peers a synced node reports.
	Peers int `mapstructure:"peers" json:"peers"`
	// NoCapacityZones answer every create with a capacity error.
	NoCapacityZones []string `mapstructure:"noCapacityZones" json:"noCapacityZones"`
}

// Notify tells people through their own Alertmanager.
type Notify struct {
	// AlertmanagerURL is where failoverd posts its own alerts (standby ready,
	// incident failed), e.g. http://alertmanager:9093. Empty: off.
	AlertmanagerURL string `mapstructure:"alertmanagerURL" json:"alertmanagerURL"`
	// Labels are added to every alert failoverd posts.
	Labels map[string]string `mapstructure:"labels" json:"labels"`
}

// Validator is one validator of the fleet.
type Validator struct {
	Name    string  `mapstructure:"name" json:"name"`
	Chain   string  `mapstructure:"chain" json:"chain"`
	Network string  `mapstructure:"network" json:"network"`
	Site    string  `mapstructure:"site" json:"site"`
	Clients Clients `mapstructure:"clients" json:"clients"`
	// Placement overrides cloud.placement for this validator (fields left empty inherit).
	Placement cloud.Placement `mapstructure:"placement" json:"placement"`
}

// Clients are the validator's client software, mirrored on the standby.
type Clients struct {
	Execution Client `mapstructure:"execution" json:"execution"`
	Consensus Client `mapstructure:"consensus" json:"consensus"`
}

// Client is one client's name, version and optional image.
type Client struct {
	Name    string `mapstructure:"name" json:"name"`
	Version string `mapstructure:"version" json:"version"`
	Image   string `mapstructure:"image" json:"image,omitempty"`
}

// Chains failoverd knows.
const (
	ChainEthereum  = "ethereum"
	ChainBerachain = "berachain"
)

// Validator returns the fleet entry with that name.
func (c *Config) Validator(name string) (Validator, bool) {
	for _, v := range c.Fleet {
		if v.Name == name {
			return v, true
		}
	}
	return Validator{}, false
}

// PlacementFor is the validator's placement with the defaults filled in.
func (c *Config) PlacementFor(v Validator) cloud.Placement {
	p := c.Cloud.Placement
	if len(v.Placement.Zones) > 0 {
		p.Zones = v.Placement.Zones
	}
	if v.Placement.MachineType != "" {
		p.MachineType = v.Placement.MachineType
	}
	if v.Placement.DiskGB != 0 {
		p.DiskGB = v.Placement.DiskGB
	}
	if v.Placement.Spot {
		p.Spot = true
	}
	return p
}
