package config

import (
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"

	"github.com/failoverd/failoverd/failover/approval"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Key is the camelCase key path ("fleet[1].network"); empty when the
	// problem is the document as a whole.
	Key string
	// Message says what is wrong and, where there is one, the value found.
	Message string
}

func (p Problem) String() string {
	if p.Key == "" {
		return p.Message
	}
	return p.Key + ": " + p.Message
}

// Error lists every problem found, so that an operator fixes a config in one
// round rather than one error per restart. Load, Parse and Validate return it
// (Load and Parse wrapped; use errors.As).
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	switch len(e.Problems) {
	case 0:
		return "invalid configuration"
	case 1:
		return e.Problems[0].String()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Networks lists the networks failoverd knows for a chain; nil for an unknown chain.
func Networks(chain string) []string {
	switch chain {
	case ChainEthereum:
		return []string{"mainnet", "hoodi", "sepolia"}
	case ChainBerachain:
		return []string{"mainnet", "bepolia"}
	}
	return nil
}

// CometBFTChainID is a Berachain network's consensus chain ID, what its
// beacond reports in /status ("" for a network failoverd does not know).
func CometBFTChainID(network string) string {
	switch network {
	case "mainnet":
		return "mainnet-beacon-80094"
	case "bepolia":
		return "bepolia-beacon-80069"
	}
	return ""
}

// Limits of webhook.maxBodyBytes: a real Alertmanager group fits in far less
// than 1 KiB..64 MiB; outside that a value is a mistake (or a unit mix-up).
const (
	MinWebhookBodyBytes = 1 << 10
	MaxWebhookBodyBytes = 64 << 20
	// MaxWorkers bounds engine.workers: reconciles are I/O-bound, and the
	// clouds throttle long before 64 parallel callers help.
	MaxWorkers = 64
)

// Validate reports every problem with the configuration, or nil.
func (c *Config) Validate() error {
	var v validator

	if err := checkListen(c.Listen); err != "" {
		v.add("listen", "%s (got %q)", err, c.Listen)
	}
	if strings.TrimSpace(c.DataDir) == "" {
		v.add("dataDir", "required: the embedded store lives there")
	}
	switch c.Store.Type {
	case StoreBolt:
	case StoreKubernetes:
		v.required("store.leaseName", c.Store.LeaseName)
		v.positive("store.retryPeriod", c.Store.RetryPeriod)
		if c.Store.RenewDeadline <= c.Store.RetryPeriod {
			v.add("store.renewDeadline", "must be above store.retryPeriod (%s) (got %s)", formatDuration(c.Store.RetryPeriod), formatDuration(c.Store.RenewDeadline))
		}
		if c.Store.LeaseDuration <= c.Store.RenewDeadline {
			v.add("store.leaseDuration", "must be above store.renewDeadline (%s) (got %s)", formatDuration(c.Store.RenewDeadline), formatDuration(c.Store.LeaseDuration))
		}
	default:
		v.add("store.type", "%q is not a store type (available: bolt, kubernetes)", c.Store.Type)
	}
	if c.Webhook.MaxBodyBytes < MinWebhookBodyBytes || c.Webhook.MaxBodyBytes > MaxWebhookBodyBytes {
		v.add("webhook.maxBodyBytes", "must be between %d (1 KiB) and %d (64 MiB) (got %d)", MinWebhookBodyBytes, MaxWebhookBodyBytes, c.Webhook.MaxBodyBytes)
	}

	v.required("alerts.validatorLabel", c.Alerts.ValidatorLabel)
	v.required("alerts.siteLabel", c.Alerts.SiteLabel)
	for i, m := range c.Alerts.Matchers {
		if _, err := labels.ParseMatcher(m); err != nil {
			v.add(fmt.Sprintf("alerts.matchers[%d]", i), "not an Alertmanager matcher such as failover=\"true\": %v (got %q)", err, m)
		}
	}

	v.required("heartbeat.alertName", c.Heartbeat.AlertName)
	v.required("heartbeat.siteLabel", c.Heartbeat.SiteLabel)
	v.atLeast("heartbeat.resolution", c.Heartbeat.Resolution, 0)
	// A stored heartbeat can be up to one resolution old while the site is
	// fine (closer ones are not written); at or below it, a healthy site
	// would be declared down.
	switch hb := c.Heartbeat; {
	case hb.SiteDownAfter < 0:
		v.add("heartbeat.siteDownAfter", "must be 0s (off) or more (got %s)", formatDuration(hb.SiteDownAfter))
	case hb.SiteDownAfter > 0 && hb.SiteDownAfter <= hb.Resolution:
		v.add("heartbeat.siteDownAfter", "must be above heartbeat.resolution (%s), or 0s to switch site outage detection off (got %s)",
			formatDuration(hb.Resolution), formatDuration(hb.SiteDownAfter))
	}

	e := c.Engine
	v.atLeast("engine.confirmFor", e.ConfirmFor, 0)
	v.atLeast("engine.keepWarm", e.KeepWarm, 0)
	v.positive("engine.pollInterval", e.PollInterval)
	v.positive("engine.resyncInterval", e.ResyncInterval)
	v.positive("engine.backoffBase", e.BackoffBase)
	if e.BackoffMax < e.BackoffBase {
		v.add("engine.backoffMax", "must be at least engine.backoffBase (%s) (got %s)", formatDuration(e.BackoffBase), formatDuration(e.BackoffMax))
	}
	v.positive("engine.callTimeout", e.CallTimeout)
	if e.MaxAttempts < 1 {
		v.add("engine.maxAttempts", "must be at least 1 (got %d)", e.MaxAttempts)
	}
	if e.Workers < 1 || e.Workers > MaxWorkers {
		v.add("engine.workers", "must be between 1 and %d (got %d)", MaxWorkers, e.Workers)
	}

	if c.Caps.MaxConcurrentStandbys < 1 {
		v.add("caps.maxConcurrentStandbys", "must be at least 1 (got %d)", c.Caps.MaxConcurrentStandbys)
	}
	if h := c.Caps.MonthlyStandbyHours; !(h > 0) || math.IsInf(h, 0) {
		v.add("caps.monthlyStandbyHours", "must be a number above 0 (got %s)", strconv.FormatFloat(h, 'g', -1, 64))
	}

	c.validateCloud(&v)

	if u := c.Notify.AlertmanagerURL; u != "" {
		if msg := checkHTTPURL(u); msg != "" {
			v.add("notify.alertmanagerURL", "%s (got %q)", msg, u)
		}
	}
	for name := range c.Notify.Labels {
		if strings.TrimSpace(name) == "" {
			v.add("notify.labels", "label names must not be empty")
		}
	}

	if c.Agent.Port < 1 || c.Agent.Port > 65535 {
		v.add("agent.port", "must be a TCP port, 1-65535 (got %d)", c.Agent.Port)
	}
	v.required("agent.image", c.Agent.Image)
	if c.Store.Type == StoreKubernetes && c.Agent.CASeedFile == "" && c.usesRealCloud() {
		v.add("agent.caSeedFile", "required with store.type kubernetes and a real cloud: every replica must hold the same standby CA, or a new leader cannot reach the standbys the old one made")
	}

	c.validateApproval(&v)
	c.validateFleet(&v)
	return v.err()
}

var (
	rootRE     = regexp.MustCompile(`^0x[0-9a-fA-F]{64}$`)
	pubkeyRE   = regexp.MustCompile(`^0x[0-9a-fA-F]{96}$`)
	addressRE  = regexp.MustCompile(`^0x[0-9a-fA-F]{40}$`)
	workloadRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?/(statefulset|deployment)/[a-z0-9]([-.a-z0-9]*[a-z0-9])?$`)
)

func (c *Config) validateApproval(v *validator) {
	a := c.Approval
	if len(a.AllowedSigners) > 0 {
		signers, err := approval.ParseAllowedSigners(a.AllowedSigners)
		if err != nil {
			v.add("approval.allowedSigners", "%v", err)
		} else if a.Threshold > len(signers.Principals()) && a.AllowedSignersFile == "" {
			v.add("approval.threshold", "%d approvers required but only %d are allowed (%s): no approval could ever pass",
				a.Threshold, len(signers.Principals()), strings.Join(signers.Principals(), ", "))
		}
	}
	if a.Threshold < 1 {
		v.add("approval.threshold", "must be 1 or more (got %d)", a.Threshold)
	}
	if a.Validity < time.Minute || a.Validity > approval.MaxValidity {
		v.add("approval.validity", "must be between 1m and %s (got %s)", formatDuration(approval.MaxValidity), formatDuration(a.Validity))
	}
	if a.SilentEpochs < 3 {
		v.add("approval.silentEpochs", "must be 3 or more: fewer finished epochs do not prove the old signer stopped (got %d)", a.SilentEpochs)
	}
	for i, u := range a.BeaconNodes {
		v.endpoint(fmt.Sprintf("approval.beaconNodes[%d]", i), u)
	}
	if a.SilentBlocks < 150 || a.SilentBlocks > 10000 {
		v.add("approval.silentBlocks", "must be between 150 and 10000: fewer blocks (about 5 minutes on Berachain) do not prove the old signer stopped (got %d)", a.SilentBlocks)
	}
	for i, u := range a.CometBFTNodes {
		v.endpoint(fmt.Sprintf("approval.cometbftNodes[%d]", i), u)
	}
	v.positive("approval.importTimeout", a.ImportTimeout)
}

func (c *Config) validateFleet(v *validator) {
	seen := map[string]int{}
	// A key declared twice would have two owners: reject it across the fleet.
	keyOwner := map[string]string{}
	for i, f := range c.Fleet {
		key := func(field string) string { return fmt.Sprintf("fleet[%d].%s", i, field) }
		c.validateSnapshots(v, key, f)
		switch {
		case f.Name == "":
			v.add(key("name"), "required")
		case !validName(f.Name):
			v.add(key("name"), "must be 1-40 lowercase letters, digits or '-', starting and ending with a letter or digit, because it becomes part of cloud resource names (got %q)", f.Name)
		default:
			if j, dup := seen[f.Name]; dup {
				v.add(key("name"), "duplicate of fleet[%d].name (got %q)", j, f.Name)
			} else {
				seen[f.Name] = i
			}
		}
		known := Networks(f.Chain)
		switch {
		case f.Chain == "":
			v.add(key("chain"), "required (ethereum or berachain)")
		case known == nil:
			v.add(key("chain"), "must be ethereum or berachain (got %q)", f.Chain)
		case f.Network == "":
			v.add(key("network"), "required (%s for %s)", strings.Join(known, ", "), f.Chain)
		default:
			ok := false
			for _, n := range known {
				ok = ok || n == f.Network
			}
			if !ok {
				v.add(key("network"), "not a known network for chain %s (known: %s) (got %q)", f.Chain, strings.Join(known, ", "), f.Network)
			}
		}
		if f.Site == "" && c.Heartbeat.DefaultSite == "" {
			v.add(key("site"), "required when heartbeat.defaultSite is empty")
		}
		if f.GenesisValidatorsRoot != "" && !rootRE.MatchString(f.GenesisValidatorsRoot) {
			v.add(key("genesisValidatorsRoot"), "must be 0x and 64 hex digits (got %q)", f.GenesisValidatorsRoot)
		}
		if f.Chain == ChainBerachain && len(f.Pubkeys) > 1 {
			v.add(key("pubkeys"), "a Berachain validator has one key (its priv_validator_key.json); got %d", len(f.Pubkeys))
		}
		for j, pk := range f.Pubkeys {
			field := key(fmt.Sprintf("pubkeys[%d]", j))
			if !pubkeyRE.MatchString(pk) {
				v.add(field, "must be 0x and 96 hex digits, a validator public key (got %q)", pk)
				continue
			}
			norm := strings.ToLower(pk)
			if prev, dup := keyOwner[norm]; dup {
				v.add(field, "%s is also %s: a key belongs to one validator", pk, prev)
				continue
			}
			keyOwner[norm] = field
		}
		if f.FeeRecipient != "" && !addressRE.MatchString(f.FeeRecipient) {
			v.add(key("feeRecipient"), "must be 0x and 40 hex digits, an execution address (got %q)", f.FeeRecipient)
		}
		if f.Home.Workload != "" && !workloadRE.MatchString(f.Home.Workload) {
			v.add(key("home.workload"), "must be namespace/statefulset/name or namespace/deployment/name (got %q)", f.Home.Workload)
		}
		v.providers(key("providers"), f.Providers)
	}
}

// Warnings are legal settings that probably are not what the operator wants;
// serve logs them at start.
func (c *Config) Warnings() []string {
	var w []string
	if len(c.Fleet) == 0 {
		w = append(w, "fleet is empty: no alert will open an incident")
	}
	if len(c.Alerts.Matchers) == 0 {
		w = append(w, "alerts.matchers is empty: every alert with a "+c.Alerts.ValidatorLabel+" label counts as an outage")
	}
	if c.Auth.Disabled && !loopback(c.Listen) {
		w = append(w, fmt.Sprintf("auth.disabled is true and listen %q is not a loopback address: anyone who reaches it can drive incidents", c.Listen))
	}
	used := c.UsedProviders()
	billed := slices.Contains(used, ProviderGCP) || slices.Contains(used, ProviderAWS)
	switch gc := c.Cloud.GC; {
	case gc.Interval == 0 && billed:
		w = append(w, "garbage collector off: a crash can leave a standby running (and billing)")
	case gc.Interval > 0 && gc.DryRun:
		w = append(w, "garbage collector in dry-run: it reports orphans but deletes nothing")
	}
	if s := c.Cloud.Sim; slices.Contains(used, ProviderSim) && len(s.NoCapacityZones) > 0 && len(s.Zones) > 0 {
		all := true
		for _, z := range s.Zones {
			all = all && slices.Contains(s.NoCapacityZones, z)
		}
		if all {
			w = append(w, "cloud.sim.noCapacityZones covers every zone of cloud.sim.zones: no standby can be created on sim (each falls back to the next provider, or fails)")
		}
	}
	for _, r := range []struct {
		key      string
		provider string
		ranges   []string
	}{
		{"cloud.gcp.apiSourceRanges", ProviderGCP, c.Cloud.GCP.APISourceRanges},
		{"cloud.aws.apiSourceRanges", ProviderAWS, c.Cloud.AWS.APISourceRanges},
	} {
		if !slices.Contains(used, r.provider) {
			continue
		}
		for _, cidr := range r.ranges {
			if p, err := netip.ParsePrefix(strings.TrimSpace(cidr)); err == nil && p.Bits() == 0 {
				w = append(w, fmt.Sprintf("%s has %s: the standby's API ports (RPC, beacon API, metrics) are open to the whole internet", r.key, cidr))
			}
		}
	}
	return w
}

// Matchers parses alerts.matchers the way Validate checks them, for the
// webhook mapper: an alert counts when all of them match its labels.
func (c *Config) Matchers() (labels.Matchers, error) {
	ms := make(labels.Matchers, 0, len(c.Alerts.Matchers))
	for i, s := range c.Alerts.Matchers {
		m, err := labels.ParseMatcher(s)
		if err != nil {
			return nil, fmt.Errorf("alerts.matchers[%d] %q: %w", i, s, err)
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// validName: 1-40 of [a-z0-9-], no '-' at either end. The name goes into
// standby and disk names, which GCP caps at 63 characters with a prefix and
// an incident suffix; written out rather than as a regexp to avoid a global.
func validName(s string) bool {
	if len(s) < 1 || len(s) > 40 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
			return false
		}
	}
	return true
}

// checkListen returns what is wrong with a listen address, or "".
func checkListen(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "want host:port such as 127.0.0.1:9097 or :9097"
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return "want a numeric port 0-65535"
	}
	return ""
}

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkHTTPURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "not a URL: " + err.Error()
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "want an absolute http:// or https:// URL"
	}
	if u.Host == "" {
		return "want a host, e.g. http://alertmanager:9093"
	}
	return ""
}

// validator collects problems in the order they are found.
type validator struct {
	probs []Problem
}

func (v *validator) add(key, format string, args ...any) {
	v.probs = append(v.probs, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) required(key, val string) {
	if strings.TrimSpace(val) == "" {
		v.add(key, "required")
	}
}

func (v *validator) atLeast(key string, d, lo time.Duration) {
	if d < lo {
		v.add(key, "must be %s or more (got %s)", formatDuration(lo), formatDuration(d))
	}
}

func (v *validator) positive(key string, d time.Duration) {
	if d <= 0 {
		v.add(key, "must be above 0s (got %s)", formatDuration(d))
	}
}

func (v *validator) zones(key string, zones []string) {
	for i, z := range zones {
		if strings.TrimSpace(z) == "" {
			v.add(fmt.Sprintf("%s[%d]", key, i), "must not be empty")
		}
	}
}

func (v *validator) err() error {
	if len(v.probs) == 0 {
		return nil
	}
	return &Error{Problems: v.probs}
}

// Providers lists the providers this build knows, in the order the docs give them.
func Providers() []string { return []string{ProviderSim, ProviderGCP, ProviderAWS} }

// UsedProviders are the known providers that cloud.providers or some
// fleet[].providers names, in order of first mention: the ones whose
// settings are validated and that serve must set up. Settings of the others
// are ignored, so a default block (a GCP block without a project, say)
// never fails a configuration that does not use it.
func (c *Config) UsedProviders() []string {
	var used []string
	add := func(ps []string) {
		for _, p := range ps {
			if slices.Contains(Providers(), p) && !slices.Contains(used, p) {
				used = append(used, p)
			}
		}
	}
	add(c.Cloud.Providers)
	for _, f := range c.Fleet {
		add(f.Providers)
	}
	return used
}

// Bounds of cloud settings.
const (
	// MinDiskGB is the smallest data disk (GCP disk, EBS volume) accepted:
	// below it the number is a unit mix-up, no chain fits.
	MinDiskGB = 10
	// MinGCGracePeriod bounds cloud.gc.gracePeriod while the collector runs.
	MinGCGracePeriod = time.Minute
	// EBS provisioned volume initialization rate, MiB/s.
	MinVolumeInitializationRate = 100
	MaxVolumeInitializationRate = 300
)

func (c *Config) validateCloud(v *validator) {
	cl := c.Cloud
	if len(cl.Providers) == 0 {
		v.add("cloud.providers", "must list at least one provider, in order of preference (available: %s) (got none)", strings.Join(Providers(), ", "))
	}
	v.providers("cloud.providers", cl.Providers)

	gc := cl.GC
	v.atLeast("cloud.gc.interval", gc.Interval, 0)
	if gc.Interval > 0 && gc.GracePeriod < MinGCGracePeriod {
		v.add("cloud.gc.gracePeriod", "must be at least %s while the collector runs (cloud.gc.interval above 0s): a standby being created, not yet recorded by its incident, must never look orphaned (got %s)",
			formatDuration(MinGCGracePeriod), formatDuration(gc.GracePeriod))
	}

	for _, p := range c.UsedProviders() {
		switch p {
		case ProviderSim:
			c.validateSim(v)
		case ProviderGCP:
			c.validateGCP(v)
		case ProviderAWS:
			c.validateAWS(v)
		}
	}
}

func (c *Config) validateSim(v *validator) {
	s := c.Cloud.Sim
	v.zoneList("cloud.sim.zones", s.Zones, "", "")
	if s.DiskGB < 0 {
		v.add("cloud.sim.diskGB", "must be 0 or more (got %d)", s.DiskGB)
	}
	v.atLeast("cloud.sim.bootTime", s.BootTime, 0)
	v.atLeast("cloud.sim.syncTime", s.SyncTime, 0)
	if s.Peers < 0 {
		v.add("cloud.sim.peers", "must be 0 or more (got %d)", s.Peers)
	}
	v.zones("cloud.sim.noCapacityZones", s.NoCapacityZones)
	v.price("cloud.sim.price", s.Price)
}

func (c *Config) validateGCP(v *validator) {
	g := c.Cloud.GCP
	switch {
	case strings.TrimSpace(g.Project) == "":
		v.add("cloud.gcp.project", "required: the project ID standbys are created in (cloud.providers or a fleet entry uses gcp)")
	case !gcpProjectID(g.Project):
		v.add("cloud.gcp.project", "not a GCP project ID: 6-30 lowercase letters, digits or '-', starting with a letter and not ending with '-' (got %q)", g.Project)
	}
	v.zoneList("cloud.gcp.zones", g.Zones, gcpZonePattern, "a GCP zone such as europe-west4-a")
	v.required("cloud.gcp.machineType", g.MachineType)
	v.required("cloud.gcp.diskType", g.DiskType)
	if g.DiskGB < MinDiskGB {
		v.add("cloud.gcp.diskGB", "must be at least %d (got %d)", MinDiskGB, g.DiskGB)
	}
	v.required("cloud.gcp.bootImage", g.BootImage)
	v.required("cloud.gcp.network", g.Network)
	if g.Subnetwork != "" && !matches(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`, g.Subnetwork) {
		v.add("cloud.gcp.subnetwork", "want the subnetwork's name, such as staking, not its path: the region comes from each zone, so every region of cloud.gcp.zones needs a subnetwork of that name (got %q)", g.Subnetwork)
	}
	v.cidrs("cloud.gcp.apiSourceRanges", g.APISourceRanges)
	if len(g.APISourceRanges) == 0 {
		v.add("cloud.gcp.apiSourceRanges", "required: failoverd reaches each standby's agent (agent.port) only from these ranges; list failoverd's own egress address (got none)")
	}
	for name := range g.SnapshotLabels {
		if strings.TrimSpace(name) == "" {
			v.add("cloud.gcp.snapshotLabels", "label names must not be empty")
		}
	}
	v.positive("cloud.gcp.operationTimeout", g.OperationTimeout)
	v.endpoint("cloud.gcp.endpoint", g.Endpoint)
	if g.InsecureNoAuth && strings.TrimSpace(g.Endpoint) == "" {
		v.add("cloud.gcp.insecureNoAuth", "insecureNoAuth only makes sense with an emulator endpoint: set cloud.gcp.endpoint, or remove it to use Application Default Credentials (got true)")
	}
	v.price("cloud.gcp.price", g.Price)
}

func (c *Config) validateAWS(v *validator) {
	a := c.Cloud.AWS
	v.zoneList("cloud.aws.zones", a.Zones, awsZonePattern, "an AWS availability zone such as eu-west-1a")
	for _, zone := range sortedKeys(a.Subnets) {
		key := fmt.Sprintf("cloud.aws.subnets[%s]", zone)
		if !slices.Contains(a.Zones, zone) {
			v.add(key, "not a zone of cloud.aws.zones (%s); keys are availability zones such as eu-west-1a (got %q)", strings.Join(a.Zones, ", "), zone)
		}
		if id := a.Subnets[zone]; !matches(`^subnet-[0-9a-f]{8,17}$`, id) {
			v.add(key, "not a subnet ID such as subnet-0123456789abcdef0 (got %q)", id)
		}
	}
	v.required("cloud.aws.instanceType", a.InstanceType)
	var missing []string
	for _, zone := range a.Zones {
		if !matches(awsZonePattern, zone) {
			continue // reported above; no region to derive
		}
		region := zone[:len(zone)-1]
		if _, ok := a.AMIs[region]; !ok && !slices.Contains(missing, region) {
			missing = append(missing, region)
			v.add("cloud.aws.amis", "no AMI for region %s (of zone %s): AMI IDs differ per region, give one for every region of cloud.aws.zones", region, zone)
		}
	}
	for _, region := range sortedKeys(a.AMIs) {
		if id := a.AMIs[region]; !matches(`^ami-[0-9a-f]{8,17}$`, id) {
			v.add(fmt.Sprintf("cloud.aws.amis[%s]", region), "not an AMI ID such as ami-0123456789abcdef0 (got %q)", id)
		}
	}
	if a.VolumeGB < MinDiskGB {
		v.add("cloud.aws.volumeGB", "must be at least %d (got %d)", MinDiskGB, a.VolumeGB)
	}
	switch a.VolumeType {
	case "gp3", "gp2", "io1", "io2":
	default:
		v.add("cloud.aws.volumeType", "must be one of gp3, gp2, io1, io2 (got %q)", a.VolumeType)
	}
	for name := range a.SnapshotTags {
		if strings.TrimSpace(name) == "" {
			v.add("cloud.aws.snapshotTags", "tag names must not be empty")
		}
	}
	if r := a.VolumeInitializationRate; r != 0 && (r < MinVolumeInitializationRate || r > MaxVolumeInitializationRate) {
		v.add("cloud.aws.volumeInitializationRate", "must be 0 (EBS loads a restored volume lazily) or %d to %d MiB/s, the range EBS provisions (got %d)",
			MinVolumeInitializationRate, MaxVolumeInitializationRate, r)
	}
	v.cidrs("cloud.aws.apiSourceRanges", a.APISourceRanges)
	if len(a.APISourceRanges) == 0 {
		v.add("cloud.aws.apiSourceRanges", "required: failoverd reaches each standby's agent (agent.port) only from these ranges; list failoverd's own egress address (got none)")
	}
	v.endpoint("cloud.aws.endpoint", a.Endpoint)
	v.price("cloud.aws.price", a.Price)
}

// Zone name patterns: europe-west4-a; eu-west-1a, us-gov-west-1a.
const (
	gcpZonePattern = `^[a-z]+-[a-z]+[0-9]+-[a-z]$`
	awsZonePattern = `^[a-z]{2}(-gov)?-[a-z]+-[0-9][a-z]$`
)

// matches compiles the pattern on each call: configurations are validated
// rarely, and the package keeps no globals.
func matches(pattern, s string) bool {
	return regexp.MustCompile(pattern).MatchString(s)
}

// gcpProjectID: 6-30 of [a-z0-9-], starting with a letter, not ending with '-'.
func gcpProjectID(s string) bool {
	return matches(`^[a-z][a-z0-9-]{4,28}[a-z0-9]$`, s)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// providers checks a list of provider names: known, no duplicates.
func (v *validator) providers(key string, ps []string) {
	for i, p := range ps {
		k := fmt.Sprintf("%s[%d]", key, i)
		if !slices.Contains(Providers(), p) {
			v.add(k, "not a provider (available: %s) (got %q)", strings.Join(Providers(), ", "), p)
			continue
		}
		if j := slices.Index(ps, p); j < i {
			v.add(k, "duplicate of %s[%d]: a provider is tried once, with all its zones (got %q)", key, j, p)
		}
	}
}

// zoneList checks a used provider's zones: at least one, each non-empty and
// (when pattern is set) shaped like the provider's zone names, no duplicates.
func (v *validator) zoneList(key string, zones []string, pattern, example string) {
	if len(zones) == 0 {
		v.add(key, "must list at least one zone, in order of preference (got none)")
	}
	for i, z := range zones {
		k := fmt.Sprintf("%s[%d]", key, i)
		switch {
		case strings.TrimSpace(z) == "":
			v.add(k, "must not be empty")
		case pattern != "" && !matches(pattern, z):
			v.add(k, "not %s (got %q)", example, z)
		default:
			if j := slices.Index(zones, z); j < i {
				v.add(k, "duplicate of %s[%d] (got %q)", key, j, z)
			}
		}
	}
}

// cidrs checks firewall source ranges: each a CIDR in canonical form.
func (v *validator) cidrs(key string, ranges []string) {
	for i, r := range ranges {
		k := fmt.Sprintf("%s[%d]", key, i)
		p, err := netip.ParsePrefix(r)
		switch {
		case err != nil:
			v.add(k, "not a CIDR such as 203.0.113.0/24 or 2001:db8::/32 (got %q)", r)
		case p.Masked() != p:
			v.add(k, "has bits set beyond its prefix length; did you mean %s? (got %q)", p.Masked(), r)
		}
	}
}

func (v *validator) endpoint(key, u string) {
	if u == "" {
		return
	}
	if msg := checkHTTPURL(u); msg != "" {
		v.add(key, "%s (got %q)", msg, u)
	}
}

func (v *validator) price(key string, p Price) {
	nonNegative := func(field string, x float64) {
		if !(x >= 0) || math.IsInf(x, 0) {
			v.add(key+"."+field, "must be a number of 0 or more (got %s)", strconv.FormatFloat(x, 'g', -1, 64))
		}
	}
	nonNegative("hourlyUSD", p.HourlyUSD)
	nonNegative("diskGBMonthUSD", p.DiskGBMonthUSD)
	if d := p.SpotDiscount; !(d >= 0 && d < 1) {
		v.add(key+".spotDiscount", "must be at least 0 and below 1, the fraction of hourlyUSD saved on spot (got %s)", strconv.FormatFloat(d, 'g', -1, 64))
	}
}

// validateSnapshots checks a validator's warm-snapshot schedule. The
// snapshots go to the validator's first provider; for a real cloud its
// snapshot selector must be set, or provisioning would never use them.
func (c *Config) validateSnapshots(v *validator, key func(string) string, f Validator) {
	sn := f.Snapshots
	if sn.Every == 0 {
		return
	}
	if sn.Every < time.Hour {
		v.add(key("snapshots.every"), "must be 0 (off) or at least 1h: a run syncs a node for hours (got %s)", formatDuration(sn.Every))
	}
	if sn.Retain < 1 {
		v.add(key("snapshots.retain"), "must keep at least 1 snapshot when snapshots.every is set (got %d)", sn.Retain)
	}
	providers := c.ProvidersFor(f)
	if len(providers) == 0 {
		return
	}
	switch providers[0] {
	case ProviderGCP:
		if len(c.Cloud.GCP.SnapshotLabels) == 0 {
			v.add(key("snapshots.every"), "needs cloud.gcp.snapshotLabels: provisioning starts from snapshots with those labels, so without them the keeper's snapshots would never be used")
		}
	case ProviderAWS:
		if len(c.Cloud.AWS.SnapshotTags) == 0 {
			v.add(key("snapshots.every"), "needs cloud.aws.snapshotTags: provisioning starts from snapshots with those tags, so without them the keeper's snapshots would never be used")
		}
	}
}

// SnapshotLabels are the labels the keeper puts on its snapshots for a
// provider: the ones provisioning selects by.
func (c *Config) SnapshotLabels(provider string) map[string]string {
	switch provider {
	case ProviderGCP:
		return c.Cloud.GCP.SnapshotLabels
	case ProviderAWS:
		return c.Cloud.AWS.SnapshotTags
	}
	return nil
}

// usesRealCloud reports whether any validator may get a GCP or AWS standby.
func (c *Config) usesRealCloud() bool {
	for _, p := range c.UsedProviders() {
		if p == ProviderGCP || p == ProviderAWS {
			return true
		}
	}
	return false
}
