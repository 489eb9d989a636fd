// Package config is failoverd's configuration: the fleet of validators, how
// alerts map to them, the engine's timings and caps, the cloud and the store.
// It is read with viper (no global instance) from a YAML file, FAILOVERD_*
// environment variables and command-line flags, in rising precedence.
package config

import (
	"time"
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
	Agent     Agent       `mapstructure:"agent" json:"agent"`
	Approval  Approval    `mapstructure:"approval" json:"approval"`
	Fleet     []Validator `mapstructure:"fleet" json:"fleet"`
}

// Store selects where state lives.
type Store struct {
	// Type is "bolt" (embedded, the default) or "kubernetes" (custom
	// resources in the cluster, for the helm chart: state survives any node,
	// and replicas elect a leader).
	Type string `mapstructure:"type" json:"type"`
	// Namespace holds the custom resources and the leader lease; empty: the
	// pod's own (POD_NAMESPACE) or the kubeconfig context's.
	Namespace string `mapstructure:"namespace" json:"namespace"`
	// Kubeconfig is a kubeconfig file; empty: the in-cluster service account.
	Kubeconfig string `mapstructure:"kubeconfig" json:"kubeconfig"`
	// LeaseName, LeaseDuration, RenewDeadline and RetryPeriod tune the
	// leader election of store.type kubernetes: only the leader reconciles.
	LeaseName     string        `mapstructure:"leaseName" json:"leaseName"`
	LeaseDuration time.Duration `mapstructure:"leaseDuration" json:"leaseDuration"`
	RenewDeadline time.Duration `mapstructure:"renewDeadline" json:"renewDeadline"`
	RetryPeriod   time.Duration `mapstructure:"retryPeriod" json:"retryPeriod"`
}

// Auth holds the bearer tokens. Tokens are never written in the config file
// itself: they come from files or from FAILOVERD_WEBHOOK_TOKEN / FAILOVERD_API_TOKEN.
type Auth struct {
	// WebhookTokenFile holds the token Alertmanager sends on /webhook/alertmanager.
	WebhookTokenFile string `mapstructure:"webhookTokenFile" json:"webhookTokenFile"`
	// APITokenFile holds the token for /v1 (the CLI and people).
	APITokenFile string `mapstructure:"apiTokenFile" json:"apiTokenFile"`
	// GateTokenFile holds an optional read-only token that answers only
	// GET /v1/owners/{validator}: what "failoverd gate" in front of a
	// validator client needs, and nothing else.
	GateTokenFile string `mapstructure:"gateTokenFile" json:"gateTokenFile,omitempty"`
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
	// SiteDownAfter: a site that has sent heartbeats and then sends none for
	// this long is down, and every validator there gets an incident. 0 turns
	// site outage detection off.
	SiteDownAfter time.Duration `mapstructure:"siteDownAfter" json:"siteDownAfter"`
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

// Cloud selects the providers and tunes each of them.
type Cloud struct {
	// Providers are tried in this order: within a provider its zones in
	// order (zones of the first region first), then the next provider. A zone
	// without capacity or quota moves on to the next one.
	Providers []string `mapstructure:"providers" json:"providers"`
	GC        GC       `mapstructure:"gc" json:"gc"`
	Sim       Sim      `mapstructure:"sim" json:"sim"`
	GCP       GCP      `mapstructure:"gcp" json:"gcp"`
	AWS       AWS      `mapstructure:"aws" json:"aws"`
}

// GC is the garbage collector of cloud resources no incident claims.
type GC struct {
	// Interval between collections; 0 turns the collector off.
	Interval time.Duration `mapstructure:"interval" json:"interval"`
	// GracePeriod: an unclaimed resource younger than this is left alone.
	GracePeriod time.Duration `mapstructure:"gracePeriod" json:"gracePeriod"`
	// DryRun reports what would be deleted (log and metrics) without deleting.
	DryRun bool `mapstructure:"dryRun" json:"dryRun"`
}

// Price is what a standby costs on one provider, for the cost estimate
// every incident shows. Defaults are list prices at the time of writing;
// set your own.
type Price struct {
	// HourlyUSD is the machine's on-demand price per hour.
	HourlyUSD float64 `mapstructure:"hourlyUSD" json:"hourlyUSD"`
	// DiskGBMonthUSD is the data disk's price per GB and month.
	DiskGBMonthUSD float64 `mapstructure:"diskGBMonthUSD" json:"diskGBMonthUSD"`
	// SpotDiscount is the fraction of HourlyUSD saved on spot capacity (0..1).
	SpotDiscount float64 `mapstructure:"spotDiscount" json:"spotDiscount"`
}

// Sim tunes the simulated cloud.
type Sim struct {
	// Zones of the simulated cloud, in preference order.
	Zones []string `mapstructure:"zones" json:"zones"`
	// DiskGB is the data disk size (for the cost estimate).
	DiskGB int `mapstructure:"diskGB" json:"diskGB"`
	// Spot: the simulated standbys count as spot capacity.
	Spot bool `mapstructure:"spot" json:"spot"`
	// BootTime is how long a new node stays pending.
	BootTime time.Duration `mapstructure:"bootTime" json:"bootTime"`
	// SyncTime is how long a running node takes to sync.
	SyncTime time.Duration `mapstructure:"syncTime" json:"syncTime"`
	// Peers a synced node reports.
	Peers int `mapstructure:"peers" json:"peers"`
	// NoCapacityZones answer every create with a capacity error.
	NoCapacityZones []string `mapstructure:"noCapacityZones" json:"noCapacityZones"`
	Price           Price    `mapstructure:"price" json:"price"`
}

// GCP is the Google Cloud provider (Compute Engine). Credentials come from
// Application Default Credentials.
type GCP struct {
	Project string `mapstructure:"project" json:"project"`
	// Zones in preference order, e.g. [europe-west4-a, europe-west4-b, europe-west1-b].
	Zones       []string `mapstructure:"zones" json:"zones"`
	MachineType string   `mapstructure:"machineType" json:"machineType"`
	DiskType    string   `mapstructure:"diskType" json:"diskType"`
	DiskGB      int      `mapstructure:"diskGB" json:"diskGB"`
	BootImage   string   `mapstructure:"bootImage" json:"bootImage"`
	Network     string   `mapstructure:"network" json:"network"`
	Subnetwork  string   `mapstructure:"subnetwork" json:"subnetwork"`
	// Spot runs syncing standbys on SPOT capacity.
	Spot bool `mapstructure:"spot" json:"spot"`
	// APISourceRanges may reach the standby's API ports (CIDRs); empty: nobody.
	APISourceRanges []string `mapstructure:"apiSourceRanges" json:"apiSourceRanges"`
	// SnapshotLabels select the chain-data snapshot the data disk starts
	// from (the newest ready one with these labels and the validator's);
	// empty: a blank disk that syncs from scratch.
	SnapshotLabels   map[string]string `mapstructure:"snapshotLabels" json:"snapshotLabels"`
	OperationTimeout time.Duration     `mapstructure:"operationTimeout" json:"operationTimeout"`
	// Endpoint overrides the Compute API address (a private endpoint or a
	// local emulator). InsecureNoAuth sends no credentials: emulators only.
	Endpoint       string `mapstructure:"endpoint" json:"endpoint"`
	InsecureNoAuth bool   `mapstructure:"insecureNoAuth" json:"insecureNoAuth"`
	Price          Price  `mapstructure:"price" json:"price"`
}

// AWS is the Amazon EC2 provider. Credentials come from the AWS default chain.
type AWS struct {
	// Zones are availability zones in preference order, e.g. [eu-west-1a, eu-west-1b, eu-central-1a];
	// regions derive from them.
	Zones []string `mapstructure:"zones" json:"zones"`
	// Subnets maps a zone to its subnet ID; zones without one use the default VPC.
	Subnets      map[string]string `mapstructure:"subnets" json:"subnets"`
	InstanceType string            `mapstructure:"instanceType" json:"instanceType"`
	// AMIs maps each region used to its image ID.
	AMIs       map[string]string `mapstructure:"amis" json:"amis"`
	VolumeGB   int               `mapstructure:"volumeGB" json:"volumeGB"`
	VolumeType string            `mapstructure:"volumeType" json:"volumeType"`
	// SnapshotTags select the chain-data snapshot (newest completed, with
	// these tags and the validator's); empty: a blank volume.
	SnapshotTags map[string]string `mapstructure:"snapshotTags" json:"snapshotTags"`
	// VolumeInitializationRate (MiB/s) pays for a snapshot-restored volume
	// to load eagerly; 0 leaves EBS to load blocks lazily on first read.
	VolumeInitializationRate int      `mapstructure:"volumeInitializationRate" json:"volumeInitializationRate"`
	Spot                     bool     `mapstructure:"spot" json:"spot"`
	APISourceRanges          []string `mapstructure:"apiSourceRanges" json:"apiSourceRanges"`
	// Endpoint overrides the EC2 API address (a VPC endpoint or a local emulator).
	Endpoint string `mapstructure:"endpoint" json:"endpoint"`
	Price    Price  `mapstructure:"price" json:"price"`
}

// Agent is the standby agent the bootstrap installs on every real-cloud
// standby; failoverd polls it over mutual TLS to learn when the standby is ready.
type Agent struct {
	// Port the agent listens on (the firewall opens it to apiSourceRanges only).
	Port int `mapstructure:"port" json:"port"`
	// Image is the failoverd container image the standby runs the agent from.
	Image string `mapstructure:"image" json:"image"`
	// CASeedFile holds the 32-byte seed of failoverd's standby CA. Replicas
	// must share it (a new leader talks to the standbys the old one made), so
	// in a cluster it comes from a Secret the kubelet mounts. Empty: the
	// seed is made once in dataDir/pki.
	CASeedFile string `mapstructure:"caSeedFile" json:"caSeedFile"`
}

// Notify tells people through their own Alertmanager.
type Notify struct {
	// AlertmanagerURL is where failoverd posts its own alerts (standby ready,
	// incident failed), e.g. http://alertmanager:9093. Empty: off.
	AlertmanagerURL string `mapstructure:"alertmanagerURL" json:"alertmanagerURL"`
	// Labels are added to every alert failoverd posts.
	Labels map[string]string `mapstructure:"labels" json:"labels"`
}

// Approval configures who may move validator keys, and the checks a move
// must pass (DESIGN.md rules 1, 3 and 4).
type Approval struct {
	// AllowedSigners are approvers' SSH public keys, one OpenSSH
	// allowed_signers line each ("alice@example.org ssh-ed25519 AAAA...").
	// Empty (and no file): every key move is refused.
	AllowedSigners []string `mapstructure:"allowedSigners" json:"allowedSigners"`
	// AllowedSignersFile is an allowed_signers file, read at start.
	AllowedSignersFile string `mapstructure:"allowedSignersFile" json:"allowedSignersFile"`
	// Threshold is how many distinct approvers must sign (N of M).
	Threshold int `mapstructure:"threshold" json:"threshold"`
	// Validity is how long an approval the CLI builds stays valid.
	Validity time.Duration `mapstructure:"validity" json:"validity"`
	// SilentEpochs is how many finished epochs the chain must show every
	// key not live before a signer may start elsewhere (at least 3).
	SilentEpochs int `mapstructure:"silentEpochs" json:"silentEpochs"`
	// BeaconNodes are further beacon node URLs asked for chain silence,
	// besides the standby's own.
	BeaconNodes []string `mapstructure:"beaconNodes" json:"beaconNodes"`
	// SilentBlocks is, on Berachain, how many of the latest blocks must lack
	// the validator's commit signature (at least 150, about 5 minutes).
	SilentBlocks int `mapstructure:"silentBlocks" json:"silentBlocks"`
	// CometBFTNodes are further CometBFT RPC URLs (beacond, port 26657)
	// asked for silence on Berachain, besides the standby's own node.
	CometBFTNodes []string `mapstructure:"cometbftNodes" json:"cometbftNodes"`
	// ImportTimeout is how long a migration waits for the standby to report
	// its key import before it stops and pages.
	ImportTimeout time.Duration `mapstructure:"importTimeout" json:"importTimeout"`
	// AuditLog is the append-only file approvals are recorded in (empty:
	// <dataDir>/audit.log).
	AuditLog string `mapstructure:"auditLog" json:"auditLog"`
}

// Validator is one validator of the fleet.
type Validator struct {
	Name    string  `mapstructure:"name" json:"name"`
	Chain   string  `mapstructure:"chain" json:"chain"`
	Network string  `mapstructure:"network" json:"network"`
	Site    string  `mapstructure:"site" json:"site"`
	Clients Clients `mapstructure:"clients" json:"clients"`
	// Providers overrides cloud.providers for this validator (order of preference).
	Providers []string `mapstructure:"providers" json:"providers,omitempty"`
	// Snapshots keeps a warm chain-data snapshot of this validator so that a
	// standby starts from it instead of syncing from scratch.
	Snapshots Snapshots `mapstructure:"snapshots" json:"snapshots"`
	// GenesisValidatorsRoot pins the network (0x + 64 hex); empty: failoverd's
	// table for known networks (mainnet), else the beacon nodes must agree.
	GenesisValidatorsRoot string `mapstructure:"genesisValidatorsRoot" json:"genesisValidatorsRoot,omitempty"`
	// Pubkeys are this validator's signing keys (0x + 96 hex, BLS12-381; for
	// Berachain the CometBFT validator key). A key move must name exactly
	// these: a key belongs to one validator, so its owner is that
	// validator's owner. Empty: failoverd refuses to move this validator's keys.
	Pubkeys []string `mapstructure:"pubkeys" json:"pubkeys,omitempty"`
	// FeeRecipient (0x + 40 hex) is passed to the standby's validator
	// client; empty: the client's default.
	FeeRecipient string `mapstructure:"feeRecipient" json:"feeRecipient,omitempty"`
	// Home is the home validator client in the cluster, for fencing by
	// scaling it to zero.
	Home Home `mapstructure:"home" json:"home"`
}

// Home names the home validator client's workload.
type Home struct {
	// Workload is "namespace/statefulset/name" or "namespace/deployment/name";
	// it must be one of the chart's fencing.workloads.
	Workload string `mapstructure:"workload" json:"workload,omitempty"`
}

// Snapshots is a validator's warm-snapshot schedule.
type Snapshots struct {
	// Every is how often a fresh snapshot is made (e.g. 168h); 0: never.
	Every time.Duration `mapstructure:"every" json:"every"`
	// Retain is how many ready snapshots are kept; older ones are deleted.
	Retain int `mapstructure:"retain" json:"retain"`
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

// ProvidersFor is the validator's providers in order of preference.
func (c *Config) ProvidersFor(v Validator) []string {
	if len(v.Providers) > 0 {
		return v.Providers
	}
	return c.Cloud.Providers
}

// ZonesFor is the zone list of a provider.
func (c *Config) ZonesFor(provider string) []string {
	switch provider {
	case ProviderSim:
		return c.Cloud.Sim.Zones
	case ProviderGCP:
		return c.Cloud.GCP.Zones
	case ProviderAWS:
		return c.Cloud.AWS.Zones
	}
	return nil
}

// HourlyCost is what a standby of the provider costs per hour, disk included.
func (c *Config) HourlyCost(provider string) float64 {
	var p Price
	var diskGB int
	var spot bool
	switch provider {
	case ProviderSim:
		p, diskGB, spot = c.Cloud.Sim.Price, c.Cloud.Sim.DiskGB, c.Cloud.Sim.Spot
	case ProviderGCP:
		p, diskGB, spot = c.Cloud.GCP.Price, c.Cloud.GCP.DiskGB, c.Cloud.GCP.Spot
	case ProviderAWS:
		p, diskGB, spot = c.Cloud.AWS.Price, c.Cloud.AWS.VolumeGB, c.Cloud.AWS.Spot
	}
	machine := p.HourlyUSD
	if spot {
		machine *= 1 - p.SpotDiscount
	}
	const hoursPerMonth = 730
	return machine + float64(diskGB)*p.DiskGBMonthUSD/hoursPerMonth
}
