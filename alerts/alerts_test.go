// Package alerts holds failoverd's Prometheus rules (*.rules.yaml) and their
// promtool unit tests (tests/*.test.yaml). This file checks them three ways.
//
// With the real promtool (`promtool check rules`, `promtool test rules`),
// found in $FAILOVERD_TOOLS_BIN (tools/build.sh builds the pinned 3.15.0
// there) or PATH; without it those tests skip, unless FAILOVERD_E2E_REQUIRED
// is set.
//
// In Go, the contract with failoverd and the runbooks: exactly the
// catalogue's alerts, each with severity, the catalogue's failover label,
// summary, description and its runbook_url, and a firing and a non-firing
// unit test case whose expected labels include validator and site.
//
// And the chart's copy (charts/failoverd/rules) must be identical. Run:
//
//	FAILOVERD_TOOLS_BIN=$(tools/build.sh) go test ./alerts/
package alerts

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// runbookBase is where every alert's runbook_url points: runbookBase + name + ".md".
const runbookBase = "https://github.com/failoverd/failoverd/blob/main/runbooks/"

// heartbeat is failoverd's per-site heartbeat (config heartbeat.alertName).
// It has a site but no validator, and no non-firing case: it always fires.
const heartbeat = "Watchdog"

// catalogue: every validator-facing alert, and whether it carries
// failover="true" (failoverd's default alerts.matchers) to start a standby.
var catalogue = map[string]bool{
	"GethDown":                     true,
	"GethHeadStale":                false,
	"GethPeersLow":                 false,
	"LighthouseBeaconDown":         true,
	"LighthouseBeaconNotSynced":    false,
	"LighthouseBeaconOptimistic":   false,
	"LighthouseBeaconPeersLow":     false,
	"LighthouseValidatorDown":      true,
	"LighthouseMissedAttestations": true,
	"BeacondDown":                  true,
	"BeacondNotCatchingUp":         false,
	"BerachainMissedBlocks":        true,
	"ValidatorNodeNotReady":        true,
	"ChainDataVolumeFilling":       false,
	"NodeClockSkew":                false,
}

// The YAML shapes below are Prometheus' rule file and promtool's unit test
// file, field for field; they are read strictly, so a misspelt key fails here
// instead of being ignored.

type ruleFile struct {
	Groups []ruleGroup `json:"groups"`
}

type ruleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Limit    int    `json:"limit,omitempty"`
	Rules    []rule `json:"rules"`
}

type rule struct {
	Alert         string            `json:"alert,omitempty"`
	Record        string            `json:"record,omitempty"`
	Expr          string            `json:"expr"`
	For           string            `json:"for,omitempty"`
	KeepFiringFor string            `json:"keep_firing_for,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

type testFile struct {
	RuleFiles          []string    `json:"rule_files"`
	EvaluationInterval string      `json:"evaluation_interval,omitempty"`
	GroupEvalOrder     []string    `json:"group_eval_order,omitempty"`
	FuzzyCompare       bool        `json:"fuzzy_compare,omitempty"`
	Tests              []testGroup `json:"tests"`
}

type testGroup struct {
	Name           string            `json:"name,omitempty"`
	Interval       string            `json:"interval"`
	InputSeries    []inputSeries     `json:"input_series"`
	AlertRuleTests []alertTest       `json:"alert_rule_test,omitempty"`
	PromqlExprTest []any             `json:"promql_expr_test,omitempty"`
	ExternalLabels map[string]string `json:"external_labels,omitempty"`
	ExternalURL    string            `json:"external_url,omitempty"`
}

type inputSeries struct {
	Series string `json:"series"`
	Values string `json:"values"`
}

type alertTest struct {
	EvalTime  string     `json:"eval_time"`
	Alertname string     `json:"alertname"`
	ExpAlerts []expAlert `json:"exp_alerts"`
}

type expAlert struct {
	ExpLabels      map[string]string `json:"exp_labels"`
	ExpAnnotations map[string]string `json:"exp_annotations"`
}

// loadYAML reads every file matching pattern into a map keyed by base name.
func loadYAML[T any](pattern string) (map[string]T, error) {
	paths, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no file matches %s", pattern)
	}
	out := map[string]T{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var v T
		if err := yaml.UnmarshalStrict(b, &v); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out[filepath.Base(p)] = v
	}
	return out, nil
}

// promDuration parses a Prometheus duration (1h30m, 5m, 1d, ...).
var promDurationRE = regexp.MustCompile(`^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$`)

func promDuration(s string) (time.Duration, error) {
	m := promDurationRE.FindStringSubmatch(s)
	if s == "" || m == nil {
		return 0, fmt.Errorf("%q is not a Prometheus duration", s)
	}
	units := []time.Duration{365 * 24 * time.Hour, 7 * 24 * time.Hour, 24 * time.Hour, time.Hour, time.Minute, time.Second, time.Millisecond}
	var d time.Duration
	for i, u := range units {
		if m[i+1] != "" {
			n, _ := strconv.Atoi(m[i+1])
			d += time.Duration(n) * u
		}
	}
	return d, nil
}

// Hold-downs: Prometheus' `for` comes before failoverd's own confirmFor
// (2 minutes by default). An alert that starts a standby must have seen the
// fault for minutes, never seconds; none should wait longer than an hour.
const (
	minFor         = time.Minute
	minFailoverFor = 2 * time.Minute
	maxFor         = time.Hour
)

// checkRules returns every way the rule files break the catalogue's contract.
func checkRules(files map[string]ruleFile) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	seen := map[string]string{}
	groups := map[string]string{}
	for _, name := range sortedKeys(files) {
		f := files[name]
		if len(f.Groups) == 0 {
			bad("%s: no rule groups", name)
		}
		for _, g := range f.Groups {
			if g.Name == "" {
				bad("%s: a group without a name", name)
			} else if other, ok := groups[g.Name]; ok {
				bad("%s: group %s is also in %s (Prometheus refuses duplicate group names)", name, g.Name, other)
			}
			groups[g.Name] = name
			for _, r := range g.Rules {
				if r.Alert == "" {
					bad("%s: group %s has a rule that is not an alert (recording rule %q): these files hold the alert catalogue only", name, g.Name, r.Record)
					continue
				}
				a := r.Alert
				failover, known := catalogue[a]
				if !known && a != heartbeat {
					bad("%s: %s is not in the catalogue (alerts/alerts_test.go, alerts/README.md)", name, a)
				}
				if other, ok := seen[a]; ok {
					bad("%s: %s is also defined in %s", name, a, other)
				}
				seen[a] = name
				if strings.TrimSpace(r.Expr) == "" {
					bad("%s: %s has no expr", name, a)
				}

				sev := r.Labels["severity"]
				switch {
				case a == heartbeat && sev != "none":
					bad("%s: %s needs severity \"none\", has %q", name, a, sev)
				case a != heartbeat && sev != "critical" && sev != "warning":
					bad("%s: %s needs severity \"critical\" or \"warning\", has %q", name, a, sev)
				}

				fo, hasFailover := r.Labels["failover"]
				switch {
				case failover && fo != "true":
					bad("%s: %s must carry failover=\"true\" (the catalogue starts a standby on it), has %q", name, a, fo)
				case !failover && hasFailover:
					bad("%s: %s must not carry a failover label (failover=%q): only the catalogue's failover alerts have one", name, a, fo)
				}

				for _, l := range []string{"validator", "site"} {
					if v, ok := r.Labels[l]; ok && !(a == heartbeat && l == "site") {
						bad("%s: %s sets %s=%q itself: it must come from the series (the operator's relabelling)", name, a, l, v)
					}
				}

				if a == heartbeat {
					if r.Expr != "vector(1)" || r.For != "" {
						bad("%s: %s must be `vector(1)` with no `for`: it fires always, at once", name, a)
					}
					if r.Labels["site"] != "{{ $externalLabels.site }}" {
						bad("%s: %s must take site from the external labels, has site=%q", name, a, r.Labels["site"])
					}
				} else {
					d, err := promDuration(r.For)
					switch {
					case err != nil:
						bad("%s: %s: for: %v", name, a, err)
					case failover && d < minFailoverFor:
						bad("%s: %s starts a standby after only %s (for); confirm a fault for at least %s", name, a, r.For, minFailoverFor)
					case d < minFor || d > maxFor:
						bad("%s: %s: for %s is outside [%s, %s]", name, a, r.For, minFor, maxFor)
					}
				}

				for _, k := range []string{"summary", "description"} {
					if strings.TrimSpace(r.Annotations[k]) == "" {
						bad("%s: %s has no %s annotation", name, a, k)
					}
				}
				if want := runbookBase + a + ".md"; r.Annotations["runbook_url"] != want {
					bad("%s: %s: runbook_url is %q, want %q", name, a, r.Annotations["runbook_url"], want)
				}
			}
		}
	}
	for _, a := range append(sortedKeys(catalogue), heartbeat) {
		if _, ok := seen[a]; !ok {
			bad("%s: missing (it is in the catalogue)", a)
		}
	}
	return problems
}

// checkTests returns every alert whose unit tests do not show it firing
// with the labels failoverd needs, and not firing when it must not.
func checkTests(tests map[string]testFile, rules map[string]ruleFile) []string {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	byName := map[string]rule{}
	for _, f := range rules {
		for _, g := range f.Groups {
			for _, r := range g.Rules {
				if r.Alert != "" {
					byName[r.Alert] = r
				}
			}
		}
	}
	firing, quiet := map[string]int{}, map[string]int{}
	heartbeatSite, heartbeatNoSite := 0, 0
	for _, name := range sortedKeys(tests) {
		tf := tests[name]
		if len(tf.RuleFiles) == 0 {
			bad("%s: no rule_files", name)
		}
		for _, rf := range tf.RuleFiles {
			if _, ok := rules[filepath.Base(rf)]; !ok || filepath.Dir(rf) != ".." {
				bad("%s: rule file %s is not one of alerts/*.rules.yaml (as ../NAME.rules.yaml)", name, rf)
			}
		}
		for _, g := range tf.Tests {
			for _, at := range g.AlertRuleTests {
				r, ok := byName[at.Alertname]
				if !ok {
					bad("%s: %q tests %s, which no rule file defines", name, g.Name, at.Alertname)
					continue
				}
				if len(at.ExpAlerts) == 0 {
					quiet[at.Alertname]++
					continue
				}
				firing[at.Alertname]++
				for _, e := range at.ExpAlerts {
					where := fmt.Sprintf("%s: %q at %s: %s", name, g.Name, at.EvalTime, at.Alertname)
					for _, k := range []string{"severity", "failover"} {
						if e.ExpLabels[k] != r.Labels[k] {
							bad("%s expects %s=%q, the rule sets %q", where, k, e.ExpLabels[k], r.Labels[k])
						}
					}
					if at.Alertname == heartbeat {
						if e.ExpLabels["site"] != "" {
							heartbeatSite++
						} else {
							heartbeatNoSite++
						}
						if _, ok := e.ExpLabels["validator"]; ok {
							bad("%s expects a validator label: the heartbeat is per site", where)
						}
					} else {
						for _, k := range []string{"validator", "site"} {
							if e.ExpLabels[k] == "" {
								bad("%s does not expect a %s label: failoverd keys incidents on validator and site", where, k)
							}
						}
					}
					for _, k := range []string{"summary", "description", "runbook_url"} {
						if e.ExpAnnotations[k] == "" {
							bad("%s does not check the %s annotation", where, k)
						}
					}
				}
			}
		}
	}
	for _, a := range sortedKeys(byName) {
		if firing[a] == 0 {
			bad("%s: no test case where it fires", a)
		}
		if a == heartbeat {
			if heartbeatSite == 0 || heartbeatNoSite == 0 {
				bad("%s: needs a firing case with a site (external label) and one without", a)
			}
			continue
		}
		if quiet[a] == 0 {
			bad("%s: no test case where it must not fire (exp_alerts: [])", a)
		}
	}
	return problems
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func mustLoad(t *testing.T) (map[string]ruleFile, map[string]testFile) {
	t.Helper()
	rules, err := loadYAML[ruleFile]("*.rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests, err := loadYAML[testFile](filepath.Join("tests", "*.test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return rules, tests
}

func TestRulesFollowTheCatalogue(t *testing.T) {
	rules, _ := mustLoad(t)
	for _, p := range checkRules(rules) {
		t.Error(p)
	}
}

func TestEveryAlertFiresAndStaysQuietInTests(t *testing.T) {
	rules, tests := mustLoad(t)
	for _, p := range checkTests(tests, rules) {
		t.Error(p)
	}
}

// clone deep-copies through YAML, so a mutation leaves the original alone.
func clone[T any](t *testing.T, v T) T {
	t.Helper()
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out T
	if err := yaml.UnmarshalStrict(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// findRule returns the rule for alert in files, for a mutation to edit.
func findRule(t *testing.T, files map[string]ruleFile, alert string) *rule {
	t.Helper()
	for _, f := range files {
		for gi := range f.Groups {
			for ri := range f.Groups[gi].Rules {
				if f.Groups[gi].Rules[ri].Alert == alert {
					return &f.Groups[gi].Rules[ri]
				}
			}
		}
	}
	t.Fatalf("no rule %s", alert)
	return nil
}

// TestCheckersCatchMistakes feeds the checkers broken copies of the real
// files: each mistake must be reported.
func TestCheckersCatchMistakes(t *testing.T) {
	rules, tests := mustLoad(t)
	for _, tc := range []struct {
		name   string
		mutate func(*rule)
		want   string
	}{
		{"no severity", func(r *rule) { delete(r.Labels, "severity") }, "GethDown needs severity"},
		{"severity page", func(r *rule) { r.Labels["severity"] = "page" }, "GethDown needs severity"},
		{"runbook elsewhere", func(r *rule) { r.Annotations["runbook_url"] = "https://wiki.example.org/GethDown" }, "runbook_url is"},
		{"runbook of another alert", func(r *rule) { r.Annotations["runbook_url"] = runbookBase + "GethHeadStale.md" }, "runbook_url is"},
		{"failover missing", func(r *rule) { delete(r.Labels, "failover") }, "must carry failover=\"true\""},
		{"failover false", func(r *rule) { r.Labels["failover"] = "false" }, "must carry failover=\"true\""},
		{"static validator", func(r *rule) { r.Labels["validator"] = "eth-mainnet-1" }, "must come from the series"},
		{"static site", func(r *rule) { r.Labels["site"] = "basement" }, "must come from the series"},
		{"seconds", func(r *rule) { r.For = "30s" }, "after only 30s"},
		{"no for", func(r *rule) { r.For = "" }, "not a Prometheus duration"},
		{"no summary", func(r *rule) { delete(r.Annotations, "summary") }, "no summary annotation"},
		{"renamed", func(r *rule) { r.Alert = "GethIsDown" }, "GethIsDown is not in the catalogue"},
	} {
		t.Run("rules/"+tc.name, func(t *testing.T) {
			files := clone(t, rules)
			tc.mutate(findRule(t, files, "GethDown"))
			if !containsProblem(checkRules(files), tc.want) {
				t.Fatalf("checkRules missed %q: %v", tc.want, checkRules(files))
			}
		})
	}
	t.Run("rules/failover on a warning", func(t *testing.T) {
		files := clone(t, rules)
		findRule(t, files, "GethPeersLow").Labels["failover"] = "true"
		if !containsProblem(checkRules(files), "GethPeersLow must not carry a failover label") {
			t.Fatal(checkRules(files))
		}
	})
	t.Run("rules/renamed is also missing", func(t *testing.T) {
		files := clone(t, rules)
		findRule(t, files, "NodeClockSkew").Alert = "ClockSkew"
		if !containsProblem(checkRules(files), "NodeClockSkew: missing") {
			t.Fatal(checkRules(files))
		}
	})
	t.Run("rules/watchdog with a for", func(t *testing.T) {
		files := clone(t, rules)
		findRule(t, files, heartbeat).For = "5m"
		if !containsProblem(checkRules(files), "must be `vector(1)`") {
			t.Fatal(checkRules(files))
		}
	})
	t.Run("rules/misspelt key", func(t *testing.T) {
		var f ruleFile
		err := yaml.UnmarshalStrict([]byte("groups:\n- name: x\n  rules:\n  - alert: GethDown\n    expr: up == 0\n    lables: {severity: critical}\n"), &f)
		if err == nil || !strings.Contains(err.Error(), "lables") {
			t.Fatalf("a misspelt key was accepted: %v", err)
		}
	})

	// Tests: drop cases or expected labels.
	dropCases := func(files map[string]testFile, alert string, firing bool) {
		for name, f := range files {
			for gi := range f.Tests {
				var kept []alertTest
				for _, at := range f.Tests[gi].AlertRuleTests {
					if at.Alertname == alert && (len(at.ExpAlerts) > 0) == firing {
						continue
					}
					kept = append(kept, at)
				}
				f.Tests[gi].AlertRuleTests = kept
			}
			files[name] = f
		}
	}
	t.Run("tests/no quiet case", func(t *testing.T) {
		files := clone(t, tests)
		dropCases(files, "GethDown", false)
		if !containsProblem(checkTests(files, rules), "GethDown: no test case where it must not fire") {
			t.Fatal(checkTests(files, rules))
		}
	})
	t.Run("tests/no firing case", func(t *testing.T) {
		files := clone(t, tests)
		dropCases(files, "BerachainMissedBlocks", true)
		if !containsProblem(checkTests(files, rules), "BerachainMissedBlocks: no test case where it fires") {
			t.Fatal(checkTests(files, rules))
		}
	})
	t.Run("tests/watchdog without the no-site case", func(t *testing.T) {
		files := clone(t, tests)
		f := files["watchdog.test.yaml"]
		f.Tests = f.Tests[:1]
		files["watchdog.test.yaml"] = f
		if !containsProblem(checkTests(files, rules), "Watchdog: needs a firing case with a site") {
			t.Fatal(checkTests(files, rules))
		}
	})
	t.Run("tests/expected labels without site", func(t *testing.T) {
		files := clone(t, tests)
		f := files["node.test.yaml"]
		for gi := range f.Tests {
			for ai := range f.Tests[gi].AlertRuleTests {
				for ei := range f.Tests[gi].AlertRuleTests[ai].ExpAlerts {
					delete(f.Tests[gi].AlertRuleTests[ai].ExpAlerts[ei].ExpLabels, "site")
				}
			}
		}
		if !containsProblem(checkTests(files, rules), "does not expect a site label") {
			t.Fatal(checkTests(files, rules))
		}
	})
	t.Run("tests/expected failover differs from the rule", func(t *testing.T) {
		files := clone(t, tests)
		f := files["berachain.test.yaml"]
		for gi := range f.Tests {
			for ai := range f.Tests[gi].AlertRuleTests {
				for ei := range f.Tests[gi].AlertRuleTests[ai].ExpAlerts {
					delete(f.Tests[gi].AlertRuleTests[ai].ExpAlerts[ei].ExpLabels, "failover")
				}
			}
		}
		if !containsProblem(checkTests(files, rules), "expects failover=\"\", the rule sets \"true\"") {
			t.Fatal(checkTests(files, rules))
		}
	})
}

func containsProblem(problems []string, want string) bool {
	for _, p := range problems {
		if strings.Contains(p, want) {
			return true
		}
	}
	return false
}

// promtoolBin finds promtool in $FAILOVERD_TOOLS_BIN, then PATH, or skips
// (fails under FAILOVERD_E2E_REQUIRED, as `make test` sets it).
func promtoolBin(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("FAILOVERD_TOOLS_BIN"); d != "" {
		p := filepath.Join(d, "promtool")
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	msg := "promtool not found in $FAILOVERD_TOOLS_BIN or PATH: build it with `make tools` and set FAILOVERD_TOOLS_BIN=$(tools/build.sh)"
	if os.Getenv("FAILOVERD_E2E_REQUIRED") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// promtool runs promtool in dir and returns its combined output.
func promtool(t *testing.T, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(promtoolBin(t), args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func TestPromtoolCheckRules(t *testing.T) {
	files, _ := filepath.Glob("*.rules.yaml")
	if len(files) == 0 {
		t.Fatal("no *.rules.yaml")
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			if out, err := promtool(t, ".", "check", "rules", "--lint=all", "--lint-fatal", f); err != nil {
				t.Fatalf("promtool check rules %s: %v\n%s", f, err, out)
			}
		})
	}
}

func TestPromtoolTestRules(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("tests", "*.test.yaml"))
	if len(files) == 0 {
		t.Fatal("no tests/*.test.yaml")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			out, err := promtool(t, ".", "test", "rules", f)
			if err != nil || !strings.Contains(out, "SUCCESS") {
				t.Fatalf("promtool test rules %s: %v\n%s", f, err, out)
			}
		})
	}
}

// TestPromtoolCatchesWrongExpectations: a unit test that expects the wrong
// thing makes promtool, and so TestPromtoolTestRules, fail; and so does a
// rule that does not parse.
func TestPromtoolCatchesWrongExpectations(t *testing.T) {
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join("tests", "ethereum.test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct{ name, from, to string }{
		{"wrong value", "only 4 peers", "only 5 peers"},
		{"wrong failover label", "site: basement\n              severity: critical\n              failover: \"true\"", "site: basement\n              severity: critical\n              failover: \"false\""},
		{"quiet when it fires", "eval_time: 7m  # down for 2 minutes: pending, not firing", "eval_time: 10m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := string(b)
			if !strings.Contains(s, tc.from) {
				t.Fatalf("tests/ethereum.test.yaml no longer contains %q: update this test", tc.from)
			}
			s = strings.Replace(s, tc.from, tc.to, 1)
			s = strings.Replace(s, "../ethereum.rules.yaml", filepath.Join(here, "ethereum.rules.yaml"), 1)
			f := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".test.yaml")
			if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := promtool(t, dir, "test", "rules", f); err == nil {
				t.Fatalf("promtool accepted a wrong expectation:\n%s", out)
			}
		})
	}
	t.Run("broken expression", func(t *testing.T) {
		f := filepath.Join(dir, "broken.rules.yaml")
		if err := os.WriteFile(f, []byte("groups:\n- name: x\n  rules:\n  - alert: GethDown\n    expr: max by (validator, site (up == 0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := promtool(t, dir, "check", "rules", f); err == nil {
			t.Fatalf("promtool accepted a broken expression:\n%s", out)
		}
	})
}

// chartRules is the chart's copy: helm reads only files inside the chart.
const chartRules = "../charts/failoverd/rules"

func TestChartCopyInSync(t *testing.T) {
	const fix = "run alerts/sync-chart.sh (or `make rules`) and commit charts/failoverd/rules"
	ours, _ := filepath.Glob("*.rules.yaml")
	theirs, _ := filepath.Glob(filepath.Join(chartRules, "*"))
	if len(theirs) != len(ours) {
		t.Errorf("charts/failoverd/rules has %d files, alerts/ has %d rule files: %s", len(theirs), len(ours), fix)
	}
	for _, f := range ours {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(chartRules, f))
		if err != nil {
			t.Errorf("%v: %s", err, fix)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("charts/failoverd/rules/%s differs from alerts/%s: %s", f, f, fix)
		}
	}
}
