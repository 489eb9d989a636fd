package config

import (
	"fmt"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/pkg/labels"
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
	case "kubernetes":
		v.add("store.type", "%q is not available yet: it comes with the helm chart (available: bolt)", c.Store.Type)
	default:
		v.add("store.type", "%q is not a store type (available: bolt)", c.Store.Type)
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

	switch c.Cloud.Provider {
	case ProviderSim:
	case "":
		v.add("cloud.provider", "required (available: sim)")
	default:
		v.add("cloud.provider", "%q is not available in this build (available: sim)", c.Cloud.Provider)
	}
	p := c.Cloud.Placement
	if len(p.Zones) == 0 {
		v.add("cloud.placement.zones", "must list at least one zone (got none)")
	}
	v.zones("cloud.placement.zones", p.Zones)
	v.required("cloud.placement.machineType", p.MachineType)
	if p.DiskGB < 1 {
		v.add("cloud.placement.diskGB", "must be at least 1 (got %d)", p.DiskGB)
	}
	v.atLeast("cloud.sim.bootTime", c.Cloud.Sim.BootTime, 0)
	v.atLeast("cloud.sim.syncTime", c.Cloud.Sim.SyncTime, 0)
	if c.Cloud.Sim.Peers < 0 {
		v.add("cloud.sim.peers", "must be 0 or more (got %d)", c.Cloud.Sim.Peers)
	}
	v.zones("cloud.sim.noCapacityZones", c.Cloud.Sim.NoCapacityZones)

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

	c.validateFleet(&v)
	return v.err()
}

func (c *Config) validateFleet(v *validator) {
	seen := map[string]int{}
	for i, f := range c.Fleet {
		key := func(field string) string { return fmt.Sprintf("fleet[%d].%s", i, field) }
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
		v.zones(key("placement.zones"), f.Placement.Zones)
		if f.Placement.DiskGB < 0 {
			v.add(key("placement.diskGB"), "must be 0 (inherit cloud.placement.diskGB) or more (got %d)", f.Placement.DiskGB)
		}
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
	if len(c.Cloud.Sim.NoCapacityZones) > 0 && c.Cloud.Provider == ProviderSim {
		blocked := map[string]bool{}
		for _, z := range c.Cloud.Sim.NoCapacityZones {
			blocked[z] = true
		}
		all := len(c.Cloud.Placement.Zones) > 0
		for _, z := range c.Cloud.Placement.Zones {
			all = all && blocked[z]
		}
		if all {
			w = append(w, "cloud.sim.noCapacityZones covers every zone of cloud.placement.zones: every standby will fail for lack of capacity")
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
