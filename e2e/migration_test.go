package e2e

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/failoverd/failoverd/cloud/gcp/gcpfake"
	"github.com/failoverd/failoverd/failover/agent"
	"github.com/failoverd/failoverd/failover/agent/agenttest"
	"github.com/failoverd/failoverd/failover/beacon/beacontest"
	"github.com/failoverd/failoverd/failover/keymanager/keymanagertest"
)

const (
	canaryPassword = "canary-password-7f3a9c1e"
	validatorKey   = "0x93247f2209abcacf57b75a51dafae777f9dd38bc7053d1af526f220a7489a6d3a2753e5f3e8b1cfe39b56f43611df74a"
)

// approver is a person with an SSH key in approval.allowedSigners.
type approver struct {
	principal, keyFile, signersLine string
}

func newApprover(t *testing.T, principal string) approver {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "id_ed25519")
	if err := os.WriteFile(file, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return approver{principal: principal, keyFile: file,
		signersLine: principal + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp)))}
}

// chainBeacon serves the node routes from the status fake and everything
// else (genesis, validators, liveness) from the spec-following beacon server.
func chainBeacon(t *testing.T, node *agenttest.Beacon, chain *beacontest.Server) string {
	t.Helper()
	nu, _ := url.Parse(node.URL)
	cu, _ := url.Parse(chain.URL)
	np, cp := httputil.NewSingleHostReverseProxy(nu), httputil.NewSingleHostReverseProxy(cu)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/eth/v1/node/") {
			np.ServeHTTP(w, r)
			return
		}
		cp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// cli runs the failoverd binary as a person would.
func cli(t *testing.T, bin, base string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "FAILOVERD_SERVER="+base, "FAILOVERD_API_TOKEN="+apiToken, "SSH_AUTH_SOCK=")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	t.Logf("$ failoverd %s\n%s", strings.Join(args, " "), out.String())
	return out.String(), err
}

// TestMigrationAndFailback runs the whole key move with the real binaries:
// failoverd on the GCP wire fake, the real agent on the standby's
// credentials, spec-following Keymanager (home and standby) and beacon
// servers, and the CLI as the approver. It also proves the canary: the
// known password and keystore never reach failoverd's store, logs, audit
// log or metrics.
func TestMigrationAndFailback(t *testing.T) {
	bin, _ := binaries(t)
	alice := newApprover(t, "alice@example.org")
	fake := gcpfake.New()
	defer fake.Close()
	fake.SetExternalIP("127.0.0.1")
	agentPort := freePort(t)
	d := newDaemon(t, bin, fmt.Sprintf(`  providers: [gcp]
  gcp:
    project: staking-e2e
    zones: [europe-west4-a]
    endpoint: %s
    insecureNoAuth: true
    apiSourceRanges: [127.0.0.1/32]
agent:
  port: %d
  image: ghcr.io/failoverd/failoverd:e2e
approval:
  allowedSigners:
    - %s
  importTimeout: 2m`, fake.URL(), agentPort, alice.signersLine))
	d.start()
	d.fire()
	inc := d.waitState("syncing", "waiting for its agent")
	in := fake.Instance("europe-west4-a", inc.Standby.Name)
	script := ""
	for _, item := range in.GetMetadata().GetItems() {
		if item.GetKey() == "startup-script" {
			script = item.GetValue()
		}
	}
	ca, cert, key := credentialsFromBootstrap(t, script, t.TempDir())

	// The chain: the validator is active, and its clock puts the current
	// epoch at 1000 so the beacon server answers liveness for it.
	chain := beacontest.New(t)
	const spe = 32 * 12
	genesis := uint64(time.Now().Unix()) - 1000*spe - spe/2
	chain.SetGenesis(genesis, beacontest.MainnetRoot, beacontest.MainnetFork)
	chain.SetCurrentEpoch(1000)
	chain.AddValidator(beacontest.Validator{Index: 4242, Pubkey: validatorKey, Status: "active_ongoing"})
	node := agenttest.NewBeacon(t, agenttest.SyncedBeacon())
	exe := agenttest.NewExecution(t, agenttest.SyncedExecution())

	standbyKM := keymanagertest.New(t)
	standbyKM.SetRoot(beacontest.MainnetRoot)
	homeKM := keymanagertest.New(t)
	homeKM.SetRoot(beacontest.MainnetRoot)
	homeKM.AddKey(validatorKey, keymanagertest.History{Blocks: []uint64{31000}})

	signers := filepath.Join(t.TempDir(), "allowed_signers")
	if err := os.WriteFile(signers, []byte(alice.signersLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	control, state := t.TempDir(), t.TempDir()
	standbyToken := filepath.Join(t.TempDir(), "api-token.txt")
	homeToken := filepath.Join(t.TempDir(), "home-api-token.txt")
	for f, tok := range map[string]string{standbyToken: standbyKM.Token, homeToken: homeKM.Token} {
		if err := os.WriteFile(f, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	agentProc := start(t, "agent", nil, bin, "agent", "--listen", fmt.Sprintf("127.0.0.1:%d", agentPort),
		"--tls-cert", cert, "--tls-key", key, "--client-ca", ca,
		"--execution-url", exe.URL, "--beacon-url", chainBeacon(t, node, chain), "--data-path", t.TempDir(),
		"--control-dir", control, "--allowed-signers", signers, "--keymanager-url", standbyKM.URL, "--keymanager-token-file", standbyToken, "--state-dir", state)
	inc = d.waitState("ready", "in sync")

	// The approver's machine: one keystore with a known password.
	keysDir := t.TempDir()
	keystoreJSON := keymanagertest.NewKeystore(validatorKey, canaryPassword)
	if err := os.WriteFile(filepath.Join(keysDir, "keystore-m_12381_3600_0_0_0.json"), []byte(keystoreJSON), 0o600); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(t.TempDir(), "password.txt")
	if err := os.WriteFile(pwFile, []byte(canaryPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	outDir := t.TempDir()
	move := []string{"--signing-key", alice.keyFile, "--approver", alice.principal, "--keystores", keysDir,
		"--password-file", pwFile, "--out-dir", outDir, "--wait", "30s"}

	// Refused first: home not fenced (no way given) is a usage error, and a
	// live key in the last epochs refuses with nothing moved.
	if out, err := cli(t, bin, d.base, append([]string{"approve-migration", inc.ID}, move...)...); err == nil || !strings.Contains(out, "say how home is fenced") {
		t.Fatalf("approval without fencing: %v", err)
	}
	chain.SetLive(999, 4242, true)
	out, err := cli(t, bin, d.base, append([]string{"approve-migration", inc.ID, "--confirm-home-powered-off"}, move...)...)
	if err == nil || !strings.Contains(out, "chain silence not proven") || !strings.Contains(out, "live in epoch 999") {
		t.Fatalf("approval while the key was live: %v", err)
	}
	if standbyKM.Active(validatorKey) {
		t.Fatal("a key reached the standby after a refusal")
	}
	if out, _ := cli(t, bin, d.base, "gate", "--validator", "eth-mainnet-1", "--as", "home"); !strings.Contains(out, "gate open") {
		t.Fatal("home lost the signing right after a refusal")
	}
	chain.SetLive(999, 4242, false)

	// The migration: home fenced through its Keymanager, keys to the standby.
	out, err = cli(t, bin, d.base, append([]string{"approve-migration", inc.ID,
		"--home-keymanager", homeKM.URL, "--home-keymanager-token-file", homeToken}, move...)...)
	if err != nil {
		t.Fatalf("approve-migration: %v", err)
	}
	if !strings.Contains(out, validatorKey+"  imported") || !strings.Contains(out, "is migrated") {
		t.Fatalf("approve-migration said:\n%s", out)
	}
	if homeKM.Active(validatorKey) || !standbyKM.Active(validatorKey) {
		t.Fatalf("keys: home active %v, standby active %v", homeKM.Active(validatorKey), standbyKM.Active(validatorKey))
	}
	if h, ok := standbyKM.HistoryOf(validatorKey); !ok || len(h.Blocks) == 0 {
		t.Fatalf("the standby got no slashing protection: %+v", h)
	}
	if b, err := os.ReadFile(filepath.Join(control, agent.ValidatorStartFile)); err != nil || strings.TrimSpace(string(b)) != "1" {
		t.Fatalf("validator gate on the standby: %q %v", b, err)
	}
	// One signer: the home gate is shut, the standby's open.
	if out, err := cli(t, bin, d.base, "gate", "--validator", "eth-mainnet-1", "--as", "home"); err == nil || !strings.Contains(out, "gate closed") {
		t.Fatalf("home gate open after the migration: %v", err)
	}
	if _, err := cli(t, bin, d.base, "gate", "--validator", "eth-mainnet-1", "--as", "standby", "--standby", inc.Standby.Name); err != nil {
		t.Fatalf("standby gate: %v", err)
	}
	// Replaying is refused, a resolve changes nothing, a teardown is refused.
	if out, err := cli(t, bin, d.base, append([]string{"approve-migration", inc.ID, "--home-keymanager", homeKM.URL, "--home-keymanager-token-file", homeToken}, move...)...); err == nil || !strings.Contains(out, "expects a failback approval") {
		t.Fatalf("second migration: %v", err)
	}
	if out, err := cli(t, bin, d.base, "teardown", inc.ID, "--by", "bob"); err == nil || !strings.Contains(out, "failoverd failback") {
		t.Fatalf("teardown of a migrated incident: %v", err)
	}
	if _, err := cli(t, bin, d.base, "owners", "-o", "json"); err != nil {
		t.Fatal(err)
	}

	// The canary: failoverd never saw the password or the keystore.
	canary(t, d, keystoreJSON)

	// Failback through the same gates: the standby is fenced, the chain is
	// silent, the right comes home, the standby is deleted.
	out, err = cli(t, bin, d.base, "failback", inc.ID, "--signing-key", alice.keyFile, "--approver", alice.principal,
		"--out-dir", outDir, "--wait", "60s", "--home-keymanager", homeKM.URL, "--home-keymanager-token-file", homeToken, "--keystores", keysDir, "--password-file", pwFile)
	if err != nil {
		t.Fatalf("failback: %v", err)
	}
	if standbyKM.Active(validatorKey) || !homeKM.Active(validatorKey) {
		t.Fatalf("after failback: standby active %v, home active %v", standbyKM.Active(validatorKey), homeKM.Active(validatorKey))
	}
	if _, err := os.Stat(filepath.Join(control, agent.ValidatorStartFile)); !os.IsNotExist(err) {
		t.Fatalf("the standby's validator gate is still open: %v", err)
	}
	if out, err := cli(t, bin, d.base, "gate", "--validator", "eth-mainnet-1", "--as", "home"); err != nil || !strings.Contains(out, "generation 2") {
		t.Fatalf("home gate after failback: %v", err)
	}
	if fake.Instance("europe-west4-a", inc.Standby.Name) != nil {
		t.Fatal("the standby was not deleted after the failback")
	}
	canary(t, d, keystoreJSON)
	_ = agentProc
}

// canary looks for the password and the keystore's secret in everything
// failoverd wrote or shows.
func canary(t *testing.T, d *daemon, keystoreJSON string) {
	t.Helper()
	cipher := keystoreJSON[strings.Index(keystoreJSON, `"cipher"`):]
	needles := map[string]string{"password": canaryPassword, "keystore": keystoreJSON, "keystore cipher": cipher[:80]}
	check := func(where string, b []byte) {
		for what, n := range needles {
			if bytes.Contains(b, []byte(n)) {
				t.Errorf("the %s is in %s", what, where)
			}
		}
	}
	dataDir := filepath.Join(filepath.Dir(d.cfg), "data")
	n := 0
	_ = filepath.WalkDir(dataDir, func(p string, de fs.DirEntry, err error) error {
		if err != nil || de.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		n++
		check(p, b)
		return nil
	})
	if n < 2 {
		t.Fatalf("only %d files in failoverd's data dir", n)
	}
	check("failoverd's logs", []byte(d.proc.output()))
	_, body, err := httpGet(d.base+"/metrics", "")
	if err != nil {
		t.Fatal(err)
	}
	check("/metrics", body)
	_, body, err = httpGet(d.base+"/v1/incidents", apiToken)
	if err != nil {
		t.Fatal(err)
	}
	check("the incidents API", body)
}
