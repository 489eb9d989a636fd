package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/failoverd/failoverd/cloud"
)

func files(t testing.TB, pattern string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatalf("no testdata/%s", pattern)
	}
	return names
}

func TestGoodFiles(t *testing.T) {
	for _, name := range files(t, "*.good.yaml") {
		t.Run(filepath.Base(name), func(t *testing.T) {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := Parse(data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatalf("Validate after Parse: %v", err)
			}
			// Load of the same file, no environment and no flags, agrees.
			loaded, err := Load(LoadOptions{File: name})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !reflect.DeepEqual(cfg, loaded) {
				t.Errorf("Parse and Load differ:\n%+v\n%+v", cfg, loaded)
			}
		})
	}
}

func TestBadFiles(t *testing.T) {
	bad := files(t, "*.bad.yaml")
	if len(bad) < 12 {
		t.Errorf("want at least 12 bad files, have %d", len(bad))
	}
	for _, name := range bad {
		t.Run(filepath.Base(name), func(t *testing.T) {
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			want, ok := strings.CutPrefix(first, "# error: ")
			if !ok || want == "" {
				t.Fatalf("first line must be '# error: <substring>', is %q", first)
			}
			_, err = Load(LoadOptions{File: name})
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not contain %q:\n%v", want, err)
			}
			// The error names the file.
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error does not name the file %s: %v", name, err)
			}
			if _, err := Parse(data); err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("Parse: want error containing %q, got %v", want, err)
			}
		})
	}
}

func TestDefaultIsValid(t *testing.T) {
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Warnings(); len(got) != 1 || !strings.Contains(got[0], "fleet is empty: no alert will open an incident") {
		t.Errorf("Warnings = %q", got)
	}
	// Load with nothing equals Default.
	loaded, err := Load(LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*loaded, cfg) {
		t.Errorf("Load() = %+v, want Default() %+v", *loaded, cfg)
	}
}

func TestFullFileSetsEveryKey(t *testing.T) {
	cfg, err := Load(LoadOptions{File: "testdata/full.good.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	// Every settable key differs from its default, so none was silently dropped.
	got, def := reflect.ValueOf(*cfg), reflect.ValueOf(Default())
	for _, k := range Keys() {
		if !k.Settable() {
			continue
		}
		if reflect.DeepEqual(valueAt(got, k.Path).Interface(), valueAt(def, k.Path).Interface()) && k.Path != "store.type" &&
			k.Path != "auth.disabled" && k.Path != "cloud.provider" {
			t.Errorf("%s: still the default %v", k.Path, valueAt(got, k.Path).Interface())
		}
	}
	// Case survives in label names (viper would lowercase them).
	if cfg.Notify.Labels["Cluster"] != "home-rke2" {
		t.Errorf("notify.labels = %v, want key Cluster kept", cfg.Notify.Labels)
	}
	v, ok := cfg.Validator("eth-mainnet-1")
	if !ok || v.Clients.Consensus.Image != "sigp/lighthouse:v8.0.1" || v.Placement.DiskGB != 3000 {
		t.Errorf("fleet[0] = %+v", v)
	}
	if cfg.Engine.CallTimeout != 90*time.Second || cfg.Caps.MonthlyStandbyHours != 120.5 {
		t.Errorf("engine/caps = %+v %+v", cfg.Engine, cfg.Caps)
	}
	ms, err := cfg.Matchers()
	if err != nil || len(ms) != 3 || ms[1].Name != "severity" || !ms[1].Matches("page") || ms[1].Matches("warning") {
		t.Errorf("Matchers() = %v, %v", ms, err)
	}
}

func TestSiteDefaultsFromHeartbeat(t *testing.T) {
	cfg, err := Load(LoadOptions{File: "testdata/berachain.good.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Fleet[0].Site != "garage" || cfg.Fleet[1].Site != "basement" {
		t.Errorf("sites = %q, %q; want garage (defaulted), basement", cfg.Fleet[0].Site, cfg.Fleet[1].Site)
	}
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestEnvPrecedence(t *testing.T) {
	cfg, err := Load(LoadOptions{
		File: "testdata/env-overridden.good.yaml",
		Getenv: env(map[string]string{
			"FAILOVERD_DATA_DIR":                   "/from/env",
			"FAILOVERD_ENGINE_CONFIRM_FOR":         "45s",
			"FAILOVERD_ENGINE_KEEP_WARM":           "1h",
			"FAILOVERD_CLOUD_PLACEMENT_ZONES":      "env-a, env-b,,",
			"FAILOVERD_NOTIFY_ALERTMANAGER_URL":    "http://am:9093",
			"FAILOVERD_AUTH_DISABLED":              "true",
			"FAILOVERD_CAPS_MONTHLY_STANDBY_HOURS": "12.5",
			"FAILOVERD_WEBHOOK_MAX_BODY_BYTES":     "4096",
			"FAILOVERD_LISTEN":                     "", // empty counts as unset
			"UNRELATED":                            "x",
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"listen (file, env empty)", cfg.Listen, "127.0.0.1:9100"},
		{"dataDir (env over file)", cfg.DataDir, "/from/env"},
		{"engine.confirmFor (env over file)", cfg.Engine.ConfirmFor, 45 * time.Second},
		{"engine.keepWarm (env over default)", cfg.Engine.KeepWarm, time.Hour},
		{"engine.workers (file)", cfg.Engine.Workers, 2},
		{"engine.pollInterval (default)", cfg.Engine.PollInterval, 15 * time.Second},
		{"cloud.placement.zones (env list)", cfg.Cloud.Placement.Zones, []string{"env-a", "env-b"}},
		{"notify.alertmanagerURL", cfg.Notify.AlertmanagerURL, "http://am:9093"},
		{"auth.disabled", cfg.Auth.Disabled, true},
		{"caps.monthlyStandbyHours", cfg.Caps.MonthlyStandbyHours, 12.5},
		{"webhook.maxBodyBytes", cfg.Webhook.MaxBodyBytes, int64(4096)},
		{"fleet (file only)", len(cfg.Fleet), 1},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.key, c.got, c.want)
		}
	}
}

func TestEnvErrorsNameVariableAndKey(t *testing.T) {
	_, err := Load(LoadOptions{Getenv: env(map[string]string{
		"FAILOVERD_ENGINE_WORKERS":     "four",
		"FAILOVERD_ENGINE_CONFIRM_FOR": "120",
		"FAILOVERD_AUTH_DISABLED":      "maybe",
	})})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`engine.workers: FAILOVERD_ENGINE_WORKERS: want a whole number (got "four")`,
		`engine.confirmFor: FAILOVERD_ENGINE_CONFIRM_FOR: want a duration`,
		`auth.disabled: FAILOVERD_AUTH_DISABLED: want true or false (got "maybe")`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 3 {
		t.Errorf("want an *Error with 3 problems, got %#v", err)
	}
}

func TestFlagPrecedence(t *testing.T) {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.String("data-dir", "/flag/default", "")
	fs.Duration("engine-confirm-for", time.Hour, "")
	fs.Int("engine-workers", 99, "") // never set: its default must not win
	fs.StringSlice("alerts-matchers", nil, "")
	fs.String("listen", "", "")
	fs.String("engine-poll-interval", "", "") // a string flag for a duration key
	fs.String("config", "", "")               // not a key: ignored
	if err := fs.Parse([]string{
		"--data-dir=/from/flag",
		"--engine-confirm-for=10s",
		"--alerts-matchers=team=staking,failover=true",
		"--engine-poll-interval=3s",
		"--config=whatever.yaml",
	}); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(LoadOptions{
		File: "testdata/env-overridden.good.yaml",
		Getenv: env(map[string]string{
			"FAILOVERD_DATA_DIR":           "/from/env",
			"FAILOVERD_ENGINE_CONFIRM_FOR": "45s",
			"FAILOVERD_LISTEN":             "127.0.0.1:9200",
		}),
		Flags: fs,
	})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		key       string
		got, want any
	}{
		{"dataDir (flag over env)", cfg.DataDir, "/from/flag"},
		{"engine.confirmFor (flag over env)", cfg.Engine.ConfirmFor, 10 * time.Second},
		{"engine.workers (unset flag: file)", cfg.Engine.Workers, 2},
		{"listen (unset flag: env)", cfg.Listen, "127.0.0.1:9200"},
		{"alerts.matchers (flag list)", cfg.Alerts.Matchers, []string{"team=staking", "failover=true"}},
		{"engine.pollInterval (string flag)", cfg.Engine.PollInterval, 3 * time.Second},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.key, c.got, c.want)
		}
	}
}

func TestFlagErrorsUseCamelCase(t *testing.T) {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.String("engine-max-attempts", "", "")
	if err := fs.Parse([]string{"--engine-max-attempts=lots"}); err != nil {
		t.Fatal(err)
	}
	_, err := Load(LoadOptions{Flags: fs})
	if err == nil || !strings.Contains(err.Error(), `engine.maxAttempts: want a whole number (got "lots")`) {
		t.Errorf("err = %v", err)
	}
}

func TestEnvNames(t *testing.T) {
	for _, c := range []struct{ path, env, flag string }{
		{"listen", "FAILOVERD_LISTEN", "listen"},
		{"dataDir", "FAILOVERD_DATA_DIR", "data-dir"},
		{"engine.confirmFor", "FAILOVERD_ENGINE_CONFIRM_FOR", "engine-confirm-for"},
		{"notify.alertmanagerURL", "FAILOVERD_NOTIFY_ALERTMANAGER_URL", "notify-alertmanager-url"},
		{"cloud.placement.diskGB", "FAILOVERD_CLOUD_PLACEMENT_DISK_GB", "cloud-placement-disk-gb"},
		{"auth.apiTokenFile", "FAILOVERD_AUTH_API_TOKEN_FILE", "auth-api-token-file"},
		{"caps.maxConcurrentStandbys", "FAILOVERD_CAPS_MAX_CONCURRENT_STANDBYS", "caps-max-concurrent-standbys"},
		{"cloud.sim.noCapacityZones", "FAILOVERD_CLOUD_SIM_NO_CAPACITY_ZONES", "cloud-sim-no-capacity-zones"},
		{"a.URLPath", "FAILOVERD_A_URL_PATH", "a-url-path"},
		{"a.v2Beta", "FAILOVERD_A_V2_BETA", "a-v2-beta"},
	} {
		if got := EnvVar(c.path); got != c.env {
			t.Errorf("EnvVar(%q) = %q, want %q", c.path, got, c.env)
		}
		if got := FlagName(c.path); got != c.flag {
			t.Errorf("FlagName(%q) = %q, want %q", c.path, got, c.flag)
		}
	}
}

func TestKeysAreUniqueAndComplete(t *testing.T) {
	envs, flags := map[string]string{}, map[string]string{}
	settable := 0
	for _, k := range Keys() {
		if !k.Settable() {
			if strings.HasPrefix(k.Path, "fleet") || k.Type.Kind() == reflect.Map {
				continue
			}
			t.Errorf("%s has no environment variable", k.Path)
		}
		settable++
		if other, dup := envs[k.Env]; dup {
			t.Errorf("%s and %s share %s", k.Path, other, k.Env)
		}
		if other, dup := flags[k.Flag]; dup {
			t.Errorf("%s and %s share --%s", k.Path, other, k.Flag)
		}
		envs[k.Env], flags[k.Flag] = k.Path, k.Path
		if camel := camelPath(strings.ToLower(k.Path)); camel != k.Path {
			t.Errorf("camelPath(lower(%s)) = %s", k.Path, camel)
		}
	}
	// The token variables serve reads must not collide with a key's.
	for _, e := range []string{"FAILOVERD_WEBHOOK_TOKEN", "FAILOVERD_API_TOKEN"} {
		if p, ok := envs[e]; ok {
			t.Errorf("%s is both a token variable and key %s", e, p)
		}
	}
	if settable < 35 {
		t.Errorf("only %d settable keys; did the walk stop early?", settable)
	}
}

func TestValidateCollectsEverything(t *testing.T) {
	cfg := Default()
	cfg.Listen = "nope"
	cfg.DataDir = ""
	cfg.Engine.Workers = 65
	cfg.Engine.PollInterval = 0
	cfg.Cloud.Provider = "aws"
	cfg.Fleet = []Validator{
		{Name: "-bad", Chain: "ethereum", Network: "hoodi"},
		{Name: "ok", Chain: "", Network: "x"},
		{Name: "ok", Chain: "berachain", Network: "", Placement: cloudPlacement("")},
	}
	err := cfg.Validate()
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("want *Error, got %v", err)
	}
	var keys []string
	for _, p := range ce.Problems {
		keys = append(keys, p.Key)
	}
	want := []string{
		"listen", "dataDir", "engine.pollInterval", "engine.workers", "cloud.provider",
		"fleet[0].name", "fleet[1].chain", "fleet[2].name", "fleet[2].network", "fleet[2].placement.zones[0]",
	}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("problem keys = %q\nwant %q\n%v", keys, want, err)
	}
	if !strings.HasPrefix(err.Error(), "10 problems:\n  - listen: ") {
		t.Errorf("Error() = %q", err.Error())
	}
}

func TestWarnings(t *testing.T) {
	cfg := Default()
	cfg.Fleet = []Validator{{Name: "a", Chain: ChainEthereum, Network: "mainnet", Site: "home"}}
	if w := cfg.Warnings(); len(w) != 0 {
		t.Errorf("Warnings = %q", w)
	}
	cfg.Auth.Disabled = true
	cfg.Listen = "0.0.0.0:9097"
	cfg.Cloud.Sim.NoCapacityZones = []string{"sim-b", "sim-a"}
	cfg.Alerts.Matchers = nil
	if w := cfg.Warnings(); len(w) != 3 {
		t.Errorf("Warnings = %q, want 3", w)
	}
}

func TestMatchersError(t *testing.T) {
	cfg := Default()
	cfg.Alerts.Matchers = []string{`a="b"`, `=x`}
	if _, err := cfg.Matchers(); err == nil || !strings.Contains(err.Error(), "alerts.matchers[1]") {
		t.Errorf("Matchers() err = %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(LoadOptions{File: "testdata/nope.yaml"})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "testdata/nope.yaml") {
		t.Errorf("err = %v", err)
	}
}

func TestExampleLocal(t *testing.T) {
	const file = "../../examples/local.yaml"
	cfg, err := Load(LoadOptions{File: file})
	if err != nil {
		t.Fatal(err)
	}
	if w := cfg.Warnings(); len(w) != 0 {
		t.Errorf("example has warnings: %q", w)
	}
	if cfg.Cloud.Provider != ProviderSim || cfg.Store.Type != StoreBolt || cfg.DataDir != "./data" {
		t.Errorf("not the embedded default: %+v", cfg)
	}
	eth, ok := cfg.Validator("eth-mainnet-1")
	if !ok || eth.Chain != ChainEthereum || eth.Network != "mainnet" || eth.Site != "basement" ||
		eth.Clients.Execution.Name != "geth" || eth.Clients.Consensus.Name != "lighthouse" ||
		eth.Clients.Execution.Version == "" || eth.Clients.Consensus.Version == "" {
		t.Errorf("eth-mainnet-1 = %+v", eth)
	}
	bera, ok := cfg.Validator("bera-bepolia-1")
	if !ok || bera.Chain != ChainBerachain || bera.Network != "bepolia" || bera.Site != "basement" ||
		bera.Clients.Consensus.Name != "beacond" || bera.Clients.Execution.Name != "reth" {
		t.Errorf("bera-bepolia-1 = %+v", bera)
	}
	if e := cfg.Engine; e.ConfirmFor != 5*time.Second || e.KeepWarm != 10*time.Second ||
		e.PollInterval != time.Second || e.ResyncInterval != 5*time.Second {
		t.Errorf("engine = %+v", e)
	}
	if s := cfg.Cloud.Sim; s.BootTime != 3*time.Second || s.SyncTime != 6*time.Second {
		t.Errorf("sim = %+v", s)
	}
}

func cloudPlacement(zones ...string) cloud.Placement { return cloud.Placement{Zones: zones} }
