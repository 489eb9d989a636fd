package agent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/agent"
	"github.com/failoverd/failoverd/failover/agent/agenttest"
	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/beacon/beacontest"
	"github.com/failoverd/failoverd/failover/grant"
	"github.com/failoverd/failoverd/failover/keymanager/keymanagertest"
	"github.com/failoverd/failoverd/failover/pki"
)

var (
	kpk1 = "0x" + strings.Repeat("a1", 48)
	kpk2 = "0x" + strings.Repeat("b2", 48)
	kpk3 = "0x" + strings.Repeat("c3", 48)
	// agentNow is the agent's clock: 30 s into epoch 1000 of the
	// beacontest chain (whose current epoch is 1000).
	agentNow = time.Unix(beacontest.MainnetGenesisTime+1000*32*12+30, 0).UTC()
)

// Canary secrets: they must reach the validator client and nowhere else.
const (
	canaryPassword1 = "canary-pw-7Qx2-correct-horse"
	canaryPassword2 = "canary-pw-Zt9k-battery-staple"
)

// logBuffer collects the agent's logs.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }

func approverKey(t testing.TB, name string) ssh.Signer {
	t.Helper()
	seed := sha256.Sum256([]byte("agent test approver " + name))
	s, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// keyFixture is a real agent with key import enabled, in front of a
// spec-following Keymanager and beacon node.
type keyFixture struct {
	t          *testing.T
	ca         *pki.Authority
	km         *keymanagertest.Server
	bn         *beacontest.Server
	node       *agenttest.Beacon
	beaconURL  string
	stateDir   string
	controlDir string
	logs       *logBuffer
	threshold  int

	addr    string
	certSHA string
	stop    func()
	nonce   int

	keystores map[string]string // pubkey -> EIP-2335 keystore
	passwords map[string]string
}

func newKeyFixture(t *testing.T) *keyFixture {
	t.Helper()
	f := &keyFixture{t: t, stateDir: t.TempDir(), controlDir: t.TempDir(), logs: &logBuffer{}, threshold: 1}
	var err error
	if f.ca, err = pki.LoadOrCreate(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	f.km = keymanagertest.New(t)
	f.bn = beacontest.New(t)
	f.bn.AddValidator(beacontest.Validator{Index: 11, Pubkey: kpk1})
	f.bn.AddValidator(beacontest.Validator{Index: 12, Pubkey: kpk2})
	f.bn.AddValidator(beacontest.Validator{Index: 13, Pubkey: kpk3})
	// One beacon URL serves the status probes (agenttest's node) and the
	// chain questions (beacontest).
	f.node = agenttest.NewBeacon(t, agenttest.SyncedBeacon())
	nodeURL, _ := url.Parse(f.node.URL)
	chainURL, _ := url.Parse(f.bn.URL)
	toNode, toChain := httputil.NewSingleHostReverseProxy(nodeURL), httputil.NewSingleHostReverseProxy(chainURL)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/eth/v1/node/") {
			toNode.ServeHTTP(w, r)
			return
		}
		toChain.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	f.beaconURL = front.URL
	f.keystores = map[string]string{
		kpk1: keymanagertest.NewKeystore(kpk1, canaryPassword1),
		kpk2: keymanagertest.NewKeystore(kpk2, canaryPassword2),
		kpk3: keymanagertest.NewKeystore(kpk3, "another-password"),
	}
	f.passwords = map[string]string{kpk1: canaryPassword1, kpk2: canaryPassword2, kpk3: "another-password"}
	f.start()
	return f
}

// start runs the agent (again) on the fixture's state and control dirs.
func (f *keyFixture) start() {
	t := f.t
	t.Helper()
	var lines []string
	for _, who := range []string{"alice", "bob", "carol"} {
		lines = append(lines, who+"@example "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(approverKey(t, who).PublicKey()))))
	}
	signers, err := approval.ParseAllowedSigners(lines)
	if err != nil {
		t.Fatal(err)
	}
	creds := agenttest.WriteCredentials(t, f.ca, standbyName, t.TempDir())
	exec := agenttest.NewExecution(t, agenttest.SyncedExecution())
	o := agent.Options{
		CertFile: creds.CertFile, KeyFile: creds.KeyFile, ClientCAFile: creds.ClientCAFile,
		ExecutionURL: exec.URL, BeaconURL: f.beaconURL, DataPath: t.TempDir(), ControlDir: f.controlDir,
		Timeout: 3 * time.Second, Now: func() time.Time { return agentNow }, Version: "test",
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Keys: agent.KeyOptions{AllowedSigners: signers, Threshold: f.threshold, KeymanagerURL: f.km.URL,
			KeymanagerToken: f.km.Token, StateDir: f.stateDir, SilentEpochs: 3},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Serve(ctx, ln, o) }()
	var once sync.Once
	f.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("agent ended with %v", err)
			}
		})
	}
	t.Cleanup(f.stop)
	f.addr = ln.Addr().String()
	// The approver signs the certificate the agent really presents.
	conn, err := tls.Dial("tcp", f.addr, &tls.Config{RootCAs: f.ca.Pool(), ServerName: standbyName, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatalf("agent does not answer TLS: %v", err)
	}
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	conn.Close()
	f.certSHA = hex.EncodeToString(sum[:])
}

func (f *keyFixture) endpoint() failover.AgentEndpoint {
	return failover.AgentEndpoint{URL: "https://" + f.addr, ServerName: standbyName, CAPEM: string(f.ca.CAPEM())}
}

func (f *keyFixture) standby() cloud.Standby {
	return cloud.Standby{Name: standbyName, Provider: "test", State: cloud.StateRunning, Address: f.addr}
}

func (f *keyFixture) newApproval(mutate func(*approval.Approval)) approval.Approval {
	f.nonce++
	a := approval.Approval{Incident: "eth-1-1", Standby: standbyName, StandbyCertSHA256: f.certSHA,
		Pubkeys: []string{kpk1, kpk2}, Action: approval.ActionMigrate, Issued: agentNow.Truncate(time.Second),
		Expires: agentNow.Truncate(time.Second).Add(15 * time.Minute), Nonce: fmt.Sprintf("agent-test-nonce-%016d", f.nonce), Approver: "alice@example"}
	if mutate != nil {
		mutate(&a)
	}
	return a
}

func (f *keyFixture) canonical(a approval.Approval) string {
	f.t.Helper()
	b, err := a.Canonical()
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

func (f *keyFixture) sign(a approval.Approval, by ...string) []string {
	f.t.Helper()
	var out []string
	for _, who := range by {
		sig, err := approval.Sign(a, approverKey(f.t, who))
		if err != nil {
			f.t.Fatal(err)
		}
		out = append(out, string(sig))
	}
	return out
}

// grantFor is failoverd's grant for approval text, signed by ca.
func (f *keyFixture) grantFor(ca *pki.Authority, approvalText string, mutate func(*grant.Grant)) grant.Signed {
	f.t.Helper()
	sum := sha256.Sum256([]byte(approvalText))
	g := grant.Grant{Validator: "eth-1", Incident: "eth-1-1", Standby: standbyName, Action: approval.ActionMigrate, Owner: standbyName,
		Generation: 1, Pubkeys: []string{kpk1, kpk2}, ApprovalSHA256: hex.EncodeToString(sum[:]), Expires: agentNow.Add(15 * time.Minute)}
	if mutate != nil {
		mutate(&g)
	}
	s, err := grant.Sign(g, ca)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *keyFixture) interchange(root string, keys ...string) string {
	h := map[string]keymanagertest.History{}
	for i, pk := range keys {
		h[pk] = keymanagertest.History{Blocks: []uint64{31_000 + uint64(i)}, Attestations: []keymanagertest.Attestation{{Source: 968, Target: 969}}}
	}
	return keymanagertest.Interchange(root, h)
}

// request is a complete, valid import of kpk1 and kpk2 at generation 1.
func (f *keyFixture) request() agent.ImportRequest {
	a := f.newApproval(nil)
	text := f.canonical(a)
	return agent.ImportRequest{Approval: text, Signatures: f.sign(a, "alice"), Grant: f.grantFor(f.ca, text, nil),
		Keystores: []string{f.keystores[kpk1], f.keystores[kpk2]}, Passwords: []string{canaryPassword1, canaryPassword2},
		SlashingProtection: f.interchange(beacontest.MainnetRoot, kpk1, kpk2)}
}

func (f *keyFixture) signer() failover.SignerState {
	f.t.Helper()
	c, err := agent.NewClient(f.ca, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	st, _, err := c.Status(context.Background(), f.standby())
	if err != nil {
		f.t.Fatalf("status: %v", err)
	}
	return st.Signer
}

func (f *keyFixture) controlFile() (string, bool) {
	b, err := os.ReadFile(filepath.Join(f.controlDir, agent.ValidatorStartFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", false
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b), true
}

func (f *keyFixture) keymanagerCalls(method string) int {
	n := 0
	for _, e := range f.km.Exchanges() {
		if e.Method == method {
			n++
		}
	}
	return n
}

// wantNothingImported checks that a refused import changed nothing.
func (f *keyFixture) wantNothingImported(before failover.SignerState) {
	f.t.Helper()
	if keys := f.km.ActiveKeys(); len(keys) != 0 {
		f.t.Fatalf("keys active in the validator client: %v", keys)
	}
	if n := f.keymanagerCalls(http.MethodPost); n != 0 {
		f.t.Fatalf("%d imports reached the validator client", n)
	}
	if gen, ok := f.controlFile(); ok {
		f.t.Fatalf("the validator gate is open (generation %q)", gen)
	}
	if st := f.signer(); st.Generation != before.Generation || st.Phase != before.Phase {
		f.t.Fatalf("signer state %+v, was %+v", st, before)
	}
}

func TestKeyImport(t *testing.T) {
	f := newKeyFixture(t)
	req := f.request()
	reply, err := agent.ImportKeys(context.Background(), f.endpoint(), req)
	if err != nil {
		t.Fatalf("import refused: %v", err)
	}
	if reply.Phase != failover.SignerImported || reply.Generation != 1 || reply.KeyStatuses[kpk1] != "imported" || reply.KeyStatuses[kpk2] != "imported" {
		t.Fatalf("reply %+v", reply)
	}
	if got := f.km.ActiveKeys(); !slices.Equal(got, []string{kpk1, kpk2}) {
		t.Fatalf("active keys %v", got)
	}
	for i, pk := range []string{kpk1, kpk2} {
		h, ok := f.km.HistoryOf(pk)
		if !ok || !slices.Contains(h.Blocks, 31_000+uint64(i)) || len(h.Attestations) != 1 || h.Attestations[0].Target != 969 {
			t.Fatalf("slashing protection of %s did not arrive: %+v", pk, h)
		}
	}
	if gen, ok := f.controlFile(); !ok || gen != "1\n" {
		t.Fatalf("validator-start control file %q (present %v), want generation 1", gen, ok)
	}
	st := f.signer()
	if st.Phase != failover.SignerImported || st.Generation != 1 || st.KeyStatuses[kpk1] != "imported" || !strings.Contains(st.Message, "doppelganger") {
		t.Fatalf("status signer %+v", st)
	}
	// Silence was re-checked right before the import, over the 3 last
	// finished epochs.
	got := f.bn.LivenessRequests()
	for _, e := range []uint64{997, 998, 999} {
		if got[e] == 0 {
			t.Fatalf("liveness asked for epochs %v, not %d", got, e)
		}
	}
	// The same request again (a replay after success) is refused and
	// changes nothing.
	posts := f.keymanagerCalls(http.MethodPost)
	_, err = agent.ImportKeys(context.Background(), f.endpoint(), req)
	var re *agent.RemoteError
	if !errors.As(err, &re) || re.Status != http.StatusConflict || !strings.Contains(re.Message, "generation 1") {
		t.Fatalf("replay: %v", err)
	}
	if f.keymanagerCalls(http.MethodPost) != posts {
		t.Fatal("a replayed grant reached the validator client")
	}
	// A fresh approval with the old grant's generation is refused too.
	a := f.newApproval(nil)
	text := f.canonical(a)
	again := req
	again.Approval, again.Signatures, again.Grant = text, f.sign(a, "alice"), f.grantFor(f.ca, text, nil)
	if _, err := agent.ImportKeys(context.Background(), f.endpoint(), again); !errors.As(err, &re) || re.Status != http.StatusConflict {
		t.Fatalf("a second grant at generation 1: %v", err)
	}
}

func TestKeyImportRefusals(t *testing.T) {
	other, err := pki.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		status int
		msg    string
		setup  func(f *keyFixture)
		mutate func(f *keyFixture, r *agent.ImportRequest)
	}{
		{name: "no grant", status: 403, msg: "grant does not verify", mutate: func(_ *keyFixture, r *agent.ImportRequest) { r.Grant = grant.Signed{} }},
		{name: "grant of another CA", status: 403, msg: "grant does not verify", mutate: func(f *keyFixture, r *agent.ImportRequest) {
			r.Grant = f.grantFor(other, r.Approval, nil)
		}},
		{name: "grant tampered", status: 403, msg: "grant does not verify", mutate: func(_ *keyFixture, r *agent.ImportRequest) {
			r.Grant.Payload = bytes.Replace(r.Grant.Payload, []byte(`"generation":1`), []byte(`"generation":9`), 1)
		}},
		{name: "expired grant", status: 403, msg: "expired", mutate: func(f *keyFixture, r *agent.ImportRequest) {
			r.Grant = f.grantFor(f.ca, r.Approval, func(g *grant.Grant) { g.Expires = agentNow.Add(-time.Second) })
		}},
		{name: "grant for another standby", status: 403, msg: "not a migration to this standby", mutate: func(f *keyFixture, r *agent.ImportRequest) {
			r.Grant = f.grantFor(f.ca, r.Approval, func(g *grant.Grant) { g.Standby, g.Owner = "fo-elsewhere", "fo-elsewhere" })
		}},
		{name: "failback grant", status: 403, msg: "not a migration to this standby", mutate: func(f *keyFixture, r *agent.ImportRequest) {
			r.Grant = f.grantFor(f.ca, r.Approval, func(g *grant.Grant) { g.Action, g.Owner = approval.ActionFailback, failover.OwnerHome })
		}},
		{name: "approval not the one the grant names", status: 403, msg: "not the one failoverd accepted", mutate: func(f *keyFixture, r *agent.ImportRequest) {
			a := f.newApproval(nil)
			r.Approval, r.Signatures = f.canonical(a), f.sign(a, "alice")
		}},
		{name: "approval signed by an unknown key", status: 403, msg: "not an allowed approver", mutate: func(f *keyFixture, r *agent.ImportRequest) {
			a := f.newApproval(func(a *approval.Approval) { a.Approver = "mallory@example" })
			r.Approval, r.Signatures = f.canonical(a), f.sign(a, "mallory")
			r.Grant = f.grantFor(f.ca, r.Approval, nil)
		}},
		{name: "approval without signatures", status: 403, msg: "no signatures", mutate: func(_ *keyFixture, r *agent.ImportRequest) { r.Signatures = nil }},
		{name: "approval for another agent certificate", status: 403, msg: "wrong-standby-cert", mutate: func(f *keyFixture, r *agent.ImportRequest) {
			a := f.newApproval(func(a *approval.Approval) { a.StandbyCertSHA256 = strings.Repeat("0f", 32) })
			r.Approval, r.Signatures = f.canonical(a), f.sign(a, "alice")
			r.Grant = f.grantFor(f.ca, r.Approval, nil)
		}},
		{name: "approval for another incident than the grant", status: 403, msg: "wrong-incident", mutate: func(f *keyFixture, r *agent.ImportRequest) {
			a := f.newApproval(func(a *approval.Approval) { a.Incident = "eth-1-2" })
			r.Approval, r.Signatures = f.canonical(a), f.sign(a, "alice")
			r.Grant = f.grantFor(f.ca, r.Approval, nil)
		}},
		{name: "expired approval", status: 403, msg: "expired", mutate: func(f *keyFixture, r *agent.ImportRequest) {
			a := f.newApproval(func(a *approval.Approval) {
				a.Issued, a.Expires = a.Issued.Add(-20*time.Minute), a.Issued.Add(-time.Minute)
			})
			r.Approval, r.Signatures = f.canonical(a), f.sign(a, "alice")
			r.Grant = f.grantFor(f.ca, r.Approval, nil)
		}},
		{name: "below the agent's threshold", status: 403, msg: "below-threshold", setup: func(f *keyFixture) {
			f.stop()
			f.threshold = 2
			f.start()
		}},
		{name: "keystores not the grant's keys", status: 403, msg: "not exactly the keys", mutate: func(f *keyFixture, r *agent.ImportRequest) {
			r.Keystores, r.Passwords = []string{f.keystores[kpk1], f.keystores[kpk3]}, []string{canaryPassword1, "another-password"}
		}},
		{name: "fewer keystores than the grant", status: 403, msg: "not exactly the keys", mutate: func(f *keyFixture, r *agent.ImportRequest) {
			r.Keystores, r.Passwords = []string{f.keystores[kpk1]}, []string{canaryPassword1}
		}},
		{name: "a password missing", status: 400, msg: "one password per keystore", mutate: func(_ *keyFixture, r *agent.ImportRequest) { r.Passwords = r.Passwords[:1] }},
		{name: "no keystores", status: 400, msg: "0 keystores", mutate: func(_ *keyFixture, r *agent.ImportRequest) { r.Keystores, r.Passwords = nil, nil }},
		{name: "not a keystore", status: 400, msg: "keystores[1]", mutate: func(_ *keyFixture, r *agent.ImportRequest) { r.Keystores[1] = `{"version":3}` }},
		{name: "liveness seen in the last 3 epochs", status: 409, msg: "chain silence not proven", setup: func(f *keyFixture) {
			f.bn.SetLive(998, 12, true)
		}},
		{name: "liveness unknown (an index missing from the reply)", status: 409, msg: "chain silence not proven", setup: func(f *keyFixture) {
			f.bn.OmitLiveness(997, 11)
		}},
		{name: "validator slashed", status: 409, msg: "slashed", setup: func(f *keyFixture) {
			f.bn.AddValidator(beacontest.Validator{Index: 12, Pubkey: kpk2, Status: "active_slashed", Slashed: true})
		}},
		{name: "beacon node down", status: 503, msg: "cannot check chain silence", setup: func(f *keyFixture) { f.bn.Fail(beacontest.Genesis, 500) }},
		{name: "slashing protection for another network", status: 400, msg: "slashing protection", mutate: func(f *keyFixture, r *agent.ImportRequest) {
			r.SlashingProtection = f.interchange("0x"+strings.Repeat("ee", 32), kpk1, kpk2)
		}},
		{name: "a key missing from the slashing protection", status: 400, msg: "no slashing protection record", mutate: func(f *keyFixture, r *agent.ImportRequest) {
			r.SlashingProtection = f.interchange(beacontest.MainnetRoot, kpk1)
		}},
		{name: "no slashing protection", status: 400, msg: "slashing protection", mutate: func(_ *keyFixture, r *agent.ImportRequest) { r.SlashingProtection = "" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newKeyFixture(t)
			if c.setup != nil {
				c.setup(f)
			}
			req := f.request()
			if c.mutate != nil {
				c.mutate(f, &req)
			}
			before := f.signer()
			reply, err := agent.ImportKeys(context.Background(), f.endpoint(), req)
			var re *agent.RemoteError
			if !errors.As(err, &re) {
				t.Fatalf("not refused: %+v %v", reply, err)
			}
			if re.Status != c.status || !strings.Contains(re.Message, c.msg) {
				t.Fatalf("refused with HTTP %d %q, want %d saying %q", re.Status, re.Message, c.status, c.msg)
			}
			if reply.Phase == failover.SignerImported {
				t.Fatalf("refusal with an imported reply %+v", reply)
			}
			f.wantNothingImported(before)
			// The refusal spent nothing: the right request goes through.
			switch c.name {
			case "below the agent's threshold", "liveness seen in the last 3 epochs", "liveness unknown (an index missing from the reply)",
				"validator slashed", "beacon node down":
				return
			}
			if _, err := agent.ImportKeys(context.Background(), f.endpoint(), f.request()); err != nil {
				t.Fatalf("a good request after the refusal: %v", err)
			}
		})
	}
}

// Anything but imported for every key stops the import: the keys that did
// import are deleted again and the validator client's gate closes.
func TestKeyImportFailsForOneKey(t *testing.T) {
	f := newKeyFixture(t)
	req := f.request()
	req.Passwords[1] = "not-the-password" // the validator client answers error for kpk2
	reply, err := agent.ImportKeys(context.Background(), f.endpoint(), req)
	var re *agent.RemoteError
	if !errors.As(err, &re) || re.Status != http.StatusConflict || !strings.Contains(re.Message, "import stopped") {
		t.Fatalf("import with a bad password: %+v %v", reply, err)
	}
	// The CLI shows the per-key statuses of the failed import.
	if reply.Phase != failover.SignerFailed || reply.Generation != 1 || reply.KeyStatuses[kpk1] != "imported" || reply.KeyStatuses[kpk2] != "error" {
		t.Fatalf("reply of the failed import %+v", reply)
	}
	if keys := f.km.ActiveKeys(); len(keys) != 0 {
		t.Fatalf("keys left active after a failed import: %v", keys)
	}
	if f.keymanagerCalls(http.MethodDelete) == 0 {
		t.Fatal("the imported key was not deleted again")
	}
	if _, ok := f.controlFile(); ok {
		t.Fatal("the validator gate stays open after a failed import")
	}
	st := f.signer()
	if st.Phase != failover.SignerFailed || st.Generation != 1 || !strings.Contains(st.Message, "keystores[1]") {
		t.Fatalf("signer %+v", st)
	}
	// The generation is spent: the same grant does not get a second try.
	req.Passwords[1] = canaryPassword2
	if _, err := agent.ImportKeys(context.Background(), f.endpoint(), req); !errors.As(err, &re) || re.Status != http.StatusConflict {
		t.Fatalf("retry with the same grant: %v", err)
	}
}

// A key the validator client refuses to delete again after a failed import
// still signs: the agent must say so.
func TestKeyImportFailsAndCleanupFails(t *testing.T) {
	f := newKeyFixture(t)
	f.km.FailKey(kpk1, "key is locked")
	req := f.request()
	req.Passwords[1] = "not-the-password"
	_, err := agent.ImportKeys(context.Background(), f.endpoint(), req)
	var re *agent.RemoteError
	if !errors.As(err, &re) || re.Status != http.StatusConflict {
		t.Fatalf("import: %v", err)
	}
	if !f.km.Active(kpk1) {
		t.Fatal("test setup: the key should still be active")
	}
	st := f.signer()
	if st.Phase != failover.SignerFailed || !strings.Contains(st.Message, "check the validator client by hand") || !strings.Contains(st.Message, "key is locked") {
		t.Fatalf("a key still loaded is not reported: %+v", st)
	}
}

func (f *keyFixture) failbackGrant(gen int64) grant.Signed {
	return f.grantFor(f.ca, f.canonical(f.newApproval(func(a *approval.Approval) { a.Action = approval.ActionFailback })), func(g *grant.Grant) {
		g.Action, g.Owner, g.Generation = approval.ActionFailback, failover.OwnerHome, gen
	})
}

func TestFence(t *testing.T) {
	f := newKeyFixture(t)
	if _, err := agent.ImportKeys(context.Background(), f.endpoint(), f.request()); err != nil {
		t.Fatal(err)
	}
	g := f.failbackGrant(2)
	// Without failoverd's client certificate: refused.
	body, _ := json.Marshal(agent.FenceRequest{Grant: g})
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: f.ca.Pool(), ServerName: standbyName, MinVersion: tls.VersionTLS13}}}
	resp, err := hc.Post("https://"+f.addr+"/v1/keys/fence", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("fence without a client certificate: HTTP %d", resp.StatusCode)
	}
	if !slices.Equal(f.km.ActiveKeys(), []string{kpk1, kpk2}) {
		t.Fatal("keys deleted by an unauthenticated fence")
	}
	c, err := agent.NewClient(f.ca, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A migration grant is no fence grant; nor is an older generation.
	if _, err := c.Fence(context.Background(), f.standby(), f.grantFor(f.ca, f.canonical(f.newApproval(nil)), func(g *grant.Grant) { g.Generation = 2 })); err == nil {
		t.Fatal("fenced with a migration grant")
	}
	if _, err := c.Fence(context.Background(), f.standby(), f.failbackGrant(1)); err == nil {
		t.Fatal("fenced with a grant at the imported generation")
	}
	if len(f.km.ActiveKeys()) != 2 {
		t.Fatal("keys deleted by a refused fence")
	}
	rep, err := c.Fence(context.Background(), f.standby(), g)
	if err != nil {
		t.Fatalf("fence: %v", err)
	}
	if rep.KeyStatuses[kpk1] != "deleted" || rep.KeyStatuses[kpk2] != "deleted" {
		t.Fatalf("fence statuses %+v", rep.KeyStatuses)
	}
	if !strings.Contains(rep.SlashingProtection, strings.TrimPrefix(kpk1, "0x")) || !strings.Contains(rep.SlashingProtection, "31000") {
		t.Fatalf("slashing protection not returned: %s", rep.SlashingProtection)
	}
	if len(f.km.ActiveKeys()) != 0 {
		t.Fatalf("keys still active: %v", f.km.ActiveKeys())
	}
	if _, ok := f.controlFile(); ok {
		t.Fatal("validator gate open after the fence")
	}
	if st := f.signer(); st.Phase != failover.SignerFenced || st.Generation != 2 {
		t.Fatalf("signer after the fence %+v", st)
	}
	// The same fence again answers the same (idempotent: a retry after a
	// lost reply).
	rep2, err := c.Fence(context.Background(), f.standby(), g)
	if err != nil || rep2.KeyStatuses[kpk1] != "not_active" {
		t.Fatalf("repeated fence: %+v %v", rep2, err)
	}
	// The old migration grant cannot bring the keys back.
	if _, err := agent.ImportKeys(context.Background(), f.endpoint(), f.request()); err == nil {
		t.Fatal("import after the fence")
	}
}

// A fence the validator client answers with error for a key leaves the
// signer failed; once fixed, a failback approved again (same generation:
// the signing right never moved) fences.
func TestFenceErrorThenAgain(t *testing.T) {
	f := newKeyFixture(t)
	if _, err := agent.ImportKeys(context.Background(), f.endpoint(), f.request()); err != nil {
		t.Fatal(err)
	}
	c, err := agent.NewClient(f.ca, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.km.FailKey(kpk2, "key is locked")
	rep, err := c.Fence(context.Background(), f.standby(), f.failbackGrant(2))
	if err != nil {
		t.Fatalf("fence: %v", err)
	}
	if rep.KeyStatuses[kpk2] != "error" {
		t.Fatalf("statuses %+v", rep.KeyStatuses)
	}
	if st := f.signer(); st.Phase != failover.SignerFailed || !strings.Contains(st.Message, "fence incomplete") {
		t.Fatalf("signer %+v", st)
	}
	f.km.FailKey(kpk2, "")
	rep, err = c.Fence(context.Background(), f.standby(), f.failbackGrant(2))
	if err != nil {
		t.Fatalf("second failback at generation 2: %v", err)
	}
	if rep.KeyStatuses[kpk2] != "deleted" || len(f.km.ActiveKeys()) != 0 {
		t.Fatalf("second fence %+v, active %v", rep.KeyStatuses, f.km.ActiveKeys())
	}
	if st := f.signer(); st.Phase != failover.SignerFenced {
		t.Fatalf("signer %+v", st)
	}
}

// A failed import never loaded one key; the failback must still be able to
// fence the standby (that key is simply not there).
func TestFenceAfterFailedImport(t *testing.T) {
	f := newKeyFixture(t)
	req := f.request()
	req.Passwords[1] = "not-the-password"
	if _, err := agent.ImportKeys(context.Background(), f.endpoint(), req); err == nil {
		t.Fatal("import with a bad password went through")
	}
	c, err := agent.NewClient(f.ca, 0)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := c.Fence(context.Background(), f.standby(), f.failbackGrant(2))
	if err != nil {
		t.Fatalf("fence: %v", err)
	}
	for _, pk := range []string{kpk1, kpk2} {
		if s := rep.KeyStatuses[pk]; s != "not_active" && s != "not_found" {
			t.Fatalf("%s: %q", pk, s)
		}
	}
	if st := f.signer(); st.Phase != failover.SignerFenced {
		t.Fatalf("a standby that holds no key is not fenced: %+v", st)
	}
}

func TestAgentRestartRemembersTheGeneration(t *testing.T) {
	f := newKeyFixture(t)
	req := f.request()
	if _, err := agent.ImportKeys(context.Background(), f.endpoint(), req); err != nil {
		t.Fatal(err)
	}
	f.stop()
	f.start()
	if st := f.signer(); st.Phase != failover.SignerImported || st.Generation != 1 {
		t.Fatalf("signer after a restart %+v", st)
	}
	posts := f.keymanagerCalls(http.MethodPost)
	_, err := agent.ImportKeys(context.Background(), f.endpoint(), req)
	var re *agent.RemoteError
	if !errors.As(err, &re) || re.Status != http.StatusConflict || !strings.Contains(re.Message, "has seen 1") {
		t.Fatalf("replay after a restart: %v", err)
	}
	if f.keymanagerCalls(http.MethodPost) != posts {
		t.Fatal("the replay reached the validator client")
	}
	// A corrupt state file stops the agent from starting rather than
	// forgetting what it has seen.
	f.stop()
	if err := os.WriteFile(filepath.Join(f.stateDir, "signer.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	creds := agenttest.WriteCredentials(t, f.ca, standbyName, t.TempDir())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	err = agent.Serve(context.Background(), ln, agent.Options{CertFile: creds.CertFile, KeyFile: creds.KeyFile, ClientCAFile: creds.ClientCAFile,
		ExecutionURL: "http://127.0.0.1:1", BeaconURL: f.beaconURL, DataPath: t.TempDir(),
		Keys: agent.KeyOptions{AllowedSigners: approval.AllowedSigners{{Principal: "alice@example"}}, KeymanagerURL: f.km.URL,
			KeymanagerToken: f.km.Token, StateDir: f.stateDir}})
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("agent started on a corrupt signer state: %v", err)
	}
}

// The canary: passwords and keystores reach the validator client and
// nothing else the agent writes, on success, refusal and failure alike.
func TestKeyImportCanary(t *testing.T) {
	f := newKeyFixture(t)
	var secrets []string
	secrets = append(secrets, canaryPassword1, canaryPassword2)
	for _, pk := range []string{kpk1, kpk2} {
		var ks struct {
			Crypto struct {
				KDF struct {
					Params struct {
						Salt string `json:"salt"`
					} `json:"params"`
				} `json:"kdf"`
				Checksum struct {
					Message string `json:"message"`
				} `json:"checksum"`
				Cipher struct {
					Message string `json:"message"`
				} `json:"cipher"`
			} `json:"crypto"`
		}
		if err := json.Unmarshal([]byte(f.keystores[pk]), &ks); err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, ks.Crypto.Cipher.Message, ks.Crypto.Checksum.Message, ks.Crypto.KDF.Params.Salt)
	}
	// A refusal, a failed import, a success, a replay and a fence.
	bad := f.request()
	bad.Grant = grant.Signed{}
	agent.ImportKeys(context.Background(), f.endpoint(), bad)
	failing := f.request()
	failing.Keystores[1] = f.keystores[kpk2][:len(f.keystores[kpk2])-1] // truncated JSON
	agent.ImportKeys(context.Background(), f.endpoint(), failing)
	wrong := f.request()
	wrong.Passwords[0], wrong.Passwords[1] = canaryPassword2, canaryPassword1
	agent.ImportKeys(context.Background(), f.endpoint(), wrong)
	f.stop()
	f.start() // the swap above spent generation 1
	ok := f.request()
	ok.Grant = f.grantFor(f.ca, ok.Approval, func(g *grant.Grant) { g.Generation = 2 })
	if _, err := agent.ImportKeys(context.Background(), f.endpoint(), ok); err != nil {
		t.Fatalf("import: %v", err)
	}
	agent.ImportKeys(context.Background(), f.endpoint(), ok)
	c, err := agent.NewClient(f.ca, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Fence(context.Background(), f.standby(), f.failbackGrant(3)); err != nil {
		t.Fatal(err)
	}
	f.stop()

	// The canary did travel: the validator client got the passwords.
	sawPassword := false
	for _, e := range f.km.Exchanges() {
		if bytes.Contains(e.RequestBody, []byte(canaryPassword1)) {
			sawPassword = true
		}
	}
	if !sawPassword {
		t.Fatal("the validator client never saw the password: the canary proves nothing")
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "keys imported") || !strings.Contains(logs, "key import refused") {
		t.Fatalf("the logs do not cover the paths the canary ran:\n%s", logs)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("a secret (%.8s...) is in the agent's logs", s)
		}
	}
	for _, dir := range []string{f.stateDir, f.controlDir} {
		filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range secrets {
				if bytes.Contains(b, []byte(s)) {
					t.Errorf("a secret (%.8s...) is in %s", s, path)
				}
			}
			return nil
		})
	}
}
