// Package ansible checks the roles and playbooks in this directory with the
// real tools: ansible-playbook --syntax-check on every playbook,
// ansible-lint with the production profile, yamllint, and the off-site role
// run against localhost into a temporary directory (--check, then for real
// twice: the second run must change nothing). The cluster role's chart values
// are rendered by ansible and handed to the real chart with helm template,
// whose values schema refuses unknown keys.
//
// The tools come from $FAILOVERD_TOOLS_BIN or PATH (Debian: apt-get install
// ansible ansible-lint yamllint). A missing tool skips its test, unless
// FAILOVERD_E2E_REQUIRED is set. The off-site run installs the binary in
// $FAILOVERD_BIN (make test builds it), else ../bin/failoverd.
//
//	go test -count=1 ./ansible/
package ansible

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/failoverd/failoverd/failover/bootstrap"
)

// missing skips, or fails when the environment says every tool must be there.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("FAILOVERD_E2E_REQUIRED") != "" {
		t.Fatal(msg + " (FAILOVERD_E2E_REQUIRED is set)")
	}
	t.Skip(msg)
}

// tool finds a program in $FAILOVERD_TOOLS_BIN, then on PATH.
func tool(t *testing.T, name string) string {
	t.Helper()
	if d := os.Getenv("FAILOVERD_TOOLS_BIN"); d != "" {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "%s not found on PATH or in $FAILOVERD_TOOLS_BIN (Debian: apt-get install -y --no-install-recommends ansible ansible-lint yamllint)", name)
	}
	return p
}

// here is this directory, absolute (go test runs in it).
func here(t *testing.T) string {
	t.Helper()
	d, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// env is a clean environment for ansible: its home, temp directories and
// caches inside the test's own temporary directory, this directory's
// ansible.cfg, and nothing of the caller's ANSIBLE_* or FAILOVERD_*.
func env(t *testing.T) []string {
	t.Helper()
	home := t.TempDir()
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CACHE_HOME=" + filepath.Join(home, ".cache"),
		"LC_ALL=C.UTF-8",
		"ANSIBLE_CONFIG=" + filepath.Join(here(t), "ansible.cfg"),
		"ANSIBLE_LOCAL_TEMP=" + filepath.Join(home, "local-tmp"),
		"ANSIBLE_REMOTE_TEMP=" + filepath.Join(home, "remote-tmp"),
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_RETRY_FILES_ENABLED=0",
		"NO_COLOR=1",
	}
}

// run runs a command in dir and returns its combined output.
func run(t *testing.T, dir string, environ []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = environ
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	return out.String(), err
}

func roles(t *testing.T) []string {
	t.Helper()
	ents, err := os.ReadDir("roles")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		t.Fatal("no roles under roles/")
	}
	return names
}

// TestLayout: every role has a playbook, Galaxy metadata and an argument
// spec for its main entry point, and every default is in that spec (so role
// argument validation sees every variable the role has).
func TestLayout(t *testing.T) {
	for _, role := range roles(t) {
		if _, err := os.Stat(filepath.Join("playbooks", role+".yml")); err != nil {
			t.Errorf("role %s has no playbooks/%s.yml", role, role)
		}
		var meta struct {
			GalaxyInfo    map[string]any `json:"galaxy_info"`
			ArgumentSpecs map[string]struct {
				Options map[string]any `json:"options"`
			} `json:"argument_specs"`
		}
		readYAML(t, filepath.Join("roles", role, "meta", "main.yml"), &meta)
		for _, k := range []string{"role_name", "namespace", "description", "license", "min_ansible_version", "platforms"} {
			if meta.GalaxyInfo[k] == nil {
				t.Errorf("role %s: galaxy_info.%s is missing", role, k)
			}
		}
		spec, ok := meta.ArgumentSpecs["main"]
		if !ok {
			t.Errorf("role %s: no argument_specs.main", role)
			continue
		}
		var defaults map[string]any
		readYAML(t, filepath.Join("roles", role, "defaults", "main.yml"), &defaults)
		for k := range defaults {
			if _, ok := spec.Options[k]; !ok {
				t.Errorf("role %s: default %s is not in argument_specs.main.options", role, k)
			}
			if !strings.HasPrefix(k, role+"_") {
				t.Errorf("role %s: variable %s does not start with %s_", role, k, role)
			}
		}
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestSyntaxCheck: ansible-playbook --syntax-check on every playbook, with
// the example inventory.
func TestSyntaxCheck(t *testing.T) {
	t.Parallel()
	bin := tool(t, "ansible-playbook")
	playbooks, err := filepath.Glob("playbooks/*.yml")
	if err != nil || len(playbooks) == 0 {
		t.Fatalf("no playbooks: %v", err)
	}
	e := env(t)
	for _, pb := range playbooks {
		if out, err := run(t, here(t), e, bin, "--syntax-check", "-i", "inventory/example.yml", pb); err != nil {
			t.Errorf("%s: %v\n%s", pb, err, out)
		}
	}
}

// TestLint: ansible-lint's production profile and yamllint (strict) are
// clean, and a planted violation is caught, so the linters do see the roles.
func TestLint(t *testing.T) {
	t.Parallel()
	lint := tool(t, "ansible-lint")
	yamllint := tool(t, "yamllint")
	e := env(t)
	if out, err := run(t, here(t), e, yamllint, "-s", "."); err != nil {
		t.Errorf("yamllint: %v\n%s", err, out)
	}
	if out, err := run(t, here(t), e, lint, "--profile", "production", "--offline", "--nocolor"); err != nil {
		t.Errorf("ansible-lint --profile production: %v\n%s", err, out)
	}

	// The same tree with one task that runs a command without saying when it
	// changes something (no-changed-when, a production-profile rule).
	dir := t.TempDir()
	copyTree(t, here(t), dir)
	bad := filepath.Join(dir, "roles", "failoverd_offsite", "tasks", "main.yml")
	b, err := os.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, []byte("\n- name: Planted violation\n  ansible.builtin.command: /bin/true\n")...)
	if err := os.WriteFile(bad, b, 0o644); err != nil {
		t.Fatal(err)
	}
	e = append(env(t), "ANSIBLE_CONFIG="+filepath.Join(dir, "ansible.cfg"))
	out, err := run(t, dir, e, lint, "--profile", "production", "--offline", "--nocolor")
	if err == nil || !strings.Contains(out, "no-changed-when") || !strings.Contains(out, "roles/failoverd_offsite/tasks/main.yml") {
		t.Errorf("ansible-lint did not catch a planted no-changed-when in roles/failoverd_offsite (err %v):\n%s", err, out)
	}
}

// copyTree copies the YAML, Jinja and config files of src into dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if rel == "credentials" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if strings.HasSuffix(p, ".go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// failoverdBin is the binary the off-site role installs.
func failoverdBin(t *testing.T) string {
	t.Helper()
	p := os.Getenv("FAILOVERD_BIN")
	if p == "" {
		p = filepath.Join(here(t), "..", "bin", "failoverd")
	}
	if _, err := os.Stat(p); err != nil {
		missing(t, "failoverd binary %s not found (make build, or set FAILOVERD_BIN): %v", p, err)
	}
	return p
}

// offsite is a localhost inventory in the group the playbook targets, and
// a root directory standing in for / on the host.
type offsite struct {
	dir, root, creds, inventory string
}

func newOffsite(t *testing.T) offsite {
	t.Helper()
	dir := t.TempDir()
	o := offsite{dir: dir, root: filepath.Join(dir, "root"), creds: filepath.Join(dir, "credentials"),
		inventory: filepath.Join(dir, "inventory.yml")}
	// What exists on any systemd host before the role runs.
	for _, d := range []string{"usr/local/bin", "etc/systemd/system", "var/lib"} {
		if err := os.MkdirAll(filepath.Join(o.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	python, err := exec.LookPath("python3")
	if err != nil {
		missing(t, "python3 not found on PATH: %v", err)
	}
	inv := fmt.Sprintf(`all:
  children:
    failoverd_offsite:
      hosts:
        localhost:
          ansible_connection: local
          ansible_python_interpreter: %s
`, python)
	if err := os.WriteFile(o.inventory, []byte(inv), 0o644); err != nil {
		t.Fatal(err)
	}
	return o
}

// vars are the role's variables pointing every path into the root.
func (o offsite) vars(binary string, extra map[string]any) map[string]any {
	v := map[string]any{
		"ansible_become":                    false,
		"failoverd_offsite_binary_src":      binary,
		"failoverd_offsite_binary_path":     filepath.Join(o.root, "usr/local/bin/failoverd"),
		"failoverd_offsite_config_dir":      filepath.Join(o.root, "etc/failoverd"),
		"failoverd_offsite_data_dir":        filepath.Join(o.root, "var/lib/failoverd"),
		"failoverd_offsite_unit_dir":        filepath.Join(o.root, "etc/systemd/system"),
		"failoverd_offsite_credentials_dir": o.creds,
		"failoverd_offsite_listen":          "127.0.0.1:9097",
		"failoverd_offsite_default_site":    "basement",
		"failoverd_offsite_site_down_after": "5m",
		"failoverd_offsite_notify_labels":   map[string]string{"team": "staking"},
		"failoverd_offsite_cloud":           map[string]any{"providers": []string{"sim"}},
		"failoverd_offsite_config_extra":    map[string]any{"engine": map[string]any{"confirmFor": "3m"}, "listen": "0.0.0.0:1"},
		"failoverd_offsite_service_manage":  false,
		"failoverd_offsite_service_after":   []string{"wg-quick@wg0.service"},
		"failoverd_offsite_fleet": []map[string]any{{
			"name": "eth-mainnet-1", "chain": "ethereum", "network": "mainnet",
			"clients": map[string]any{
				"execution": map[string]string{"name": "geth", "version": "v1.16.7"},
				"consensus": map[string]string{"name": "lighthouse", "version": "v8.0.1"},
			},
		}},
	}
	for k, x := range extra {
		v[k] = x
	}
	return v
}

// play runs the off-site playbook with vars (as an extra-vars file).
func (o offsite) play(t *testing.T, vars map[string]any, args ...string) (string, error) {
	t.Helper()
	b, err := yaml.Marshal(vars)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(o.dir, "vars-*.yml")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	f.Close()
	args = append([]string{"-i", o.inventory, "-e", "@" + f.Name()}, args...)
	args = append(args, filepath.Join(here(t), "playbooks", "failoverd_offsite.yml"))
	return run(t, o.dir, env(t), tool(t, "ansible-playbook"), args...)
}

var recapRE = regexp.MustCompile(`(?m)^localhost\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

// recap is the changed and failed counts of the play recap.
func recap(t *testing.T, out string) (changed, failed string) {
	t.Helper()
	m := recapRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no play recap in the output:\n%s", out)
	}
	return m[2], m[4]
}

// files lists every path under root with its mode.
func files(t *testing.T, root string) map[string]os.FileMode {
	t.Helper()
	got := map[string]os.FileMode{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		got[rel] = st.Mode()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestOffsiteCheckMode: a --check run of the off-site role as production
// would use it (a failoverd system user, systemd managed) reports what it
// would do, touches nothing on the host and shows no token.
func TestOffsiteCheckMode(t *testing.T) {
	t.Parallel()
	o := newOffsite(t)
	before := files(t, o.root)
	extra := map[string]any{}
	// The systemd module needs a running systemd (sd_booted: /run/systemd/system).
	if st, err := os.Stat("/run/systemd/system"); err == nil && st.IsDir() {
		extra["failoverd_offsite_service_manage"] = true
	} else {
		t.Log("systemd is not running here (no /run/systemd/system): the check run leaves out enabling and starting the unit")
	}
	bin := filepath.Join(o.dir, "failoverd")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := o.play(t, o.vars(bin, extra), "--check", "--diff")
	if err != nil {
		t.Fatalf("check run: %v\n%s", err, out)
	}
	if changed, failed := recap(t, out); changed == "0" || failed != "0" {
		t.Errorf("check run on a fresh host: changed=%s failed=%s, want changes and no failure\n%s", changed, failed, out)
	}
	for _, want := range []string{
		"siteDownAfter: 5m", "defaultSite: basement", "type: bolt", "listen: 127.0.0.1:9097", "confirmFor: 3m",
		"User=failoverd", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
		"ReadWritePaths=" + filepath.Join(o.root, "var/lib/failoverd"), "Restart=on-failure", "RestartSec=5",
		"\n+Wants=network-online.target wg-quick@wg0.service\n+After=network-online.target wg-quick@wg0.service\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the check run's diff lacks %q", want)
		}
	}
	if strings.Contains(out, "0.0.0.0:1") {
		t.Error("failoverd_offsite_config_extra overrode listen, which the role owns")
	}
	if after := files(t, o.root); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("--check changed the host:\nbefore %v\nafter  %v", before, after)
	}
	for _, f := range []string{"webhook-token", "api-token"} {
		tok, err := os.ReadFile(filepath.Join(o.creds, f))
		if err != nil {
			t.Fatalf("the generated %s is not on the controller: %v", f, err)
		}
		if s := strings.TrimSpace(string(tok)); len(s) < 32 || strings.Contains(out, s) {
			t.Errorf("%s: %d characters, shown in the output: %v", f, len(s), strings.Contains(out, s))
		}
	}
}

// TestOffsiteConverge: the off-site role for real into a temporary root
// (the current user as the service user, systemd left alone): files and
// modes, a config failoverd accepts, a second run that changes nothing, a
// bad config that is refused before it replaces the good one, and the unit's
// hardening as systemd-analyze sees it.
func TestOffsiteConverge(t *testing.T) {
	t.Parallel()
	bin := failoverdBin(t)
	o := newOffsite(t)
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	vars := o.vars(bin, map[string]any{
		"failoverd_offsite_create_user": false,
		"failoverd_offsite_user":        u.Username,
		"failoverd_offsite_group":       g.Name,
		"failoverd_offsite_owner":       u.Username,
		// Set here, not generated: the files must hold exactly these.
		"failoverd_offsite_webhook_token": "webhook-token-from-vault-0123456789",
		"failoverd_offsite_listen":        listen,
	})
	out, err := o.play(t, vars)
	if err != nil {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Validate the failoverd configuration") {
		t.Errorf("the first run did not validate the configuration in its handler:\n%s", out)
	}
	if strings.Contains(out, "webhook-token-from-vault") {
		t.Error("the webhook token shows in the output")
	}

	want := map[string]os.FileMode{
		"usr/local/bin/failoverd":              0o755,
		"etc/failoverd":                        os.ModeDir | 0o750,
		"etc/failoverd/config.yaml":            0o640,
		"etc/failoverd/webhook-token":          0o600,
		"etc/failoverd/api-token":              0o600,
		"etc/systemd/system/failoverd.service": 0o644,
		"var/lib/failoverd":                    os.ModeDir | 0o700,
	}
	got := files(t, o.root)
	for p, m := range want {
		if got[p] != m {
			t.Errorf("%s: mode %v, want %v", p, got[p], m)
		}
	}
	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(o.root, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if s := read("etc/failoverd/webhook-token"); s != "webhook-token-from-vault-0123456789\n" {
		t.Errorf("webhook-token holds %q", s)
	}
	generated, err := os.ReadFile(filepath.Join(o.creds, "api-token"))
	if err != nil {
		t.Fatal(err)
	}
	if s := read("etc/failoverd/api-token"); s != strings.TrimSpace(string(generated))+"\n" {
		t.Error("api-token on the host is not the token generated on the controller")
	}

	config := read("etc/failoverd/config.yaml")
	var cfg struct {
		Listen  string `json:"listen"`
		DataDir string `json:"dataDir"`
		Store   struct {
			Type string `json:"type"`
		} `json:"store"`
		Auth struct {
			WebhookTokenFile string `json:"webhookTokenFile"`
			APITokenFile     string `json:"apiTokenFile"`
		} `json:"auth"`
		Heartbeat map[string]string `json:"heartbeat"`
		Notify    map[string]any    `json:"notify"`
		Fleet     []map[string]any  `json:"fleet"`
	}
	if err := yaml.Unmarshal([]byte(config), &cfg); err != nil {
		t.Fatalf("config.yaml: %v\n%s", err, config)
	}
	if cfg.Listen != listen || cfg.DataDir != filepath.Join(o.root, "var/lib/failoverd") || cfg.Store.Type != "bolt" ||
		cfg.Auth.WebhookTokenFile != filepath.Join(o.root, "etc/failoverd/webhook-token") ||
		cfg.Auth.APITokenFile != filepath.Join(o.root, "etc/failoverd/api-token") ||
		cfg.Heartbeat["siteDownAfter"] != "5m" || cfg.Heartbeat["defaultSite"] != "basement" ||
		cfg.Notify["labels"] == nil || cfg.Notify["alertmanagerURL"] != nil || len(cfg.Fleet) != 1 {
		t.Errorf("config.yaml is not what the variables say:\n%s", config)
	}
	cmd := exec.Command(bin, "config", "validate", "--config", filepath.Join(o.root, "etc/failoverd/config.yaml"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("failoverd refuses the config the role wrote: %v\n%s\n%s", err, b, config)
	}

	out, err = o.play(t, vars)
	if err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if changed, _ := recap(t, out); changed != "0" {
		t.Errorf("the second run changed %s things, want 0 (idempotent)\n%s", changed, out)
	}

	// The unit's own command line serves with what the role wrote: the
	// webhook takes a heartbeat with the webhook token, the CLI reads it back
	// with the API token file.
	t.Run("serve", func(t *testing.T) {
		serve(t, read("etc/systemd/system/failoverd.service"), listen, bin,
			strings.TrimSpace(read("etc/failoverd/webhook-token")), filepath.Join(o.root, "etc/failoverd/api-token"))
	})

	// A misspelt key: failoverd refuses the new file and the old one stays.
	vars["failoverd_offsite_config_extra"] = map[string]any{"engine": map[string]any{"confimFor": "3m"}}
	out, err = o.play(t, vars)
	if err == nil || !strings.Contains(out, "confimFor") {
		t.Errorf("a config with a misspelt key was not refused (err %v):\n%s", err, out)
	}
	if read("etc/failoverd/config.yaml") != config {
		t.Error("the refused config replaced the good one")
	}

	// The unit's hardening, as systemd reads it (offline: no running systemd needed).
	t.Run("unit hardening", func(t *testing.T) {
		analyze, err := exec.LookPath("systemd-analyze")
		if err != nil {
			missing(t, "systemd-analyze not found (Debian package systemd): the unit's hardening is not checked")
		}
		unit := filepath.Join(o.root, "etc/systemd/system/failoverd.service")
		cmd := exec.Command(analyze, "security", "--offline=true", "--threshold=30", unit)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		stdout, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Errorf("systemd-analyze security (exposure above 3.0, or a unit line systemd does not take): %v\n%s\n%s", err, stderr.String(), stdout)
		}
	})
}

// freeAddr is a free loopback address.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// serve starts the unit's ExecStart (without systemd), waits until it is
// ready, delivers a Watchdog heartbeat and reads the site back with the CLI.
func serve(t *testing.T, unit, listen, bin, webhookToken, apiTokenFile string) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^ExecStart=(.+)$`).FindStringSubmatch(unit)
	if m == nil {
		t.Fatalf("no ExecStart in the unit:\n%s", unit)
	}
	argv := strings.Fields(m[1])
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	base := "http://" + listen
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("%s exited: %v\n%s", m[1], err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 30s (last error %v)\n%s", m[1], err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	payload, err := os.ReadFile(filepath.Join(here(t), "..", "failover", "alertmanager", "testdata", "watchdog-firing.json"))
	if err != nil {
		t.Fatal(err)
	}
	post := func(token string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+"/webhook/alertmanager", bytes.NewReader(payload))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	if code, body := post("not-the-token"); code != http.StatusUnauthorized {
		t.Errorf("a wrong webhook token: %d %s, want 401", code, body)
	}
	if code, body := post(webhookToken); code != http.StatusOK || !strings.Contains(body, `"heartbeats":1`) {
		t.Errorf("the Watchdog with the webhook token: %d %s, want 200 with one heartbeat", code, body)
	}
	sites := exec.Command(bin, "sites", "--server", base, "--api-token-file", apiTokenFile, "-o", "json")
	sites.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, err := sites.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "basement") {
		t.Errorf("failoverd sites with the role's API token file: %v\n%s", err, out)
	}
}

// TestClusterValues: the chart values the cluster role hands to helm turn
// on the toggles asked for, keep the operator's own values, and are accepted
// by the chart's strict values schema (helm template).
func TestClusterValues(t *testing.T) {
	t.Parallel()
	bin := tool(t, "ansible-playbook")
	dir := t.TempDir()
	out := filepath.Join(dir, "values.yaml")
	playbook := fmt.Sprintf(`- name: Render the chart values of failoverd_cluster
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Compute them
      ansible.builtin.include_role:
        name: failoverd_cluster
        tasks_from: values
      vars:
        failoverd_cluster_alertmanager_config_enabled: false
        failoverd_cluster_values:
          replicaCount: 3
          prometheusRule:
            enabled: false
            heartbeatStaleAfterSeconds: 600
          config:
            fleet:
              - name: eth-mainnet-1
                chain: ethereum
                network: mainnet
    - name: Write them
      ansible.builtin.copy:
        content: "{{ failoverd_cluster_helm_values | to_nice_yaml }}"
        dest: %s
        mode: "0600"
`, out)
	pb := filepath.Join(dir, "render.yml")
	if err := os.WriteFile(pb, []byte(playbook), 0o644); err != nil {
		t.Fatal(err)
	}
	if o, err := run(t, dir, env(t), bin, "-i", "localhost,", pb); err != nil {
		t.Fatalf("rendering the values: %v\n%s", err, o)
	}
	var values struct {
		ReplicaCount   int `json:"replicaCount"`
		PrometheusRule struct {
			Enabled                    bool `json:"enabled"`
			HeartbeatStaleAfterSeconds int  `json:"heartbeatStaleAfterSeconds"`
		} `json:"prometheusRule"`
		ServiceMonitor     struct{ Enabled bool } `json:"serviceMonitor"`
		AlertmanagerConfig struct{ Enabled bool } `json:"alertmanagerConfig"`
		ValidatorRules     struct{ Enabled bool } `json:"validatorRules"`
		Auth               struct {
			WebhookToken struct {
				ExistingSecret string `json:"existingSecret"`
			} `json:"webhookToken"`
		} `json:"auth"`
	}
	readYAML(t, out, &values)
	if values.ReplicaCount != 3 || !values.PrometheusRule.Enabled || values.PrometheusRule.HeartbeatStaleAfterSeconds != 600 ||
		!values.ServiceMonitor.Enabled || values.AlertmanagerConfig.Enabled || !values.ValidatorRules.Enabled ||
		values.Auth.WebhookToken.ExistingSecret != "failoverd-webhook-token" {
		b, _ := os.ReadFile(out)
		t.Errorf("values are not what the role's variables say:\n%s", b)
	}

	helm := helmBin(t)
	chart := filepath.Join(here(t), "..", "charts", "failoverd")
	rendered, err := run(t, dir, env(t), helm, "template", "failoverd", chart, "-n", "failoverd", "-f", out)
	if err != nil {
		t.Fatalf("helm template refuses the role's values: %v\n%s", err, rendered)
	}
	// What the toggles turn on (and off) in the rendered chart.
	kinds := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^kind: (\w+)\nmetadata:\n  name: (\S+)$`).FindAllStringSubmatch(rendered, -1) {
		kinds[m[1]+"/"+m[2]] = true
	}
	for obj, want := range map[string]bool{
		"PrometheusRule/failoverd":            true,
		"PrometheusRule/failoverd-validators": true,
		"ServiceMonitor/failoverd":            true,
		"AlertmanagerConfig/failoverd":        false,
	} {
		if kinds[obj] != want {
			t.Errorf("rendered chart: %s present %v, want %v (have %v)", obj, kinds[obj], want, kinds)
		}
	}
}

// TestClusterChartMirror: the chart copied to the node is the controller's
// chart exactly: a file the chart no longer has is removed (helm would still
// render a stale template), and a run with nothing new changes nothing.
func TestClusterChartMirror(t *testing.T) {
	t.Parallel()
	bin := tool(t, "ansible-playbook")
	dir := t.TempDir()
	dest := filepath.Join(dir, "chart")
	playbook := fmt.Sprintf(`- name: Mirror the chart as failoverd_cluster does
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Mirror it
      ansible.builtin.include_role:
        name: failoverd_cluster
        tasks_from: chart
      vars:
        failoverd_cluster_chart_dest: %s
`, dest)
	pb := filepath.Join(dir, "mirror.yml")
	if err := os.WriteFile(pb, []byte(playbook), 0o644); err != nil {
		t.Fatal(err)
	}
	mirror := func() string {
		t.Helper()
		out, err := run(t, dir, env(t), bin, "-i", "localhost,", pb)
		if err != nil {
			t.Fatalf("mirror: %v\n%s", err, out)
		}
		return out
	}
	chart := filepath.Join(here(t), "..", "charts", "failoverd")
	same := func() {
		t.Helper()
		src, dst := contents(t, chart), contents(t, dest)
		if len(src) == 0 || fmt.Sprint(src) != fmt.Sprint(dst) {
			t.Errorf("the mirror differs from charts/failoverd:\nchart  %v\nmirror %v", keys(src), keys(dst))
		}
	}
	// A node that has an older copy with a template since removed.
	if err := os.MkdirAll(filepath.Join(dest, "templates"), 0o755); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dest, "templates", "removed-upstream.yaml")
	if err := os.WriteFile(stale, []byte("kind: Stale\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mirror()
	same()
	if changed, _ := recap(t, mirror()); changed != "0" {
		t.Errorf("a mirror run with nothing new changed %s things", changed)
	}
}

// contents maps every file under root to its content.
func contents(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		m[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func keys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// helmBin finds helm: $FAILOVERD_TOOLS_BIN, the tools cache, PATH.
func helmBin(t *testing.T) string {
	t.Helper()
	var dirs []string
	if d := os.Getenv("FAILOVERD_TOOLS_BIN"); d != "" {
		dirs = append(dirs, d)
	}
	if cache, err := os.UserCacheDir(); err == nil {
		dirs = append(dirs, filepath.Join(cache, "failoverd", "tools", "bin"))
	}
	for _, d := range dirs {
		if p := filepath.Join(d, "helm"); fileExists(p) {
			return p
		}
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	missing(t, "helm not found (tools/build.sh builds it; set FAILOVERD_TOOLS_BIN)")
	return ""
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// TestStandbyImageRepos: the image the standby_image role pre-pulls for a
// client is the one the standby bootstrap runs, or the pull is wasted.
func TestStandbyImageRepos(t *testing.T) {
	var vars struct {
		Repos map[string]string `json:"standby_image_client_repos"`
	}
	readYAML(t, "roles/standby_image/vars/main.yml", &vars)
	if len(vars.Repos) == 0 {
		t.Fatal("standby_image_client_repos is empty")
	}
	names := make([]string, 0, len(vars.Repos))
	for n := range vars.Repos {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		want, err := bootstrap.DefaultImage(n, "v1.2.3")
		if err != nil {
			t.Errorf("client %s: the bootstrap does not know it: %v", n, err)
			continue
		}
		if got := vars.Repos[n] + ":v1.2.3"; got != want {
			t.Errorf("client %s: the role pulls %s, the bootstrap runs %s", n, got, want)
		}
	}
	var defaults struct {
		Clients []struct{ Name, Version string } `json:"standby_image_clients"`
	}
	readYAML(t, "roles/standby_image/defaults/main.yml", &defaults)
	for _, c := range defaults.Clients {
		if _, ok := vars.Repos[c.Name]; !ok {
			t.Errorf("default client %s has no image repository", c.Name)
		}
	}
}
