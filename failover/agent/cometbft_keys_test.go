package agent_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
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
	"github.com/failoverd/failoverd/failover/cometbft"
	"github.com/failoverd/failoverd/failover/cometbft/cometbfttest"
	"github.com/failoverd/failoverd/failover/grant"
	"github.com/failoverd/failoverd/failover/pki"
	"github.com/failoverd/failoverd/failover/privval"
)

// beraKey is a throwaway BLS12-381 CometBFT key made for these tests from a
// fixed sentence: never a validator's key, on no chain.
func beraKey(t testing.TB, name string) privval.Key {
	t.Helper()
	seed := sha256.Sum256([]byte("failoverd agent test: throwaway CometBFT key " + name))
	seed[0] &= 0x3f // below the curve order
	k, err := privval.NewKey(privval.BLS12381, seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// keyParts are the base64 values of a key file: the public key as the
// validator set shows it, and the private key (the canary).
func keyParts(t testing.TB, k privval.Key) (pub []byte, priv string) {
	t.Helper()
	var f struct {
		PubKey  struct{ Value []byte } `json:"pub_key"`
		PrivKey struct{ Value string } `json:"priv_key"`
	}
	if err := json.Unmarshal(k.File(), &f); err != nil || len(f.PubKey.Value) == 0 || f.PrivKey.Value == "" {
		t.Fatalf("key file: %v", err)
	}
	return f.PubKey.Value, f.PrivKey.Value
}

// Host modes: what the fake host's key unit does with a request.
const (
	hostNormal     = ""
	hostRefuse     = "refuse"      // refuses the install, touches nothing
	hostFail       = "fail"        // fails mid-install: marker written, beacond stopped
	hostDeaf       = "deaf"        // never runs (the path unit is broken)
	hostDeafRemove = "deaf-remove" // takes keys in, but does not answer a removal yet
	hostFailRemove = "fail-remove" // a removal fails
)

// staged is what the host found when it ran for an install request.
type staged struct {
	gen, startFile      string
	keyMode, stateMode  os.FileMode
	keyFile, stateFile  []byte
	installRequestMode  os.FileMode
	leftoverTempEntries []string
}

// fakeHost plays the standby host's failoverd-cometbft-key unit on a
// temporary directory, as failover/bootstrap's templates/signer.sh.tmpl
// does: it acts on install-requested / remove-requested (removal first),
// checks the generation against validator-start, swaps the staged files
// into beacond's home, keeps a marker with the installed generation, leaves
// beacond's state on removal, forgets the request and answers in result.
type fakeHost struct {
	t                    *testing.T
	stage, control, home string

	mu       sync.Mutex
	mode     string
	seen     []staged
	installs int
	removals int

	stop, done chan struct{}
}

func startHost(t *testing.T, stage, control string) *fakeHost {
	h := &fakeHost{t: t, stage: stage, control: control, home: t.TempDir(), stop: make(chan struct{}), done: make(chan struct{})}
	for _, d := range []string{"config", "data"} {
		if err := os.MkdirAll(filepath.Join(h.home, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// beacond starts with the throwaway key `beacond init` made on the VM.
	h.write(filepath.Join(h.home, "config", agent.CometBFTKeyFile), []byte(`{"throwaway":true}`))
	go h.loop()
	t.Cleanup(h.close)
	return h
}

func (h *fakeHost) close() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
}

func (h *fakeHost) setMode(m string) { h.mu.Lock(); h.mode = m; h.mu.Unlock() }

func (h *fakeHost) counts() (installs, removals int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.installs, h.removals
}

func (h *fakeHost) lastSeen() (staged, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) == 0 {
		return staged{}, false
	}
	return h.seen[len(h.seen)-1], true
}

func (h *fakeHost) loop() {
	defer close(h.done)
	for {
		select {
		case <-h.stop:
			return
		case <-time.After(2 * time.Millisecond):
		}
		h.step()
	}
}

func (h *fakeHost) path(name string) string { return filepath.Join(h.stage, name) }

func (h *fakeHost) write(path string, b []byte) {
	if err := os.WriteFile(path, b, 0o600); err != nil {
		h.t.Errorf("host: %v", err)
	}
}

func readTrim(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

func exists(path string) bool { _, err := os.Lstat(path); return err == nil }

func (h *fakeHost) answer(s string) {
	h.write(h.path("result.new"), []byte(s+"\n"))
	if err := os.Rename(h.path("result.new"), h.path(agent.CometBFTResult)); err != nil {
		h.t.Errorf("host: %v", err)
	}
}

func (h *fakeHost) forget() {
	for _, n := range []string{agent.CometBFTInstallRequested, agent.CometBFTRemoveRequested, agent.CometBFTKeyFile, agent.CometBFTStateFile} {
		os.Remove(h.path(n))
	}
}

func (h *fakeHost) step() {
	h.mu.Lock()
	defer h.mu.Unlock()
	marker := filepath.Join(h.home, "validator-key")
	homeKey, homeState := filepath.Join(h.home, "config", agent.CometBFTKeyFile), filepath.Join(h.home, "data", agent.CometBFTStateFile)
	if exists(h.path(agent.CometBFTRemoveRequested)) {
		gen, _ := readTrim(h.path(agent.CometBFTRemoveRequested))
		if h.mode == hostDeafRemove {
			return
		}
		if h.mode == hostFailRemove {
			h.forget()
			h.answer("failed " + gen + ": step at line 42; beacond left stopped (journalctl -u failoverd-cometbft-key)")
			return
		}
		if !exists(marker) {
			h.forget()
			h.answer("removed " + gen)
			return
		}
		if b, err := os.ReadFile(homeState); err == nil {
			h.write(h.path(agent.CometBFTReturnedState), b)
		}
		h.write(homeKey, []byte(`{"throwaway":true}`))
		os.Remove(marker)
		h.removals++
		h.forget()
		h.answer("removed " + gen)
		return
	}
	if !exists(h.path(agent.CometBFTInstallRequested)) || h.mode == hostDeaf {
		return
	}
	gen, _ := readTrim(h.path(agent.CometBFTInstallRequested))
	var s staged
	s.gen = gen
	s.startFile, _ = readTrim(filepath.Join(h.control, agent.ValidatorStartFile))
	if fi, err := os.Stat(h.path(agent.CometBFTKeyFile)); err == nil {
		s.keyMode = fi.Mode().Perm()
	}
	if fi, err := os.Stat(h.path(agent.CometBFTStateFile)); err == nil {
		s.stateMode = fi.Mode().Perm()
	}
	if fi, err := os.Stat(h.path(agent.CometBFTInstallRequested)); err == nil {
		s.installRequestMode = fi.Mode().Perm()
	}
	s.keyFile, _ = os.ReadFile(h.path(agent.CometBFTKeyFile))
	s.stateFile, _ = os.ReadFile(h.path(agent.CometBFTStateFile))
	entries, _ := os.ReadDir(h.stage)
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			s.leftoverTempEntries = append(s.leftoverTempEntries, e.Name())
		}
	}
	h.seen = append(h.seen, s)
	refuse := func(why string) { h.forget(); h.answer("refused " + gen + ": " + why) }
	switch {
	case s.startFile == "":
		refuse("this standby does not own the signing right (no validator-start)")
		return
	case s.startFile != gen:
		refuse("this standby owns generation " + s.startFile + ", not " + gen)
		return
	case s.keyFile == nil || s.stateFile == nil:
		refuse("no staged key or state")
		return
	case h.mode == hostRefuse:
		refuse("config.toml moves priv_validator_key_file")
		return
	}
	h.write(marker, []byte(gen+"\n"))
	if h.mode == hostFail {
		h.forget()
		h.answer("failed " + gen + ": step at line 7; beacond left stopped (journalctl -u failoverd-cometbft-key)")
		return
	}
	h.write(homeState, s.stateFile)
	h.write(homeKey, s.keyFile)
	h.installs++
	h.forget()
	h.answer("installed " + gen)
}

// beraFixture is a real agent for a Berachain validator, in front of a
// CometBFT-shaped node and the fake host.
type beraFixture struct {
	t          *testing.T
	ca         *pki.Authority
	node       *cometbfttest.Server
	key        privval.Key // the validator's
	addr       string      // its address in the set
	stateDir   string
	controlDir string
	keyDir     string
	host       *fakeHost
	logs       *logBuffer
	chainID    string
	timeout    time.Duration
	probe      time.Duration // Options.Timeout
	beaconURL  string
	execURL    string

	agentAddr string
	certSHA   string
	stop      func()
	nonce     int
}

const beraHead = 1000

func newBeraFixture(t *testing.T) *beraFixture { t.Helper(); return newBeraFixtureHost(t, true) }

// newBeraFixtureHost: without the fake host when fake is false (the caller
// plays the host).
func newBeraFixtureHost(t *testing.T, fake bool) *beraFixture {
	t.Helper()
	f := &beraFixture{t: t, stateDir: t.TempDir(), controlDir: t.TempDir(), logs: &logBuffer{},
		chainID: cometbfttest.MainnetChainID, timeout: 5 * time.Second, probe: 3 * time.Second}
	f.keyDir = filepath.Join(f.controlDir, "cometbft")
	if err := os.Mkdir(f.keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.ca, err = pki.LoadOrCreate(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	f.node = cometbfttest.New(t)
	// The latest block is a second old on the agent's clock.
	f.node.SetHead(beraHead, agentNow.Add(-time.Second))
	f.key = beraKey(t, "validator")
	pub, _ := keyParts(t, f.key)
	f.addr = f.node.AddValidator(cometbfttest.Validator{PubKey: pub, Power: 250_000})
	for _, name := range []string{"peer-1", "peer-2"} {
		p, _ := keyParts(t, beraKey(t, name))
		f.node.AddValidator(cometbfttest.Validator{PubKey: p, Power: 1_000_000})
	}
	// The home signer stopped at block 800.
	f.node.SetAbsent(f.addr, 801, beraHead)
	f.beaconURL = agenttest.NewBeacon(t, agenttest.SyncedBeacon()).URL
	f.execURL = agenttest.NewExecution(t, agenttest.SyncedExecution()).URL
	if fake {
		f.host = startHost(t, f.keyDir, f.controlDir)
	}
	f.start()
	return f
}

func (f *beraFixture) options() agent.Options {
	t := f.t
	var lines []string
	for _, who := range []string{"alice", "bob"} {
		lines = append(lines, who+"@example "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(approverKey(t, who).PublicKey()))))
	}
	signers, err := approval.ParseAllowedSigners(lines)
	if err != nil {
		t.Fatal(err)
	}
	creds := agenttest.WriteCredentials(t, f.ca, standbyName, t.TempDir())
	return agent.Options{
		CertFile: creds.CertFile, KeyFile: creds.KeyFile, ClientCAFile: creds.ClientCAFile,
		ExecutionURL: f.execURL, BeaconURL: f.beaconURL, DataPath: t.TempDir(), ControlDir: f.controlDir,
		Timeout: f.probe, Now: func() time.Time { return agentNow }, Version: "test",
		Logger: slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Keys:   agent.KeyOptions{AllowedSigners: signers, Threshold: 1, StateDir: f.stateDir},
		CometBFT: agent.CometBFTOptions{URL: f.node.URL, KeyDir: f.keyDir, ChainID: f.chainID,
			HostTimeout: f.timeout, PollInterval: 5 * time.Millisecond},
	}
}

// start runs the agent (again) on the fixture's directories.
func (f *beraFixture) start() {
	t := f.t
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Serve(ctx, ln, f.options()) }()
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
	f.agentAddr = ln.Addr().String()
	conn, err := tls.Dial("tcp", f.agentAddr, &tls.Config{RootCAs: f.ca.Pool(), ServerName: standbyName, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatalf("agent does not answer TLS: %v", err)
	}
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	conn.Close()
	f.certSHA = hex.EncodeToString(sum[:])
}

func (f *beraFixture) endpoint() failover.AgentEndpoint {
	return failover.AgentEndpoint{URL: "https://" + f.agentAddr, ServerName: standbyName, CAPEM: string(f.ca.CAPEM())}
}

func (f *beraFixture) standby() cloud.Standby {
	return cloud.Standby{Name: standbyName, Provider: "test", State: cloud.StateRunning, Address: f.agentAddr}
}

func (f *beraFixture) client() *agent.Client {
	c, err := agent.NewClient(f.ca, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

func (f *beraFixture) approvalFor(action string, pubkeys []string) (text string, sigs []string) {
	f.t.Helper()
	f.nonce++
	a := approval.Approval{Incident: "bera-1-1", Standby: standbyName, StandbyCertSHA256: f.certSHA,
		Pubkeys: pubkeys, Action: action, Issued: agentNow.Truncate(time.Second),
		Expires: agentNow.Truncate(time.Second).Add(15 * time.Minute), Nonce: fmt.Sprintf("bera-test-nonce-%016d", f.nonce), Approver: "alice@example"}
	b, err := a.Canonical()
	if err != nil {
		f.t.Fatal(err)
	}
	sig, err := approval.Sign(a, approverKey(f.t, "alice"))
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b), []string{string(sig)}
}

func (f *beraFixture) grantFor(approvalText string, mutate func(*grant.Grant)) grant.Signed {
	f.t.Helper()
	sum := sha256.Sum256([]byte(approvalText))
	g := grant.Grant{Validator: "bera-1", Incident: "bera-1-1", Standby: standbyName, Action: approval.ActionMigrate, Owner: standbyName,
		Generation: 1, Pubkeys: []string{f.key.Pubkey}, ApprovalSHA256: hex.EncodeToString(sum[:]), Expires: agentNow.Add(15 * time.Minute)}
	if mutate != nil {
		mutate(&g)
	}
	s, err := grant.Sign(g, f.ca)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// request is a complete, valid install of the validator's key at
// generation gen, with state (empty: none, synthesized by the agent).
func (f *beraFixture) request(gen int64, state string) agent.ImportRequest {
	text, sigs := f.approvalFor(approval.ActionMigrate, []string{f.key.Pubkey})
	return agent.ImportRequest{Approval: text, Signatures: sigs,
		Grant:            f.grantFor(text, func(g *grant.Grant) { g.Generation = gen }),
		PrivValidatorKey: string(f.key.File()), PrivValidatorState: state}
}

func (f *beraFixture) failbackGrant(gen int64) grant.Signed {
	text, _ := f.approvalFor(approval.ActionFailback, []string{f.key.Pubkey})
	return f.grantFor(text, func(g *grant.Grant) {
		g.Action, g.Owner, g.Generation = approval.ActionFailback, failover.OwnerHome, gen
	})
}

func (f *beraFixture) signer() failover.SignerState {
	f.t.Helper()
	st, _, err := f.client().Status(context.Background(), f.standby())
	if err != nil {
		f.t.Fatalf("status: %v", err)
	}
	return st.Signer
}

func (f *beraFixture) gate() (string, bool) {
	return readTrim(filepath.Join(f.controlDir, agent.ValidatorStartFile))
}

// installed is beacond's key and state on the host, and the marker.
func (f *beraFixture) installed() (key, state []byte, marker string) {
	key, _ = os.ReadFile(filepath.Join(f.host.home, "config", agent.CometBFTKeyFile))
	state, _ = os.ReadFile(filepath.Join(f.host.home, "data", agent.CometBFTStateFile))
	marker, _ = readTrim(filepath.Join(f.host.home, "validator-key"))
	return key, state, marker
}

// wantNoStagedKey: neither the key file nor a request (nor a temporary
// file of either) is left where the host would act on it.
func (f *beraFixture) wantNoStagedKey() {
	f.t.Helper()
	entries, err := os.ReadDir(f.keyDir)
	if err != nil {
		f.t.Fatal(err)
	}
	for _, e := range entries {
		switch n := e.Name(); {
		case n == agent.CometBFTResult, n == agent.CometBFTReturnedState:
		default:
			f.t.Errorf("%s left in the key directory", n)
		}
	}
}

func wantRemote(t *testing.T, err error, status int, msg string) *agent.RemoteError {
	t.Helper()
	var re *agent.RemoteError
	if !errors.As(err, &re) {
		t.Fatalf("want HTTP %d saying %q, got %v", status, msg, err)
	}
	if re.Status != status || !strings.Contains(re.Message, msg) {
		t.Fatalf("HTTP %d %q, want %d saying %q", re.Status, re.Message, status, msg)
	}
	return re
}

func TestCometBFTImport(t *testing.T) {
	cases := []struct {
		name      string
		state     func(t *testing.T) string
		wantState privval.State
	}{
		// NextHeight: the chain was working on beraHead+1 when silence was
		// proven; nothing there or below may be signed.
		{name: "no state: synthesized past the chain's height", state: func(*testing.T) string { return "" },
			wantState: privval.State{Height: beraHead + 1, Round: privval.MaxRound, Step: privval.StepPrecommit}},
		{name: "home state below the chain: raised", state: func(t *testing.T) string {
			return string(privval.State{Height: 640, Round: 0, Step: privval.StepPrevote}.File())
		}, wantState: privval.State{Height: beraHead + 1, Round: privval.MaxRound, Step: privval.StepPrecommit}},
		{name: "home state above the chain: kept", state: func(t *testing.T) string {
			return string(privval.State{Height: 5000, Round: 2, Step: privval.StepPrevote, Signature: []byte("sig"), SignBytes: []byte{1, 2}}.File())
		}, wantState: privval.State{Height: 5000, Round: 2, Step: privval.StepPrevote, Signature: []byte("sig"), SignBytes: []byte{1, 2}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newBeraFixture(t)
			commitsBefore := f.node.Requests(cometbfttest.Commit)
			req := f.request(1, c.state(t))
			reply, err := agent.ImportKeys(context.Background(), f.endpoint(), req)
			if err != nil {
				t.Fatalf("install refused: %v", err)
			}
			pk := approval.NormalizePubkey(f.key.Pubkey)
			if reply.Phase != failover.SignerImported || reply.Generation != 1 || reply.KeyStatuses[pk] != "imported" || len(reply.KeyStatuses) != 1 ||
				reply.Network != cometbfttest.MainnetChainID || !strings.Contains(reply.Message, "double_sign_check_height = 10") {
				t.Fatalf("reply %+v", reply)
			}
			// Silence was re-checked on the node right before: the default
			// 150 commits.
			if n := f.node.Requests(cometbfttest.Commit) - commitsBefore; n != cometbft.DefaultBlocks {
				t.Fatalf("%d commits read before the install, want %d", n, cometbft.DefaultBlocks)
			}
			seen, ok := f.host.lastSeen()
			if !ok {
				t.Fatal("the host never saw a request")
			}
			if seen.gen != "1" || seen.startFile != "1" {
				t.Fatalf("host saw install-requested %q with validator-start %q, want both 1", seen.gen, seen.startFile)
			}
			if seen.keyMode != 0o600 || seen.stateMode != 0o600 || seen.installRequestMode != 0o600 {
				t.Fatalf("staged modes: key %o, state %o, request %o; want 0600", seen.keyMode, seen.stateMode, seen.installRequestMode)
			}
			if len(seen.leftoverTempEntries) != 0 {
				t.Fatalf("temporary files next to the request: %v", seen.leftoverTempEntries)
			}
			key, state, marker := f.installed()
			if marker != "1" {
				t.Fatalf("marker %q", marker)
			}
			got, err := privval.ParseKey(key)
			if err != nil || got.Pubkey != f.key.Pubkey || !bytes.Equal(key, f.key.File()) {
				t.Fatalf("beacond got key %v (%v), want exactly the checked key file", got, err)
			}
			st, err := privval.ParseState(state)
			if err != nil {
				t.Fatalf("installed state: %v\n%s", err, state)
			}
			if privval.Compare(st, c.wantState) != 0 || !bytes.Equal(st.Signature, c.wantState.Signature) {
				t.Fatalf("installed state %v, want %v", st, c.wantState)
			}
			if gate, ok := f.gate(); !ok || gate != "1" {
				t.Fatalf("validator-start %q (present %v), want 1", gate, ok)
			}
			f.wantNoStagedKey()
			if st := f.signer(); st.Phase != failover.SignerImported || st.Generation != 1 || st.KeyStatuses[pk] != "imported" {
				t.Fatalf("status signer %+v", st)
			}
			// The generation is persisted: a restarted agent refuses the
			// same grant, and the host is not asked again.
			f.stop()
			f.start()
			if st := f.signer(); st.Phase != failover.SignerImported || st.Generation != 1 {
				t.Fatalf("signer after a restart %+v", st)
			}
			_, err = agent.ImportKeys(context.Background(), f.endpoint(), req)
			wantRemote(t, err, http.StatusConflict, "has seen 1")
			if n, _ := f.host.counts(); n != 1 {
				t.Fatalf("host installed %d times", n)
			}
		})
	}
}

func TestCometBFTImportRefusals(t *testing.T) {
	outsider := beraKey(t, "not in the set")
	cases := []struct {
		name   string
		status int
		msg    string
		// spent: the host was asked, so the generation is used and the
		// signer reports failed.
		spent  bool
		setup  func(f *beraFixture)
		mutate func(f *beraFixture, r *agent.ImportRequest)
	}{
		{name: "key file of another validator", status: 403, msg: "not exactly the one key the grant names", mutate: func(f *beraFixture, r *agent.ImportRequest) {
			r.PrivValidatorKey = string(beraKey(t, "peer-1").File())
		}},
		{name: "grant names two keys", status: 403, msg: "not exactly the one key", mutate: func(f *beraFixture, r *agent.ImportRequest) {
			r.Grant = f.grantFor(r.Approval, func(g *grant.Grant) { g.Pubkeys = append(g.Pubkeys, outsider.Pubkey) })
		}},
		{name: "private key not the public key's", status: 400, msg: "priv_validator_key", mutate: func(f *beraFixture, r *agent.ImportRequest) {
			_, otherPriv := keyParts(t, outsider)
			_, priv := keyParts(t, f.key)
			r.PrivValidatorKey = strings.Replace(r.PrivValidatorKey, priv, otherPriv, 1)
		}},
		{name: "no key file", status: 400, msg: "no priv_validator_key", mutate: func(_ *beraFixture, r *agent.ImportRequest) { r.PrivValidatorKey = "" }},
		{name: "keystores sent to a Berachain agent", status: 400, msg: "on Berachain", mutate: func(_ *beraFixture, r *agent.ImportRequest) {
			r.Keystores, r.Passwords = []string{`{}`}, []string{"pw"}
		}},
		{name: "bad state file", status: 400, msg: "priv_validator_state", mutate: func(_ *beraFixture, r *agent.ImportRequest) {
			r.PrivValidatorState = `{"height": 1200, "round": 0, "step": 3}`
		}},
		{name: "stale generation", status: 409, msg: "ownership changed meanwhile", setup: func(f *beraFixture) {
			if _, err := agent.ImportKeys(context.Background(), f.endpoint(), f.request(2, "")); err != nil {
				f.t.Fatal(err)
			}
		}, mutate: func(f *beraFixture, r *agent.ImportRequest) {
			r.Grant = f.grantFor(r.Approval, func(g *grant.Grant) { g.Generation = 1 })
		}},
		{name: "grant of another CA", status: 403, msg: "grant does not verify", mutate: func(f *beraFixture, r *agent.ImportRequest) {
			other, err := pki.LoadOrCreate(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			g, err := grant.Sign(grant.Grant{Validator: "bera-1", Incident: "bera-1-1", Standby: standbyName, Action: approval.ActionMigrate, Owner: standbyName,
				Generation: 1, Pubkeys: []string{f.key.Pubkey}, ApprovalSHA256: strings.Repeat("0", 64), Expires: agentNow.Add(time.Hour)}, other)
			if err != nil {
				t.Fatal(err)
			}
			r.Grant = g
		}},
		{name: "approval without signatures", status: 403, msg: "no signatures", mutate: func(_ *beraFixture, r *agent.ImportRequest) { r.Signatures = nil }},
		{name: "validator signed a recent block", status: 409, msg: "chain silence not proven", setup: func(f *beraFixture) {
			f.node.SetVote(950, f.addr, cometbfttest.FlagAggCommit)
		}},
		{name: "validator not in the set", status: 409, msg: "not in the validator set", setup: func(f *beraFixture) {
			f.key = outsider
		}},
		{name: "node catching up", status: 409, msg: "catching up", setup: func(f *beraFixture) { f.node.SetCatchingUp(true) }},
		{name: "node on another chain", status: 409, msg: "wrong network", setup: func(f *beraFixture) { f.node.SetChainID("bepolia-beacon-80069") }},
		{name: "node down", status: 503, msg: "cannot check chain silence", setup: func(f *beraFixture) { f.node.Fail(cometbfttest.Status, 500) }},
		{name: "host refused", status: 409, msg: "refused 1: config.toml moves", spent: true, setup: func(f *beraFixture) { f.host.setMode(hostRefuse) }},
		{name: "host failed", status: 409, msg: "failed 1: step at line 7", spent: true, setup: func(f *beraFixture) { f.host.setMode(hostFail) }},
		{name: "host timeout", status: 409, msg: "did not answer", spent: true, setup: func(f *beraFixture) {
			f.host.setMode(hostDeaf)
			f.stop()
			f.timeout = 300 * time.Millisecond
			f.start()
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newBeraFixture(t)
			if c.setup != nil {
				c.setup(f)
			}
			req := f.request(1, "")
			if c.mutate != nil {
				c.mutate(f, &req)
			}
			before := f.signer()
			installsBefore, _ := f.host.counts()
			keyBefore, stateBefore, markerBefore := f.installed()
			gateBefore, gateWasOpen := f.gate()

			reply, err := agent.ImportKeys(context.Background(), f.endpoint(), req)
			wantRemote(t, err, c.status, c.msg)
			if reply.Phase == failover.SignerImported {
				t.Fatalf("refusal with an imported reply %+v", reply)
			}
			// Nothing is left for the host (a deaf one has not consumed
			// anything), and a host that comes late finds nothing to install.
			f.wantNoStagedKey()
			f.host.setMode(hostNormal)
			time.Sleep(50 * time.Millisecond)

			if n, _ := f.host.counts(); n != installsBefore {
				t.Fatal("the host installed a key")
			}
			key, state, marker := f.installed()
			if c.name != "host failed" && (!bytes.Equal(key, keyBefore) || !bytes.Equal(state, stateBefore) || marker != markerBefore) {
				t.Fatalf("beacond's files changed: key %s, state %s, marker %q", key, state, marker)
			}
			f.wantNoStagedKey()
			st := f.signer()
			if !c.spent {
				if st.Generation != before.Generation || st.Phase != before.Phase {
					t.Fatalf("signer state %+v, was %+v", st, before)
				}
				if gate, open := f.gate(); open != gateWasOpen || gate != gateBefore {
					t.Fatalf("validator-start %q (present %v), was %q (%v)", gate, open, gateBefore, gateWasOpen)
				}
				if c.name == "stale generation" {
					return
				}
				// The refusal spent nothing: the right request goes through
				// once the cause is gone.
				switch c.name {
				case "validator signed a recent block", "validator not in the set", "node catching up", "node on another chain", "node down":
					return
				}
				if _, err := agent.ImportKeys(context.Background(), f.endpoint(), f.request(1, "")); err != nil {
					t.Fatalf("a good request after the refusal: %v", err)
				}
				return
			}
			// The host was asked: the generation is spent, beacond's gate
			// closed whatever the host did, the reply and the status say why.
			if st.Phase != failover.SignerFailed || st.Generation != 1 || !strings.Contains(st.Message, "gate is closed") {
				t.Fatalf("signer %+v", st)
			}
			if reply.Phase != failover.SignerFailed || reply.KeyStatuses[approval.NormalizePubkey(f.key.Pubkey)] != "error" {
				t.Fatalf("reply %+v", reply)
			}
			if gate, open := f.gate(); open {
				t.Fatalf("validator-start left open (%q)", gate)
			}
			_, err = agent.ImportKeys(context.Background(), f.endpoint(), f.request(1, ""))
			wantRemote(t, err, http.StatusConflict, "has seen 1")
		})
	}
}

func TestCometBFTFence(t *testing.T) {
	f := newBeraFixture(t)
	if _, err := agent.ImportKeys(context.Background(), f.endpoint(), f.request(1, "")); err != nil {
		t.Fatal(err)
	}
	// beacond signs on: its state moves past what was installed.
	signed := privval.State{Height: 1480, Round: 0, Step: privval.StepPrecommit, Signature: []byte("a signature"), SignBytes: []byte{0xAB, 0xCD}}
	if err := os.WriteFile(filepath.Join(f.host.home, "data", agent.CometBFTStateFile), signed.File(), 0o600); err != nil {
		t.Fatal(err)
	}
	c := f.client()
	// A migration grant is no fence grant; nor is the imported generation.
	text, _ := f.approvalFor(approval.ActionMigrate, []string{f.key.Pubkey})
	if _, err := c.FenceCometBFT(context.Background(), f.standby(), f.grantFor(text, func(g *grant.Grant) { g.Generation = 2 })); err == nil {
		t.Fatal("fenced with a migration grant")
	}
	if _, err := c.FenceCometBFT(context.Background(), f.standby(), f.failbackGrant(1)); err == nil {
		t.Fatal("fenced with a grant at the imported generation")
	}
	if _, removals := f.host.counts(); removals != 0 {
		t.Fatal("a refused fence reached the host")
	}

	g := f.failbackGrant(2)
	rep, err := c.FenceCometBFT(context.Background(), f.standby(), g)
	if err != nil {
		t.Fatalf("fence: %v", err)
	}
	pk := approval.NormalizePubkey(f.key.Pubkey)
	if rep.KeyStatuses[pk] != "deleted" || len(rep.KeyStatuses) != 1 {
		t.Fatalf("fence statuses %+v", rep.KeyStatuses)
	}
	got, err := privval.ParseState([]byte(rep.PrivValidatorState))
	if err != nil || privval.Compare(got, signed) != 0 || !bytes.Equal(got.Signature, signed.Signature) {
		t.Fatalf("returned state %q (%v), want beacond's last one %v", rep.PrivValidatorState, err, signed)
	}
	if !strings.Contains(rep.Message, "height 1480") {
		t.Fatalf("message %q", rep.Message)
	}
	key, _, marker := f.installed()
	if marker != "" || bytes.Contains(key, []byte("priv_key")) {
		t.Fatalf("beacond still holds the key: marker %q, key %s", marker, key)
	}
	if gate, open := f.gate(); open {
		t.Fatalf("validator-start left open (%q)", gate)
	}
	if st := f.signer(); st.Phase != failover.SignerFenced || st.Generation != 2 || st.KeyStatuses[pk] != "deleted" {
		t.Fatalf("signer after the fence %+v", st)
	}
	// A repeat (a lost reply) answers again, with the same state, and
	// removes nothing more; failoverd's own interface reads the statuses.
	rep2, err := c.Fence(context.Background(), f.standby(), g)
	if err != nil || rep2.KeyStatuses[pk] != "not_active" {
		t.Fatalf("repeated fence: %+v %v", rep2, err)
	}
	rep3, err := c.FenceCometBFT(context.Background(), f.standby(), g)
	if err != nil || rep3.PrivValidatorState != rep.PrivValidatorState {
		t.Fatalf("third fence: %+v %v", rep3, err)
	}
	if _, removals := f.host.counts(); removals != 1 {
		t.Fatalf("host removed %d times", removals)
	}
	// The old migration grant cannot bring the key back.
	if _, err := agent.ImportKeys(context.Background(), f.endpoint(), f.request(1, "")); err == nil {
		t.Fatal("install after the fence")
	}
}

// A removal the host fails leaves the signer failed and the gate shut; a
// failback approved again (same generation) fences once the host works.
func TestCometBFTFenceFailsThenAgain(t *testing.T) {
	f := newBeraFixture(t)
	if _, err := agent.ImportKeys(context.Background(), f.endpoint(), f.request(1, "")); err != nil {
		t.Fatal(err)
	}
	f.host.setMode(hostFailRemove)
	c := f.client()
	_, err := c.FenceCometBFT(context.Background(), f.standby(), f.failbackGrant(2))
	wantRemote(t, err, http.StatusBadGateway, "failed 2: step at line 42")
	if gate, open := f.gate(); open {
		t.Fatalf("validator-start left open (%q) after a failed removal", gate)
	}
	if st := f.signer(); st.Phase != failover.SignerFailed || st.Generation != 2 || !strings.Contains(st.Message, "fence incomplete") {
		t.Fatalf("signer %+v", st)
	}
	f.host.setMode(hostNormal)
	rep, err := c.FenceCometBFT(context.Background(), f.standby(), f.failbackGrant(2))
	if err != nil {
		t.Fatalf("second failback at generation 2: %v", err)
	}
	if rep.KeyStatuses[approval.NormalizePubkey(f.key.Pubkey)] != "deleted" || rep.PrivValidatorState == "" {
		t.Fatalf("second fence %+v", rep)
	}
	if _, _, marker := f.installed(); marker != "" {
		t.Fatalf("marker %q after the fence", marker)
	}
}

// A standby whose install the host refused holds no key: the failback
// still fences it, with nothing to return.
func TestCometBFTFenceAfterRefusedInstall(t *testing.T) {
	f := newBeraFixture(t)
	f.host.setMode(hostRefuse)
	if _, err := agent.ImportKeys(context.Background(), f.endpoint(), f.request(1, "")); err == nil {
		t.Fatal("install went through a refusing host")
	}
	f.host.setMode(hostNormal)
	rep, err := f.client().FenceCometBFT(context.Background(), f.standby(), f.failbackGrant(2))
	if err != nil {
		t.Fatalf("fence: %v", err)
	}
	if rep.PrivValidatorState != "" || !strings.Contains(rep.Message, "no state to return") {
		t.Fatalf("fence of a standby without a key: %+v", rep)
	}
	if st := f.signer(); st.Phase != failover.SignerFenced {
		t.Fatalf("signer %+v", st)
	}
}

func TestCometBFTChainRoute(t *testing.T) {
	f := newBeraFixture(t)
	c := f.client()
	rep, err := c.CometBFTChain(context.Background(), f.standby(), []string{f.key.Pubkey}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Silent() || !rep.InValidatorSet || rep.Network != cometbfttest.MainnetChainID || rep.Address != f.addr ||
		rep.CheckedTo != beraHead || rep.CheckedFrom != beraHead-cometbft.DefaultBlocks+1 || rep.NextHeight() != beraHead+1 {
		t.Fatalf("report %+v", rep)
	}
	// Fewer blocks than the minimum are asked as the minimum.
	rep, err = c.CometBFTChain(context.Background(), f.standby(), []string{f.key.Pubkey}, 3)
	if err != nil || rep.CheckedFrom != beraHead-cometbft.MinBlocks+1 {
		t.Fatalf("3 blocks: %+v %v", rep, err)
	}
	f.node.SetVote(990, f.addr, cometbfttest.FlagCommit)
	rep, err = c.CometBFTChain(context.Background(), f.standby(), []string{f.key.Pubkey}, 20)
	if err != nil || rep.Silent() || rep.LastSigned != 990 || !strings.Contains(rep.NotSilent, "signed block 990") {
		t.Fatalf("a signature at 990: %+v %v", rep, err)
	}
	_, err = c.CometBFTChain(context.Background(), f.standby(), []string{f.key.Pubkey, beraKey(t, "peer-1").Pubkey}, 0)
	wantRemote(t, err, http.StatusBadRequest, "one key")
	_, err = c.CometBFTChain(context.Background(), f.standby(), []string{"0x1234"}, 0)
	wantRemote(t, err, http.StatusBadRequest, "public key")
	_, err = c.CometBFTChain(context.Background(), f.standby(), []string{f.key.Pubkey}, cometbft.MaxBlocks+1)
	wantRemote(t, err, http.StatusBadRequest, "blocks")
	f.node.Fail(cometbfttest.Commit, 500)
	_, err = c.CometBFTChain(context.Background(), f.standby(), []string{f.key.Pubkey}, 0)
	wantRemote(t, err, http.StatusBadGateway, "Internal error")
	if !errors.Is(err, cloud.ErrTransient) {
		t.Fatalf("a node failure is not transient: %v", err)
	}

	// An Ethereum agent has no CometBFT node; an unknown kind is refused.
	e := newKeyFixture(t)
	ec, err := agent.NewClient(e.ca, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ec.CometBFTChain(context.Background(), e.standby(), []string{f.key.Pubkey}, 0)
	wantRemote(t, err, http.StatusNotImplemented, "no CometBFT node")
	var out map[string]any
	body := agent.ChainRequest{Kind: "solana", Pubkeys: []string{kpk1}}
	_, err = ec.Chain(context.Background(), e.standby(), body.Pubkeys, 3) // the beacon kind still works
	if err != nil {
		t.Fatalf("beacon chain on the Ethereum agent: %v", err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS(t, e.ca)}}
	b, _ := json.Marshal(body)
	resp, err := hc.Post("https://"+e.addr+"/v1/chain", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["error"]), "unknown kind") {
		t.Fatalf("kind solana: HTTP %d %v %v", resp.StatusCode, out, err)
	}
}

// clientTLS is failoverd's client side of the agent's mutual TLS.
func clientTLS(t *testing.T, ca *pki.Authority) *tls.Config {
	t.Helper()
	cert, err := ca.ClientCertificate()
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{RootCAs: ca.Pool(), ServerName: standbyName, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
}

// An Ethereum agent refuses a CometBFT key rather than ignore it.
func TestEthereumAgentRefusesCometBFTKey(t *testing.T) {
	f := newKeyFixture(t)
	req := f.request()
	req.PrivValidatorKey = string(beraKey(t, "validator").File())
	_, err := agent.ImportKeys(context.Background(), f.endpoint(), req)
	wantRemote(t, err, http.StatusBadRequest, "on Ethereum")
	if n := f.keymanagerCalls(http.MethodPost); n != 0 {
		t.Fatal("the import reached the validator client")
	}
}

// An agent that stopped while the host was installing settles the install
// from the host's answer when it starts again.
func TestCometBFTRestartDuringInstall(t *testing.T) {
	for _, c := range []struct {
		answer, phase string
		gateOpen      bool
	}{
		{"installed 3", failover.SignerImported, true},
		{"refused 3: this standby owns generation 2, not 3", failover.SignerFailed, false},
		{"installed 2", failover.SignerImporting, true}, // not this request's answer
	} {
		t.Run(c.answer, func(t *testing.T) {
			f := newBeraFixture(t)
			f.stop()
			pk := approval.NormalizePubkey(f.key.Pubkey)
			st, _ := json.Marshal(map[string]any{"generation": 3, "phase": failover.SignerImporting, "keyStatuses": map[string]string{pk: "importing"}})
			if err := os.WriteFile(filepath.Join(f.stateDir, "signer.json"), st, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(f.controlDir, agent.ValidatorStartFile), []byte("3\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(f.keyDir, agent.CometBFTResult), []byte(c.answer+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			f.start()
			got := f.signer()
			if got.Phase != c.phase || got.Generation != 3 {
				t.Fatalf("signer %+v, want phase %s", got, c.phase)
			}
			if c.phase == failover.SignerImported && got.KeyStatuses[pk] != "imported" {
				t.Fatalf("statuses %+v", got.KeyStatuses)
			}
			if _, open := f.gate(); open != c.gateOpen {
				t.Fatalf("validator-start present %v, want %v", open, c.gateOpen)
			}
		})
	}
}

// The status answers while the agent waits for the host.
func TestCometBFTStatusDuringInstall(t *testing.T) {
	f := newBeraFixture(t)
	f.host.setMode(hostDeaf)
	req, ep := f.request(1, ""), f.endpoint()
	done := make(chan error, 1)
	go func() {
		_, err := agent.ImportKeys(context.Background(), ep, req)
		done <- err
	}()
	deadline := time.Now().Add(3 * time.Second)
	for {
		st := f.signer()
		if st.Phase == failover.SignerImporting && st.Generation == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed the install: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.host.setMode(hostNormal)
	if err := <-done; err != nil {
		t.Fatalf("install: %v", err)
	}
	if st := f.signer(); st.Phase != failover.SignerImported {
		t.Fatalf("signer %+v", st)
	}
}

// A host that takes longer than the agent's usual write timeout (2×1 s +
// 10 s here; stopping beacond may take minutes) still gets its answer to
// the approver.
func TestCometBFTSlowHost(t *testing.T) {
	f := newBeraFixture(t)
	f.stop()
	f.probe, f.timeout = time.Second, time.Minute
	f.start()
	f.host.setMode(hostDeaf)
	time.AfterFunc(13*time.Second, func() { f.host.setMode(hostNormal) })
	start := time.Now()
	reply, err := agent.ImportKeys(context.Background(), f.endpoint(), f.request(1, ""))
	if err != nil || reply.Phase != failover.SignerImported {
		t.Fatalf("install after %s: %+v %v", time.Since(start).Round(time.Second), reply, err)
	}
	if d := time.Since(start); d < 13*time.Second {
		t.Fatalf("answered after %s, before the host did", d)
	}
}

func TestCometBFTOptionsRefused(t *testing.T) {
	ca, err := pki.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	creds := agenttest.WriteCredentials(t, ca, standbyName, t.TempDir())
	signers := approval.AllowedSigners{{Principal: "alice@example"}}
	base := func() agent.Options {
		return agent.Options{CertFile: creds.CertFile, KeyFile: creds.KeyFile, ClientCAFile: creds.ClientCAFile,
			ExecutionURL: "http://127.0.0.1:1", BeaconURL: "http://127.0.0.1:1", DataPath: t.TempDir(), ControlDir: t.TempDir(),
			Keys:     agent.KeyOptions{AllowedSigners: signers, StateDir: t.TempDir()},
			CometBFT: agent.CometBFTOptions{URL: "http://127.0.0.1:26657", KeyDir: t.TempDir()}}
	}
	for _, c := range []struct {
		name   string
		mutate func(o *agent.Options)
		msg    string
	}{
		{"key directory without a node", func(o *agent.Options) { o.CometBFT.URL = "" }, "needs the CometBFT node's URL"},
		{"node URL not http", func(o *agent.Options) { o.CometBFT.URL = "tcp://127.0.0.1:26657" }, "CometBFT URL"},
		{"too few blocks", func(o *agent.Options) { o.CometBFT.Blocks = 5 }, "silent blocks"},
		{"no control directory", func(o *agent.Options) { o.ControlDir = "" }, "control directory"},
		{"no state directory", func(o *agent.Options) { o.Keys.StateDir = "" }, "state directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := base()
			c.mutate(&o)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			err = agent.Serve(context.Background(), ln, o)
			if err == nil || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("Serve: %v, want %q", err, c.msg)
			}
		})
	}
}

// The canary: the private key reaches the host's staged key file, which
// the host consumes, and nothing else the agent writes or says, on
// refusals, failures, success, replay and fence alike.
func TestCometBFTCanary(t *testing.T) {
	f := newBeraFixture(t)
	_, priv := keyParts(t, f.key)
	raw, err := base64.StdEncoding.DecodeString(priv)
	if err != nil {
		t.Fatal(err)
	}
	wrong := beraKey(t, "peer-2")
	_, wrongPriv := keyParts(t, wrong)
	wrongRaw, _ := base64.StdEncoding.DecodeString(wrongPriv)
	secrets := []string{priv, hex.EncodeToString(raw), strings.ToUpper(hex.EncodeToString(raw)), string(raw),
		wrongPriv, hex.EncodeToString(wrongRaw)}
	var said []string
	note := func(reply agent.ImportReply, err error) {
		b, _ := json.Marshal(reply)
		said = append(said, string(b))
		if err != nil {
			said = append(said, err.Error())
		}
	}

	bad := f.request(1, "")
	bad.Grant = grant.Signed{}
	note(agent.ImportKeys(context.Background(), f.endpoint(), bad))
	other := f.request(1, "")
	other.PrivValidatorKey = string(wrong.File())
	note(agent.ImportKeys(context.Background(), f.endpoint(), other))
	tampered := f.request(1, "")
	tampered.PrivValidatorKey = strings.Replace(tampered.PrivValidatorKey, priv, wrongPriv, 1)
	note(agent.ImportKeys(context.Background(), f.endpoint(), tampered))
	f.host.setMode(hostRefuse)
	note(agent.ImportKeys(context.Background(), f.endpoint(), f.request(1, "")))
	f.host.setMode(hostNormal)
	ok := f.request(2, "")
	note(agent.ImportKeys(context.Background(), f.endpoint(), ok))
	note(agent.ImportKeys(context.Background(), f.endpoint(), ok))
	rep, err := f.client().FenceCometBFT(context.Background(), f.standby(), f.failbackGrant(3))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(rep)
	said = append(said, string(b))
	st, _ := json.Marshal(f.signer())
	said = append(said, string(st))
	f.stop()

	// The canary did travel: the host got the key.
	if seen, _ := f.host.lastSeen(); !bytes.Contains(seen.keyFile, []byte(priv)) {
		t.Fatal("the host never saw the private key: the canary proves nothing")
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "keys imported") || !strings.Contains(logs, "key import refused") || !strings.Contains(logs, "fenced") {
		t.Fatalf("the logs do not cover the paths the canary ran:\n%s", logs)
	}
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("a secret (%.6s...) is in the agent's logs", s)
		}
		for _, r := range said {
			if strings.Contains(r, s) {
				t.Errorf("a secret (%.6s...) is in a reply: %s", s, r)
			}
		}
	}
	// The state and control directories (the key directory among them):
	// the host consumed the staged key; nothing else holds it.
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
					t.Errorf("a secret (%.6s...) is in %s", s, path)
				}
			}
			return nil
		})
	}
}

// failoverd's fence (Client.Fence) waits as long as its caller allows, not
// only the client's own timeout: a Berachain removal stops beacond first.
func TestFenceWaitsForTheCallersDeadline(t *testing.T) {
	f := newBeraFixture(t)
	if reply, err := agent.ImportKeys(context.Background(), f.endpoint(), f.request(1, "")); err != nil || reply.Phase != failover.SignerImported {
		t.Fatalf("install: %+v %v", reply, err)
	}
	f.host.setMode(hostDeafRemove)
	c := f.client()
	c.Timeout = time.Second
	start := time.Now()
	if _, err := c.Fence(context.Background(), f.standby(), f.failbackGrant(2)); err == nil {
		t.Fatal("the fence answered although the host had not removed the key")
	}
	time.AfterFunc(2*time.Second, func() { f.host.setMode(hostNormal) })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := c.Fence(ctx, f.standby(), f.failbackGrant(2))
	if err != nil {
		t.Fatalf("fence within the caller's 30 s: %v", err)
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Fatalf("answered after %s, before the host removed the key", d)
	}
	for pk, s := range rep.KeyStatuses {
		if s != "deleted" && s != "not_active" {
			t.Fatalf("%s: %s", pk, s)
		}
	}
}
