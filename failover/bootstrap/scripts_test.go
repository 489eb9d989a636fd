package bootstrap_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/failoverd/failoverd/failover/bootstrap"
)

// The scripts the bootstrap installs run here against a scratch root: their
// absolute paths are moved into a temporary directory, and systemctl and
// docker are stand-ins on PATH that record what they were asked.

// relocate writes body to a file with each key of moves (a whole line of
// the script) replaced by its value; every key must appear exactly once.
func relocate(t *testing.T, dir, name, body string, moves map[string]string) string {
	t.Helper()
	for from, to := range moves {
		if n := strings.Count(body, "\n"+from+"\n"); n != 1 {
			t.Fatalf("%s: %q appears %d times, want once", name, from, n)
		}
		body = strings.Replace(body, "\n"+from+"\n", "\n"+to+"\n", 1)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func needBash(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
}

// gateRun runs a relocated gate: its exit code and what it said.
func gateRun(t *testing.T, gate string) (int, string) {
	t.Helper()
	out, err := exec.Command("bash", gate).CombinedOutput()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	return code, strings.TrimSpace(string(out))
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestGateEthereum: the validator client starts when this standby owns the
// signing right, or when it holds no key at all (so the agent can import
// through its Keymanager API); never with keys and no ownership, and never
// on a gate file it cannot parse.
func TestGateEthereum(t *testing.T) {
	needBash(t)
	gateBody := files(t, render(t, combo{"ethereum", "mainnet", "gcp"}))[bootstrap.GatePath].Content
	defsWithKey := "---\n- enabled: true\n  voting_public_key: \"0x8e2c\"\n  type: local_keystore\n"
	for _, tc := range []struct {
		name  string
		setup func(control, vc string)
		open  bool
		says  string
	}{
		{"fresh standby", func(control, vc string) {}, true, "open: no validator key"},
		{"empty validator client", func(control, vc string) {
			write(t, vc+"/validators/validator_definitions.yml", "---\n[]\n")
			write(t, vc+"/validators/slashing_protection.sqlite", "")
			write(t, vc+"/validators/api-token.txt", "x")
		}, true, "open: no validator key"},
		{"keys, not the owner", func(control, vc string) {
			write(t, vc+"/validators/validator_definitions.yml", defsWithKey)
		}, false, "lists validator keys"},
		{"a keystore directory, not the owner", func(control, vc string) {
			write(t, vc+"/validators/0x8e2c/voting-keystore.json", "{}")
		}, false, "keystores in"},
		{"definitions unreadable", func(control, vc string) {
			if err := os.MkdirAll(vc+"/validators/validator_definitions.yml", 0o755); err != nil {
				t.Fatal(err)
			}
		}, false, "cannot read"},
		{"owner with keys", func(control, vc string) {
			write(t, control+"/validator-start", "3\n")
			write(t, vc+"/validators/validator_definitions.yml", defsWithKey)
		}, true, "owns the signing right (generation 3)"},
		{"owner, before the import", func(control, vc string) {
			write(t, control+"/validator-start", "12")
		}, true, "generation 12"},
		{"empty gate file", func(control, vc string) { write(t, control+"/validator-start", "") }, false, "holds no generation"},
		{"generation 0", func(control, vc string) { write(t, control+"/validator-start", "0\n") }, false, "holds no generation"},
		{"leading zero", func(control, vc string) { write(t, control+"/validator-start", "07\n") }, false, "holds no generation"},
		{"negative", func(control, vc string) { write(t, control+"/validator-start", "-1\n") }, false, "holds no generation"},
		{"garbage", func(control, vc string) { write(t, control+"/validator-start", "yes please\n") }, false, "holds no generation"},
		{"a directory", func(control, vc string) {
			if err := os.MkdirAll(control+"/validator-start", 0o755); err != nil {
				t.Fatal(err)
			}
		}, false, "holds no generation"},
		{"a symlink", func(control, vc string) {
			write(t, control+"/elsewhere", "3\n")
			if err := os.Symlink(control+"/elsewhere", control+"/validator-start"); err != nil {
				t.Fatal(err)
			}
		}, false, "holds no generation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			control, vc := root+"/control", root+"/vc"
			gate := relocate(t, root, "gate", gateBody, map[string]string{
				"control=" + bootstrap.ControlDir: "control=" + control,
				"vc=" + bootstrap.ValidatorDir:    "vc=" + vc,
			})
			tc.setup(control, vc)
			code, said := gateRun(t, gate)
			if (code == 0) != tc.open || !strings.Contains(said, tc.says) {
				t.Errorf("exit %d, said %q; want open=%v saying %q", code, said, tc.open, tc.says)
			}
		})
	}
}

// TestGateBerachain: beacond starts with this VM's throwaway key, or with
// the validator's key only while this standby owns the generation it was
// installed for.
func TestGateBerachain(t *testing.T) {
	needBash(t)
	gateBody := files(t, render(t, combo{"berachain", "mainnet", "aws"}))[bootstrap.GatePath].Content
	for _, tc := range []struct {
		name             string
		marker, startGen string // "" = absent
		open             bool
		says             string
	}{
		{"throwaway key", "", "", true, "throwaway"},
		{"throwaway key, owner", "", "2\n", true, "throwaway"},
		{"validator key, owner", "4\n", "4\n", true, "generation 4"},
		{"validator key, not the owner", "4\n", "", false, "owns nothing"},
		{"validator key, another generation", "4\n", "5\n", false, "installed for generation 4"},
		{"bad marker", "four", "4\n", false, "validator-key holds no generation"},
		{"bad gate file", "", "x", false, "validator-start holds no generation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			control, home := root+"/control", root+"/beacond"
			gate := relocate(t, root, "gate", gateBody, map[string]string{
				"control=" + bootstrap.ControlDir:        "control=" + control,
				"home=" + bootstrap.DataDir + "/beacond": "home=" + home,
			})
			if tc.marker != "" {
				write(t, home+"/validator-key", tc.marker)
			}
			if tc.startGen != "" {
				write(t, control+"/validator-start", tc.startGen)
			}
			code, said := gateRun(t, gate)
			if (code == 0) != tc.open || !strings.Contains(said, tc.says) {
				t.Errorf("exit %d, said %q; want open=%v saying %q", code, said, tc.open, tc.says)
			}
		})
	}
}

// keyRig is a scratch standby for the CometBFT key script.
type keyRig struct {
	t                              *testing.T
	root, control, stage, chain    string
	home, script, gate, systemctls string
}

const (
	throwawayKey = `{"address":"AAAA","pub_key":{"type":"tendermint/PubKeyEd25519","value":"throwaway-pub"},"priv_key":{"type":"tendermint/PrivKeyEd25519","value":"throwaway"}}`
	validatorKey = `{"address":"BBBB","pub_key":{"type":"tendermint/PubKeyEd25519","value":"validator-pub"},"priv_key":{"type":"tendermint/PrivKeyEd25519","value":"validator"}}`
	homeState    = `{"height":"4000123","round":0,"step":3}`
	standbyState = `{"height":"0","round":0,"step":0}`
	appTOML      = "[beacon-kit.payload-builder]\nenabled = false\nsuggested-fee-recipient = \"0x0000000000000000000000000000000000000000\"\npayload-timeout = \"850ms\"\n\n[beacon-kit.validator]\nenabled = false\n"
	configTOML   = "moniker = \"failoverd-standby\"\npriv_validator_key_file = \"config/priv_validator_key.json\"\npriv_validator_state_file = \"data/priv_validator_state.json\"\n\n[consensus]\ndouble_sign_check_height = 10\n"
)

func newKeyRig(t *testing.T, systemctlFails bool) *keyRig {
	t.Helper()
	needBash(t)
	r := &keyRig{t: t, root: t.TempDir()}
	r.control, r.chain = r.root+"/control", r.root+"/chain"
	r.stage, r.home, r.systemctls = r.control+"/cometbft", r.chain+"/beacond", r.root+"/systemctl.log"
	fs := files(t, render(t, combo{"berachain", "bepolia", "gcp"}))
	r.script = relocate(t, r.root, "cometbft-key", fs[bootstrap.CometBFTKeyScript].Content, map[string]string{
		"control=" + bootstrap.ControlDir:               "control=" + r.control,
		"stage=" + bootstrap.CometBFTStageDir:           "stage=" + r.stage,
		"chain=" + bootstrap.DataDir:                    "chain=" + r.chain,
		fmt.Sprintf("agent_uid=%d", bootstrap.AgentUID): fmt.Sprintf("agent_uid=%d", os.Getuid()),
	})
	r.gate = relocate(t, r.root, "gate", fs[bootstrap.GatePath].Content, map[string]string{
		"control=" + bootstrap.ControlDir:        "control=" + r.control,
		"home=" + bootstrap.DataDir + "/beacond": "home=" + r.home,
	})
	// systemctl records its calls; docker stands in for `beacond init`,
	// which makes a new key under the --home it is given.
	bin := r.root + "/bin"
	fail := "exit 0"
	if systemctlFails {
		fail = `[ "$1" = stop ] && exit 1; exit 0`
	}
	write(t, bin+"/systemctl", "#!/bin/bash\necho \"$*\" >>"+r.systemctls+"\n"+fail+"\n")
	write(t, bin+"/docker", `#!/bin/bash
host="" home=""
while [ $# -gt 0 ]; do
  case "$1" in
    -v) host=${2%%:/data}; shift ;;
    --home) home=${2#/data/}; shift ;;
  esac
  shift
done
mkdir -p "$host/$home/config"
printf '%s' '`+strings.Replace(throwawayKey, `"throwaway"`, `"fresh"`, 1)+`' >"$host/$home/config/priv_validator_key.json"
`)
	for _, f := range []string{"systemctl", "docker"} {
		if err := os.Chmod(bin+"/"+f, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	write(t, r.home+"/config/priv_validator_key.json", throwawayKey)
	write(t, r.home+"/config/app.toml", appTOML)
	write(t, r.home+"/config/config.toml", configTOML)
	write(t, r.home+"/data/priv_validator_state.json", standbyState)
	if err := os.MkdirAll(r.stage, 0o700); err != nil {
		t.Fatal(err)
	}
	return r
}

// stageInstall does what the agent does for an import at generation gen.
func (r *keyRig) stageInstall(owner, gen, key, state string) {
	if owner != "" {
		write(r.t, r.control+"/validator-start", owner)
	}
	write(r.t, r.stage+"/priv_validator_key.json", key)
	write(r.t, r.stage+"/priv_validator_state.json", state)
	write(r.t, r.stage+"/install-requested", gen)
}

// run runs the key script as its path unit would: its exit code.
func (r *keyRig) run() int {
	r.t.Helper()
	out, err := exec.Command("bash", r.script).CombinedOutput()
	r.t.Logf("%s", out)
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		r.t.Fatal(err)
	}
	return 0
}

func (r *keyRig) calls() string {
	b, err := os.ReadFile(r.systemctls)
	if os.IsNotExist(err) {
		return ""
	}
	if err != nil {
		r.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// requestsGone: whatever the outcome, nothing is left for the path unit to
// run again, and no copy of a key stays in the stage.
func (r *keyRig) requestsGone() {
	r.t.Helper()
	for _, f := range []string{"install-requested", "remove-requested", "priv_validator_key.json", "priv_validator_state.json"} {
		if _, err := os.Stat(r.stage + "/" + f); !os.IsNotExist(err) {
			r.t.Errorf("%s left in the stage (%v)", f, err)
		}
	}
}

func mode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func TestCometBFTKeyInstallAndRemove(t *testing.T) {
	r := newKeyRig(t, false)
	if code, said := gateRun(t, r.gate); code != 0 {
		t.Fatalf("the standby's beacond with its throwaway key: gate %d %q", code, said)
	}

	r.stageInstall("3\n", "3\n", validatorKey, homeState)
	if code := r.run(); code != 0 {
		t.Fatalf("install: exit %d", code)
	}
	if got := read(t, r.stage+"/result"); got != "installed 3\n" {
		t.Errorf("result %q", got)
	}
	if read(t, r.home+"/config/priv_validator_key.json") != validatorKey || read(t, r.home+"/data/priv_validator_state.json") != homeState {
		t.Error("the validator's key and signing state are not where beacond reads them")
	}
	for _, f := range []string{"/config/priv_validator_key.json", "/data/priv_validator_state.json"} {
		if m := mode(t, r.home+f); m != 0o600 {
			t.Errorf("%s: mode %o", f, m)
		}
	}
	if read(t, r.home+"/validator-key") != "3\n" {
		t.Error("no marker for generation 3")
	}
	app := read(t, r.home+"/config/app.toml")
	if !strings.Contains(app, "[beacon-kit.payload-builder]\nenabled = true\nsuggested-fee-recipient = \""+feeRecipient+"\"") ||
		!strings.Contains(app, "[beacon-kit.validator]\nenabled = false") {
		t.Errorf("app.toml after install:\n%s", app)
	}
	if got := r.calls(); got != "stop failoverd-beacon.service\nstart failoverd-beacon.service" {
		t.Errorf("systemctl: %q", got)
	}
	r.requestsGone()
	if code, said := gateRun(t, r.gate); code != 0 {
		t.Errorf("owner of generation 3: gate %d %q", code, said)
	}
	// The fence closes the gate: beacond with the validator's key must not
	// start again until the key is removed.
	if err := os.Remove(r.control + "/validator-start"); err != nil {
		t.Fatal(err)
	}
	if code, _ := gateRun(t, r.gate); code == 0 {
		t.Error("gate open for the validator's key without ownership")
	}

	if err := os.Remove(r.systemctls); err != nil {
		t.Fatal(err)
	}
	write(t, r.stage+"/remove-requested", "3\n")
	if code := r.run(); code != 0 {
		t.Fatalf("remove: exit %d", code)
	}
	if got := read(t, r.stage+"/result"); got != "removed 3\n" {
		t.Errorf("result %q", got)
	}
	if got := read(t, r.home+"/config/priv_validator_key.json"); !strings.Contains(got, `"value":"fresh"`) {
		t.Errorf("key after removal: %s", got)
	}
	if got := read(t, r.stage+"/returned_priv_validator_state.json"); got != homeState {
		t.Errorf("returned state %q", got)
	}
	if _, err := os.Stat(r.home + "/validator-key"); !os.IsNotExist(err) {
		t.Error("marker left after removal")
	}
	if _, err := os.Stat(r.chain + "/keygen"); !os.IsNotExist(err) {
		t.Error("keygen left behind")
	}
	if !strings.Contains(read(t, r.home+"/config/app.toml"), "[beacon-kit.payload-builder]\nenabled = false") {
		t.Error("payload builder still on")
	}
	if got := r.calls(); got != "stop failoverd-beacon.service\nstart failoverd-beacon.service" {
		t.Errorf("systemctl: %q", got)
	}
	r.requestsGone()
	if code, said := gateRun(t, r.gate); code != 0 {
		t.Errorf("throwaway again: gate %d %q", code, said)
	}
	// A repeat of the removal changes nothing and says so.
	write(t, r.stage+"/remove-requested", "3\n")
	if code := r.run(); code != 0 || read(t, r.stage+"/result") != "removed 3\n" {
		t.Errorf("repeated removal: exit %d, %q", code, read(t, r.stage+"/result"))
	}
	if got := r.calls(); strings.Count(got, "stop") != 1 {
		t.Errorf("a repeated removal stopped beacond again: %q", got)
	}
}

// TestCometBFTKeyRefusals: nothing is installed and beacond is not touched
// unless this standby owns exactly the requested generation and the files
// are what CometBFT reads.
func TestCometBFTKeyRefusals(t *testing.T) {
	for _, tc := range []struct {
		name                   string
		owner, gen, key, state string
		configTOML             string
		says                   string
	}{
		{"not the owner", "", "3\n", validatorKey, homeState, configTOML, "refused 3: this standby does not own the signing right"},
		{"another generation", "4\n", "3\n", validatorKey, homeState, configTOML, "refused 3: this standby owns generation 4, not 3"},
		{"no generation", "3\n", "three\n", validatorKey, homeState, configTOML, "refused unknown: install-requested holds no generation"},
		{"not a key", "3\n", "3\n", `{"address":"BBBB"}`, homeState, configTOML, "refused 3: priv_validator_key.json holds no priv_key"},
		{"not a state", "3\n", "3\n", validatorKey, `{}`, configTOML, "refused 3: priv_validator_state.json holds no height"},
		{"moved key file", "3\n", "3\n", validatorKey, homeState,
			strings.Replace(configTOML, `"config/priv_validator_key.json"`, `"/keys/pv.json"`, 1), "moves priv_validator_key_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newKeyRig(t, false)
			write(t, r.home+"/config/config.toml", tc.configTOML)
			r.stageInstall(tc.owner, tc.gen, tc.key, tc.state)
			if code := r.run(); code == 0 {
				t.Error("exit 0")
			}
			if got := read(t, r.stage+"/result"); !strings.HasPrefix(got, "refused ") || !strings.Contains(got, tc.says) {
				t.Errorf("result %q, want %q", got, tc.says)
			}
			if read(t, r.home+"/config/priv_validator_key.json") != throwawayKey || read(t, r.home+"/data/priv_validator_state.json") != standbyState {
				t.Error("key or state changed")
			}
			if _, err := os.Stat(r.home + "/validator-key"); !os.IsNotExist(err) {
				t.Error("marker written")
			}
			if got := r.calls(); got != "" {
				t.Errorf("beacond touched: %q", got)
			}
			r.requestsGone()
		})
	}

	t.Run("removal wins", func(t *testing.T) {
		r := newKeyRig(t, false)
		r.stageInstall("3\n", "3\n", validatorKey, homeState)
		write(t, r.stage+"/remove-requested", "3\n")
		if code := r.run(); code != 0 || read(t, r.stage+"/result") != "removed 3\n" {
			t.Errorf("exit %d, %q", code, read(t, r.stage+"/result"))
		}
		if read(t, r.home+"/config/priv_validator_key.json") != throwawayKey {
			t.Error("installed although a removal was asked for")
		}
		r.requestsGone()
	})

	// The marker is written before the key: at no point does the
	// validator's key sit there without it, or a gate without ownership
	// would take it for the throwaway.
	t.Run("key cannot be written", func(t *testing.T) {
		r := newKeyRig(t, false)
		r.stageInstall("3\n", "3\n", validatorKey, homeState)
		if err := os.MkdirAll(r.home+"/config/priv_validator_key.json.new/x", 0o755); err != nil {
			t.Fatal(err)
		}
		if code := r.run(); code == 0 {
			t.Error("exit 0")
		}
		if got := read(t, r.stage+"/result"); !strings.HasPrefix(got, "failed 3: ") {
			t.Errorf("result %q", got)
		}
		if read(t, r.home+"/validator-key") != "3\n" {
			t.Error("no marker while the key was being written")
		}
		if got := r.calls(); got != "stop failoverd-beacon.service" {
			t.Errorf("systemctl: %q (beacond must stay stopped)", got)
		}
		if _, err := os.Stat(r.home + "/config/priv_validator_key.json.new/priv_validator_key.json"); !os.IsNotExist(err) {
			t.Error("a copy of the key went into the directory in the way")
		}
		r.requestsGone()
		if err := os.Remove(r.control + "/validator-start"); err != nil {
			t.Fatal(err)
		}
		if code, _ := gateRun(t, r.gate); code == 0 {
			t.Error("gate open after a failed install without ownership")
		}
	})

	t.Run("beacond does not stop", func(t *testing.T) {
		r := newKeyRig(t, true)
		r.stageInstall("3\n", "3\n", validatorKey, homeState)
		if code := r.run(); code == 0 {
			t.Error("exit 0")
		}
		if got := read(t, r.stage+"/result"); !strings.HasPrefix(got, "failed 3: ") || !strings.Contains(got, "beacond left stopped") {
			t.Errorf("result %q", got)
		}
		if read(t, r.home+"/config/priv_validator_key.json") != throwawayKey {
			t.Error("key installed while beacond still ran")
		}
		if _, err := os.Stat(r.home + "/validator-key"); !os.IsNotExist(err) {
			t.Error("marker written")
		}
		r.requestsGone()
	})
}

// TestDoubleSignCheckHeight runs the Berachain steps' config.toml block: it
// sets consensus.double_sign_check_height on every run, restarts beacond
// only when it changed something, and stops the bootstrap when it cannot.
func TestDoubleSignCheckHeight(t *testing.T) {
	needBash(t)
	steps := script(t, render(t, combo{"berachain", "mainnet", "aws"}))
	begin := strings.Index(steps, "\nC=$D/beacond/config/config.toml\n")
	end := strings.Index(steps, "\n# The execution client's genesis, once.")
	if begin < 0 || end < begin {
		t.Fatal("no config.toml block in the steps")
	}
	block := steps[begin:end]
	want := fmt.Sprintf("double_sign_check_height = %d", bootstrap.DoubleSignCheckHeight)
	for _, tc := range []struct {
		name, config, after string
		changed, fails      bool
	}{
		{"network default 0", "[consensus]\nwal_file = \"data/cs.wal/wal\"\ndouble_sign_check_height = 0\nskip_timeout_commit = false\n",
			"[consensus]\nwal_file = \"data/cs.wal/wal\"\n" + want + "\nskip_timeout_commit = false\n", true, false},
		{"already set", "[consensus]\n" + want + "\n", "[consensus]\n" + want + "\n", false, false},
		{"missing", "[p2p]\nladdr = \"x\"\n\n[consensus]\ntimeout_commit = \"1s\"\n",
			"[p2p]\nladdr = \"x\"\n\n[consensus]\n" + want + "\ntimeout_commit = \"1s\"\n", true, false},
		{"commented out only", "[consensus]\n# double_sign_check_height = 0\n",
			"[consensus]\n" + want + "\n# double_sign_check_height = 0\n", true, false},
		{"no consensus section", "[p2p]\nladdr = \"x\"\n", "[p2p]\nladdr = \"x\"\n", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			cfg := root + "/beacond/config/config.toml"
			write(t, cfg, tc.config)
			body := "#!/bin/bash\nset -euo pipefail\nD=" + root + "\nCHANGED=\" \"\nlog() { echo \"$*\"; }\n" + block + "\necho \"CHANGED=$CHANGED\"\n"
			f := filepath.Join(root, "block.sh")
			write(t, f, body)
			out, err := exec.Command("bash", f).CombinedOutput()
			if (err != nil) != tc.fails {
				t.Fatalf("err %v, want failure %v\n%s", err, tc.fails, out)
			}
			if got := read(t, cfg); got != tc.after {
				t.Errorf("config.toml:\n%s\nwant:\n%s", got, tc.after)
			}
			if tc.fails {
				if !strings.Contains(string(out), "not starting beacond") {
					t.Errorf("said %q", out)
				}
				return
			}
			if got := strings.Contains(string(out), cfg); got != tc.changed {
				t.Errorf("marked changed %v, want %v (%s)", got, tc.changed, out)
			}
			// A second run changes nothing.
			out, err = exec.Command("bash", f).CombinedOutput()
			if err != nil || strings.Contains(string(out), cfg) || read(t, cfg) != tc.after {
				t.Errorf("second run: %v %s", err, out)
			}
		})
	}
	if !strings.Contains(steps, "if changed /etc/systemd/system/failoverd-beacon.service /var/lib/failoverd-chain/beacond/config/config.toml; then systemctl try-restart failoverd-beacon.service") {
		t.Error("a changed config.toml does not restart beacond")
	}
	// A restored disk's key marker goes with the key it described.
	if !strings.Contains(steps, "rm -f \"$D/beacond/validator-key\"\n  echo \"$vm\" >\"$D/beacond/keys-made-on\"") {
		t.Error("the throwaway-key path keeps a restored disk's validator-key marker")
	}
}

// TestSystemdUnits: systemd itself reads every unit the bootstrap installs
// without a warning (an unknown key or a bad value is only a warning to
// systemd, and a gate systemd ignored would be no gate). It runs against a
// scratch root holding the units, stand-ins for the commands they run and
// stubs of the targets they name.
func TestSystemdUnits(t *testing.T) {
	sa := tool(t, "systemd-analyze", "systemd")
	if help, _ := exec.Command(sa, "--help").CombinedOutput(); !strings.Contains(string(help), "--root") {
		t.Skip("this systemd-analyze has no --root")
	}
	for _, c := range combos() {
		t.Run(c.name(), func(t *testing.T) {
			root := t.TempDir()
			unitDir := root + "/etc/systemd/system"
			var units []string
			for path, f := range files(t, render(t, c)) {
				if strings.HasPrefix(path, "/etc/systemd/system/") {
					write(t, root+path, f.Content)
					units = append(units, filepath.Base(path))
				}
			}
			for _, cmd := range []string{"/usr/bin/docker", "/usr/bin/touch", "/bin/systemctl", "/bin/sync", bootstrap.GatePath, bootstrap.CometBFTKeyScript} {
				write(t, root+cmd, "#!/bin/sh\n")
				if err := os.Chmod(root+cmd, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			write(t, unitDir+"/docker.service", "[Unit]\nDescription=stub\n[Service]\nExecStart=/usr/bin/docker\n")
			for _, stub := range []string{"sysinit.target", "basic.target", "network-online.target", "multi-user.target",
				"shutdown.target", "paths.target", "sockets.target", "timers.target", "local-fs.target", "-.slice", "system.slice"} {
				write(t, unitDir+"/"+stub, "[Unit]\nDescription=stub\n")
			}
			cmd := exec.Command(sa, append([]string{"verify", "--root=" + root}, units...)...)
			cmd.Dir = unitDir
			out, err := cmd.CombinedOutput()
			if err != nil || len(strings.TrimSpace(string(out))) > 0 {
				t.Errorf("systemd-analyze verify %v: %v\n%s", units, err, out)
			}
			if len(units) < 6 {
				t.Errorf("only %d units", len(units))
			}
		})
	}
}
