package config

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
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
			k.Path != "auth.disabled" {
			t.Errorf("%s: still the default %v", k.Path, valueAt(got, k.Path).Interface())
		}
	}
	// Every map is set, and the case of its keys survives (viper would
	// lowercase them).
	for _, k := range Keys() {
		if k.Type.Kind() == reflect.Map && valueAt(got, k.Path).Len() == 0 {
			t.Errorf("%s: empty", k.Path)
		}
	}
	if cfg.Notify.Labels["Cluster"] != "home-rke2" {
		t.Errorf("notify.labels = %v, want key Cluster kept", cfg.Notify.Labels)
	}
	if g := cfg.Cloud.GCP; g.SnapshotLabels["Tier"] != "archive" || g.SnapshotLabels["chain-data"] != "true" {
		t.Errorf("cloud.gcp.snapshotLabels = %v, want key Tier kept", g.SnapshotLabels)
	}
	a := cfg.Cloud.AWS
	if a.SnapshotTags["ChainData"] != "true" || a.SnapshotTags["network"] != "mainnet" {
		t.Errorf("cloud.aws.snapshotTags = %v, want key ChainData kept", a.SnapshotTags)
	}
	if a.Subnets["eu-central-1a"] != "subnet-0f1e2d3c4b5a69788" || a.AMIs["eu-central-1"] != "ami-0fedcba9876543210" || len(a.AMIs) != 2 {
		t.Errorf("cloud.aws subnets %v amis %v", a.Subnets, a.AMIs)
	}
	v, ok := cfg.Validator("eth-mainnet-1")
	if !ok || v.Clients.Consensus.Image != "sigp/lighthouse:v8.0.1" || !reflect.DeepEqual(v.Providers, []string{"aws", "gcp"}) {
		t.Errorf("fleet[0] = %+v", v)
	}
	if s, _ := cfg.Validator("eth-sepolia-1"); s.Providers != nil || !reflect.DeepEqual(cfg.ProvidersFor(s), []string{"gcp", "aws", "sim"}) {
		t.Errorf("fleet[1] providers %v, ProvidersFor %v", s.Providers, cfg.ProvidersFor(s))
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
			"FAILOVERD_DATA_DIR":                    "/from/env",
			"FAILOVERD_ENGINE_CONFIRM_FOR":          "45s",
			"FAILOVERD_ENGINE_KEEP_WARM":            "1h",
			"FAILOVERD_CLOUD_SIM_ZONES":             "env-a, env-b,,",
			"FAILOVERD_CLOUD_PROVIDERS":             "gcp,aws",
			"FAILOVERD_CLOUD_GCP_PROJECT":           "env-project",
			"FAILOVERD_CLOUD_GCP_API_SOURCE_RANGES": "198.51.100.0/24",
			"FAILOVERD_CLOUD_AWS_API_SOURCE_RANGES": "198.51.100.0/24",
			"FAILOVERD_CLOUD_AWS_PRICE_HOURLY_USD":  "0.5",
			"FAILOVERD_CLOUD_GC_DRY_RUN":            "1",
			"FAILOVERD_NOTIFY_ALERTMANAGER_URL":     "http://am:9093",
			"FAILOVERD_AUTH_DISABLED":               "true",
			"FAILOVERD_CAPS_MONTHLY_STANDBY_HOURS":  "12.5",
			"FAILOVERD_WEBHOOK_MAX_BODY_BYTES":      "4096",
			"FAILOVERD_LISTEN":                      "", // empty counts as unset
			"UNRELATED":                             "x",
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
		{"cloud.sim.zones (env list)", cfg.Cloud.Sim.Zones, []string{"env-a", "env-b"}},
		{"cloud.providers (env list)", cfg.Cloud.Providers, []string{"gcp", "aws"}},
		{"cloud.gcp.project (env over file)", cfg.Cloud.GCP.Project, "env-project"},
		{"cloud.gcp.zones (file)", cfg.Cloud.GCP.Zones, []string{"europe-west4-a"}},
		{"cloud.gcp.machineType (default)", cfg.Cloud.GCP.MachineType, "n2-standard-8"},
		{"cloud.aws.amis (file only)", cfg.Cloud.AWS.AMIs, map[string]string{"eu-west-1": "ami-0123456789abcdef0"}},
		{"cloud.aws.price.hourlyUSD (env)", cfg.Cloud.AWS.Price.HourlyUSD, 0.5},
		{"cloud.aws.price.spotDiscount (default)", cfg.Cloud.AWS.Price.SpotDiscount, 0.6},
		{"cloud.gc.dryRun (env)", cfg.Cloud.GC.DryRun, true},
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
		{"cloud.gcp.diskGB", "FAILOVERD_CLOUD_GCP_DISK_GB", "cloud-gcp-disk-gb"},
		{"cloud.providers", "FAILOVERD_CLOUD_PROVIDERS", "cloud-providers"},
		{"cloud.gc.gracePeriod", "FAILOVERD_CLOUD_GC_GRACE_PERIOD", "cloud-gc-grace-period"},
		{"cloud.gcp.apiSourceRanges", "FAILOVERD_CLOUD_GCP_API_SOURCE_RANGES", "cloud-gcp-api-source-ranges"},
		{"cloud.gcp.insecureNoAuth", "FAILOVERD_CLOUD_GCP_INSECURE_NO_AUTH", "cloud-gcp-insecure-no-auth"},
		{"cloud.aws.price.diskGBMonthUSD", "FAILOVERD_CLOUD_AWS_PRICE_DISK_GB_MONTH_USD", "cloud-aws-price-disk-gb-month-usd"},
		{"cloud.aws.price.hourlyUSD", "FAILOVERD_CLOUD_AWS_PRICE_HOURLY_USD", "cloud-aws-price-hourly-usd"},
		{"cloud.aws.volumeInitializationRate", "FAILOVERD_CLOUD_AWS_VOLUME_INITIALIZATION_RATE", "cloud-aws-volume-initialization-rate"},
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
	if settable < 60 {
		t.Errorf("only %d settable keys; did the walk stop early?", settable)
	}
}

func TestValidateCollectsEverything(t *testing.T) {
	cfg := Default()
	cfg.Listen = "nope"
	cfg.DataDir = ""
	cfg.Engine.Workers = 65
	cfg.Engine.PollInterval = 0
	cfg.Cloud.Providers = []string{"aws", "azure"}
	cfg.Cloud.AWS.Zones = []string{"eu-west-1a"}
	cfg.Cloud.GCP.Project = "Not Validated: gcp is unused"
	cfg.Notify.AlertmanagerURL = "alertmanager"
	cfg.Fleet = []Validator{
		{Name: "-bad", Chain: "ethereum", Network: "hoodi"},
		{Name: "ok", Chain: "", Network: "x"},
		{Name: "ok", Chain: "berachain", Network: "", Providers: []string{"sim", ""}},
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
		"listen", "dataDir", "engine.pollInterval", "engine.workers", "cloud.providers[1]", "cloud.aws.amis",
		"cloud.aws.apiSourceRanges", "notify.alertmanagerURL", "fleet[0].name", "fleet[1].chain", "fleet[2].name", "fleet[2].network", "fleet[2].providers[1]",
	}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("problem keys = %q\nwant %q\n%v", keys, want, err)
	}
	if !strings.HasPrefix(err.Error(), "13 problems:\n  - listen: ") {
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
	cfg.Cloud.GC.DryRun = true
	if w := cfg.Warnings(); len(w) != 4 {
		t.Errorf("Warnings = %q, want 4", w)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("warnings are not errors: %v", err)
	}
}

func TestCloudWarnings(t *testing.T) {
	gcp := func() Config {
		cfg := Default()
		cfg.Fleet = []Validator{{Name: "a", Chain: ChainEthereum, Network: "mainnet", Site: "home"}}
		cfg.Cloud.Providers = []string{ProviderGCP}
		cfg.Cloud.GCP.Project = "my-staking-project"
		cfg.Cloud.GCP.APISourceRanges = []string{"203.0.113.0/24"}
		cfg.Cloud.AWS.APISourceRanges = []string{"203.0.113.0/24"}
		cfg.Cloud.GCP.Zones = []string{"europe-west4-a"}
		return cfg
	}
	for _, c := range []struct {
		name   string
		change func(*Config)
		want   string // "" for no warning
	}{
		{"defaults", func(*Config) {}, ""},
		{"gc off with gcp", func(c *Config) { c.Cloud.GC.Interval = 0 }, "garbage collector off: a crash can leave a standby running (and billing)"},
		{"gc off with sim only", func(c *Config) { c.Cloud.GC.Interval = 0; c.Cloud.Providers = []string{ProviderSim} }, ""},
		{"gc off, aws in a fleet entry", func(c *Config) {
			c.Cloud.GC.Interval = 0
			c.Cloud.Providers = []string{ProviderSim}
			c.Fleet[0].Providers = []string{ProviderAWS}
		}, "garbage collector off"},
		{"dry run", func(c *Config) { c.Cloud.GC.DryRun = true }, "garbage collector in dry-run: it reports orphans but deletes nothing"},
		{"dry run, gc off", func(c *Config) { c.Cloud.GC.DryRun = true; c.Cloud.GC.Interval = 0 }, "garbage collector off"},
		{"sim zones all blocked but sim unused", func(c *Config) { c.Cloud.Sim.NoCapacityZones = []string{"sim-a", "sim-b"} }, ""},
		{"sim zones all blocked", func(c *Config) {
			c.Cloud.Providers = []string{ProviderGCP, ProviderSim}
			c.Cloud.Sim.NoCapacityZones = []string{"sim-a", "sim-b", "sim-c"}
		}, "cloud.sim.noCapacityZones covers every zone of cloud.sim.zones"},
		{"sim zones partly blocked", func(c *Config) {
			c.Cloud.Providers = []string{ProviderSim}
			c.Cloud.Sim.NoCapacityZones = []string{"sim-a"}
		}, ""},
		{"api open to the world", func(c *Config) { c.Cloud.GCP.APISourceRanges = []string{"203.0.113.0/24", "0.0.0.0/0"} },
			"cloud.gcp.apiSourceRanges has 0.0.0.0/0: the standby's API ports"},
		{"api open to the world, aws unused", func(c *Config) { c.Cloud.AWS.APISourceRanges = []string{"::/0"} }, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := gcp()
			c.change(&cfg)
			if err := cfg.Validate(); err != nil && c.name != "gc off, aws in a fleet entry" {
				t.Fatalf("Validate: %v", err)
			}
			w := cfg.Warnings()
			switch {
			case c.want == "" && len(w) != 0:
				t.Errorf("Warnings = %q, want none", w)
			case c.want != "" && (len(w) != 1 || !strings.Contains(w[0], c.want)):
				t.Errorf("Warnings = %q, want one containing %q", w, c.want)
			}
		})
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
	if !reflect.DeepEqual(cfg.Cloud.Providers, []string{ProviderSim}) || cfg.Store.Type != StoreBolt || cfg.DataDir != "./data" || cfg.Auth.Disabled {
		t.Errorf("not the embedded default: %+v", cfg)
	}
	if !reflect.DeepEqual(cfg.UsedProviders(), []string{ProviderSim}) || !reflect.DeepEqual(cfg.ZonesFor(ProviderSim), []string{"sim-a", "sim-b"}) {
		t.Errorf("providers %v, sim zones %v", cfg.UsedProviders(), cfg.ZonesFor(ProviderSim))
	}
	eth, ok := cfg.Validator("eth-mainnet-1")
	if !ok || eth.Chain != ChainEthereum || eth.Network != "mainnet" || eth.Site != "basement" ||
		eth.Clients.Execution.Name != "geth" || eth.Clients.Consensus.Name != "lighthouse" ||
		eth.Clients.Execution.Version == "" || eth.Clients.Consensus.Version == "" {
		t.Errorf("eth-mainnet-1 = %+v", eth)
	}
	bera, ok := cfg.Validator("bera-bepolia-1")
	if !ok || bera.Chain != ChainBerachain || bera.Network != "bepolia" || bera.Site != "basement" ||
		bera.Clients.Consensus.Name != "beacond" || bera.Clients.Execution.Name != "reth" ||
		!reflect.DeepEqual(bera.Providers, []string{ProviderSim}) {
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

// TestExamples: every example is valid and warns of nothing, and the cloud
// ones fall back the way their comments say.
func TestExamples(t *testing.T) {
	names, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(names) < 3 {
		t.Fatalf("examples: %v %v", names, err)
	}
	for _, name := range names {
		t.Run(filepath.Base(name), func(t *testing.T) {
			cfg, err := Load(LoadOptions{File: name})
			if err != nil {
				t.Fatal(err)
			}
			if w := cfg.Warnings(); len(w) != 0 {
				t.Errorf("warnings: %q", w)
			}
			if cfg.Auth.Disabled {
				t.Error("auth.disabled in an example")
			}
			if len(cfg.Fleet) == 0 {
				t.Error("no fleet")
			}
			switch filepath.Base(name) {
			case "gcp.yaml":
				if !reflect.DeepEqual(cfg.Cloud.Providers, []string{ProviderGCP, ProviderAWS}) || cfg.Cloud.GCP.Project != "my-staking-project" ||
					len(cfg.Cloud.GCP.SnapshotLabels) == 0 || !cfg.Cloud.GCP.Spot || len(cfg.Cloud.AWS.AMIs) == 0 || len(cfg.Cloud.GCP.APISourceRanges) == 0 {
					t.Errorf("gcp example: %+v", cfg.Cloud)
				}
				if regions(cfg.Cloud.GCP.Zones, 2) < 2 {
					t.Errorf("gcp zones %v: want two regions", cfg.Cloud.GCP.Zones)
				}
			case "aws.yaml":
				if !reflect.DeepEqual(cfg.Cloud.Providers, []string{ProviderAWS}) || len(cfg.Cloud.AWS.SnapshotTags) == 0 ||
					!cfg.Cloud.AWS.Spot || len(cfg.Cloud.AWS.Subnets) == 0 {
					t.Errorf("aws example: %+v", cfg.Cloud)
				}
				if regions(cfg.Cloud.AWS.Zones, 1) < 2 {
					t.Errorf("aws zones %v: want two regions", cfg.Cloud.AWS.Zones)
				}
			}
		})
	}
}

// regions counts the regions of zones, a zone's region being the zone
// without its last cut characters.
func regions(zones []string, cut int) int {
	seen := map[string]bool{}
	for _, z := range zones {
		seen[z[:len(z)-cut]] = true
	}
	return len(seen)
}

// TestUnusedProvidersNotValidated: only the providers named somewhere must
// be complete; the default GCP block has no project and no zones.
func TestUnusedProvidersNotValidated(t *testing.T) {
	cfg := Default()
	cfg.Cloud.GCP = GCP{Project: "X", DiskGB: -1, InsecureNoAuth: true, APISourceRanges: []string{"nope"}}
	cfg.Cloud.AWS = AWS{Zones: []string{"eu-west-1a"}, VolumeType: "st1", Price: Price{SpotDiscount: 2}}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("unused providers validated: %v", err)
	}
	cfg.Fleet = []Validator{{Name: "a", Chain: ChainEthereum, Network: "mainnet", Providers: []string{ProviderAWS}}}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("aws used by a fleet entry but not validated")
	}
	for _, want := range []string{"cloud.aws.amis: no AMI for region eu-west-1", "cloud.aws.instanceType: required",
		"cloud.aws.volumeGB: must be at least 10 (got 0)", `cloud.aws.volumeType: must be one of gp3, gp2, io1, io2 (got "st1")`,
		"cloud.aws.price.spotDiscount"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "cloud.gcp") {
		t.Errorf("gcp validated though unused: %v", err)
	}
	if got := cfg.UsedProviders(); !reflect.DeepEqual(got, []string{ProviderSim, ProviderAWS}) {
		t.Errorf("UsedProviders = %v", got)
	}
}

func TestProviderValidation(t *testing.T) {
	base := func() Config {
		cfg := Default()
		cfg.Cloud.Providers = []string{ProviderGCP, ProviderAWS}
		cfg.Cloud.GCP.Project = "my-staking-project"
		cfg.Cloud.GCP.APISourceRanges = []string{"203.0.113.0/24"}
		cfg.Cloud.AWS.APISourceRanges = []string{"203.0.113.0/24"}
		cfg.Cloud.GCP.Zones = []string{"europe-west4-a", "us-central1-f"}
		cfg.Cloud.AWS.Zones = []string{"eu-west-1a", "us-gov-west-1b"}
		cfg.Cloud.AWS.AMIs = map[string]string{"eu-west-1": "ami-01234567", "us-gov-west-1": "ami-0123456789abcdef0"}
		return cfg
	}
	if cfg := base(); cfg.Validate() != nil {
		t.Fatalf("base: %v", cfg.Validate())
	}
	for _, c := range []struct {
		change func(*Config)
		want   string // "" when valid
	}{
		{func(c *Config) { c.Cloud.GCP.Project = "abcde" }, `cloud.gcp.project: not a GCP project ID`},
		{func(c *Config) { c.Cloud.GCP.Project = "abcdef" }, ""},
		{func(c *Config) { c.Cloud.GCP.Project = "a234567890123456789012345678901" }, "not a GCP project ID"},
		{func(c *Config) { c.Cloud.GCP.Project = "a23456789012345678901234567890" }, ""},
		{func(c *Config) { c.Cloud.GCP.Project = "my-project-" }, "not a GCP project ID"},
		{func(c *Config) { c.Cloud.GCP.Project = "1-project" }, "not a GCP project ID"},
		{func(c *Config) { c.Cloud.GCP.Project = "" }, "cloud.gcp.project: required"},
		{func(c *Config) { c.Cloud.GCP.Zones = []string{"europe-west4-a", ""} }, "cloud.gcp.zones[1]: must not be empty"},
		{func(c *Config) { c.Cloud.GCP.Zones = []string{"europe-west4-A"} }, "cloud.gcp.zones[0]: not a GCP zone"},
		{func(c *Config) { c.Cloud.GCP.Zones = []string{"eu-west-1a"} }, "cloud.gcp.zones[0]: not a GCP zone"},
		{func(c *Config) { c.Cloud.GCP.MachineType = " " }, "cloud.gcp.machineType: required"},
		{func(c *Config) { c.Cloud.GCP.DiskType = "" }, "cloud.gcp.diskType: required"},
		{func(c *Config) { c.Cloud.GCP.BootImage = "" }, "cloud.gcp.bootImage: required"},
		{func(c *Config) { c.Cloud.GCP.Network = "" }, "cloud.gcp.network: required"},
		{func(c *Config) { c.Cloud.GCP.Subnetwork = "staking-1" }, ""},
		{func(c *Config) { c.Cloud.GCP.Subnetwork = "regions/europe-west4/subnetworks/staking" }, "cloud.gcp.subnetwork: want the subnetwork's name"},
		{func(c *Config) { c.Cloud.GCP.DiskGB = 10 }, ""},
		{func(c *Config) { c.Cloud.GCP.DiskGB = 9 }, "cloud.gcp.diskGB: must be at least 10 (got 9)"},
		{func(c *Config) { c.Cloud.GCP.OperationTimeout = 0 }, "cloud.gcp.operationTimeout: must be above 0s (got 0s)"},
		{func(c *Config) { c.Cloud.GCP.Endpoint = "localhost:8085" }, "cloud.gcp.endpoint: want an absolute http:// or https:// URL"},
		{func(c *Config) { c.Cloud.GCP.Endpoint = "http://localhost:8085"; c.Cloud.GCP.InsecureNoAuth = true }, ""},
		{func(c *Config) { c.Cloud.GCP.InsecureNoAuth = true }, "insecureNoAuth only makes sense with an emulator endpoint"},
		{func(c *Config) { c.Cloud.GCP.SnapshotLabels = map[string]string{"": "x"} }, "cloud.gcp.snapshotLabels: label names must not be empty"},
		{func(c *Config) { c.Cloud.GCP.APISourceRanges = []string{"10.0.0.0/8", "2001:db8::/32"} }, ""},
		{func(c *Config) { c.Cloud.GCP.APISourceRanges = []string{"10.0.0.1"} }, "cloud.gcp.apiSourceRanges[0]: not a CIDR"},
		{func(c *Config) { c.Cloud.GCP.APISourceRanges = []string{" 10.0.0.0/8"} }, "cloud.gcp.apiSourceRanges[0]: not a CIDR"},
		{func(c *Config) { c.Cloud.GCP.Price.DiskGBMonthUSD = math.NaN() }, "cloud.gcp.price.diskGBMonthUSD: must be a number of 0 or more (got NaN)"},
		{func(c *Config) { c.Cloud.GCP.Price.HourlyUSD = math.Inf(1) }, "cloud.gcp.price.hourlyUSD: must be a number of 0 or more (got +Inf)"},
		{func(c *Config) { c.Cloud.GCP.Price = Price{} }, ""},
		{func(c *Config) { c.Cloud.GCP.Price.SpotDiscount = 0.99 }, ""},
		{func(c *Config) { c.Cloud.GCP.Price.SpotDiscount = -0.1 }, "cloud.gcp.price.spotDiscount: must be at least 0 and below 1"},
		{func(c *Config) { c.Cloud.AWS.Zones = nil }, "cloud.aws.zones: must list at least one zone"},
		{func(c *Config) { c.Cloud.AWS.Zones = []string{"eu-west-1"} }, "cloud.aws.zones[0]: not an AWS availability zone"},
		{func(c *Config) { c.Cloud.AWS.Zones = []string{"europe-west4-a"} }, "cloud.aws.zones[0]: not an AWS availability zone"},
		{func(c *Config) { c.Cloud.AWS.Zones = []string{"eu-west-1a", "eu-west-1b", "eu-west-1a"} }, "cloud.aws.zones[2]: duplicate of cloud.aws.zones[0]"},
		{func(c *Config) { c.Cloud.AWS.Zones = append(c.Cloud.AWS.Zones, "ap-southeast-2c") }, "cloud.aws.amis: no AMI for region ap-southeast-2 (of zone ap-southeast-2c)"},
		{func(c *Config) { c.Cloud.AWS.AMIs["eu-west-1"] = "ami-0123456" }, "cloud.aws.amis[eu-west-1]: not an AMI ID"},
		{func(c *Config) { c.Cloud.AWS.AMIs["eu-west-1"] = "ami-0123456789abcdef01" }, "cloud.aws.amis[eu-west-1]: not an AMI ID"},
		{func(c *Config) { c.Cloud.AWS.AMIs["eu-north-1"] = "ami-0123456789abcdef0" }, ""}, // unused regions are allowed
		{func(c *Config) { c.Cloud.AWS.Subnets = map[string]string{"eu-west-1a": "subnet-01234567"} }, ""},
		{func(c *Config) { c.Cloud.AWS.Subnets = map[string]string{"eu-west-1c": "subnet-01234567"} }, "cloud.aws.subnets[eu-west-1c]: not a zone of cloud.aws.zones"},
		{func(c *Config) { c.Cloud.AWS.Subnets = map[string]string{"eu-west-1a": "subnet-0123456"} }, "cloud.aws.subnets[eu-west-1a]: not a subnet ID"},
		{func(c *Config) { c.Cloud.AWS.InstanceType = "" }, "cloud.aws.instanceType: required"},
		{func(c *Config) { c.Cloud.AWS.VolumeGB = 9 }, "cloud.aws.volumeGB: must be at least 10 (got 9)"},
		{func(c *Config) { c.Cloud.AWS.VolumeType = "io2" }, ""},
		{func(c *Config) { c.Cloud.AWS.VolumeType = "" }, `cloud.aws.volumeType: must be one of gp3, gp2, io1, io2 (got "")`},
		{func(c *Config) { c.Cloud.AWS.VolumeInitializationRate = 100 }, ""},
		{func(c *Config) { c.Cloud.AWS.VolumeInitializationRate = 300 }, ""},
		{func(c *Config) { c.Cloud.AWS.VolumeInitializationRate = 99 }, "cloud.aws.volumeInitializationRate: must be 0"},
		{func(c *Config) { c.Cloud.AWS.VolumeInitializationRate = 301 }, "cloud.aws.volumeInitializationRate: must be 0"},
		{func(c *Config) { c.Cloud.AWS.SnapshotTags = map[string]string{" ": "x"} }, "cloud.aws.snapshotTags: tag names must not be empty"},
		{func(c *Config) { c.Cloud.AWS.APISourceRanges = []string{"2001:db8::1/32"} }, "did you mean 2001:db8::/32?"},
		{func(c *Config) { c.Cloud.AWS.Endpoint = "ftp://ec2" }, "cloud.aws.endpoint: want an absolute http:// or https:// URL"},
		{func(c *Config) { c.Cloud.AWS.Price.SpotDiscount = 1 }, "cloud.aws.price.spotDiscount"},
		{func(c *Config) { c.Cloud.Providers = []string{ProviderGCP, ProviderAWS, ProviderGCP} }, `cloud.providers[2]: duplicate of cloud.providers[0]: a provider is tried once, with all its zones (got "gcp")`},
		{func(c *Config) { c.Cloud.Providers = []string{"GCP"} }, `cloud.providers[0]: not a provider (available: sim, gcp, aws) (got "GCP")`},
		{func(c *Config) { c.Cloud.Providers = nil }, "cloud.providers: must list at least one provider"},
		{func(c *Config) { c.Cloud.Providers = []string{ProviderSim}; c.Cloud.Sim.Zones = nil }, "cloud.sim.zones: must list at least one zone"},
		{func(c *Config) { c.Cloud.Providers = []string{ProviderSim}; c.Cloud.Sim.Zones = []string{"x", "x"} }, "cloud.sim.zones[1]: duplicate of cloud.sim.zones[0]"},
		{func(c *Config) {
			c.Cloud.Providers = []string{ProviderSim}
			c.Cloud.Sim.Zones = []string{"any name at all"}
		}, ""},
		{func(c *Config) { c.Cloud.Providers = []string{ProviderSim}; c.Cloud.Sim.Peers = -1 }, "cloud.sim.peers: must be 0 or more"},
		{func(c *Config) { c.Cloud.Providers = []string{ProviderSim}; c.Cloud.Sim.DiskGB = -1 }, "cloud.sim.diskGB: must be 0 or more"},
		{func(c *Config) { c.Cloud.Providers = []string{ProviderSim}; c.Cloud.Sim.NoCapacityZones = []string{""} }, "cloud.sim.noCapacityZones[0]: must not be empty"},
		{func(c *Config) { c.Cloud.GC = GC{Interval: 0, GracePeriod: 0} }, ""},
		{func(c *Config) { c.Cloud.GC = GC{Interval: time.Minute, GracePeriod: time.Minute} }, ""},
		{func(c *Config) { c.Cloud.GC = GC{Interval: time.Minute, GracePeriod: 59 * time.Second} }, "cloud.gc.gracePeriod: must be at least 1m while the collector runs"},
		{func(c *Config) { c.Cloud.GC.Interval = -time.Second }, "cloud.gc.interval: must be 0s or more (got -1s)"},
		{func(c *Config) {
			c.Fleet = []Validator{{Name: "a", Chain: ChainEthereum, Network: "mainnet", Providers: []string{ProviderAWS, ProviderAWS}}}
		}, "fleet[0].providers[1]: duplicate of fleet[0].providers[0]"},
	} {
		cfg := base()
		c.change(&cfg)
		err := cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("want valid, got %v", err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("want an error containing %q, got %v", c.want, err)
		}
	}
}

// TestEnvProvidersValidated: a provider chosen from the environment is
// validated like one from the file.
func TestEnvProvidersValidated(t *testing.T) {
	_, err := Load(LoadOptions{Getenv: env(map[string]string{"FAILOVERD_CLOUD_PROVIDERS": "gcp, aws"})})
	if err == nil {
		t.Fatal("gcp and aws without settings accepted")
	}
	for _, want := range []string{"cloud.gcp.project: required", "cloud.gcp.zones: must list at least one zone", "cloud.aws.zones: must list at least one zone"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestMapsKeepCase: maps keep their keys' case whichever layers are used,
// and an unset map keeps its default.
func TestMapsKeepCase(t *testing.T) {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.StringSlice("cloud-providers", nil, "")
	fs.String("cloud-aws-instance-type", "", "")
	if err := fs.Parse([]string{"--cloud-providers=aws", "--cloud-aws-instance-type=c7i.2xlarge"}); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(LoadOptions{
		File:   "testdata/multicloud.good.yaml",
		Getenv: env(map[string]string{"FAILOVERD_CLOUD_GCP_PROJECT": "env-project"}),
		Flags:  fs,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg.Cloud.Providers, []string{ProviderAWS}) || cfg.Cloud.AWS.InstanceType != "c7i.2xlarge" ||
		cfg.Cloud.GCP.Project != "env-project" {
		t.Errorf("flags: providers %v, instance type %q, project %q", cfg.Cloud.Providers, cfg.Cloud.AWS.InstanceType, cfg.Cloud.GCP.Project)
	}
	// gcp is still used: bera-mainnet-1 names it.
	if !reflect.DeepEqual(cfg.UsedProviders(), []string{ProviderAWS, ProviderGCP}) {
		t.Errorf("UsedProviders = %v", cfg.UsedProviders())
	}
	if cfg.Cloud.AWS.Subnets["eu-west-1a"] != "subnet-0123456789abcdef0" || cfg.Cloud.AWS.AMIs["eu-central-1"] != "ami-0123456789abcdef1" {
		t.Errorf("maps: %v %v", cfg.Cloud.AWS.Subnets, cfg.Cloud.AWS.AMIs)
	}
	if cfg.Cloud.AWS.SnapshotTags["ChainData"] != "true" || cfg.Cloud.GCP.SnapshotLabels["chain-data"] != "true" {
		t.Errorf("maps: %v %v", cfg.Cloud.AWS.SnapshotTags, cfg.Cloud.GCP.SnapshotLabels)
	}
	if cfg.Notify.Labels != nil {
		t.Errorf("notify.labels = %v, want the default (nil)", cfg.Notify.Labels)
	}
}

func TestCostHelpers(t *testing.T) {
	cfg := Default()
	v := Validator{Name: "a", Providers: []string{ProviderAWS}}
	if got := cfg.ProvidersFor(v); !reflect.DeepEqual(got, []string{ProviderAWS}) {
		t.Errorf("ProvidersFor(override) = %v", got)
	}
	if got := cfg.ProvidersFor(Validator{}); !reflect.DeepEqual(got, []string{ProviderSim}) {
		t.Errorf("ProvidersFor(default) = %v", got)
	}
	if got := cfg.ZonesFor("azure"); got != nil {
		t.Errorf("ZonesFor(azure) = %v", got)
	}
	// sim: 0.39/h plus 2000 GB at 0.17 per GB-month over 730 h.
	const disk = 2000 * 0.17 / 730
	if got := cfg.HourlyCost(ProviderSim); math.Abs(got-(0.39+disk)) > 1e-9 {
		t.Errorf("HourlyCost(sim) = %v", got)
	}
	cfg.Cloud.Sim.Spot = true
	if got := cfg.HourlyCost(ProviderSim); math.Abs(got-(0.39*0.3+disk)) > 1e-9 {
		t.Errorf("HourlyCost(sim, spot) = %v", got)
	}
}
