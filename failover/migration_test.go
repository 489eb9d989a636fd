package failover_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/ssh"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/sim"
	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/beacon"
	"github.com/failoverd/failoverd/failover/beacon/beacontest"
	"github.com/failoverd/failoverd/failover/cometbft"
	"github.com/failoverd/failoverd/failover/config"
	"github.com/failoverd/failoverd/failover/grant"
	"github.com/failoverd/failoverd/failover/pki"
	"github.com/failoverd/failoverd/failover/store/bolt"
	"github.com/failoverd/failoverd/failover/store/storetest"
)

// The validator keys every test moves, and the network they are on.
var (
	pk1 = "0x" + strings.Repeat("a1", 48)
	pk2 = "0x" + strings.Repeat("b2", 48)
	// eth-2's keys (eth-1 has pk1 and pk2).
	pk3 = "0x" + strings.Repeat("c3", 48)
	pk4 = "0x" + strings.Repeat("d4", 48)
	// bera-1's CometBFT key.
	pk5       = "0x" + strings.Repeat("e5", 48)
	hoodiRoot = "0x" + strings.Repeat("10", 32)
	otherRoot = "0x" + strings.Repeat("ee", 32)
)

const fromAddr = "192.0.2.10:40000"

// certFor is the standby agent certificate hash failoverd reports for a
// standby (what an approver signs).
func certFor(standby string) string {
	sum := sha256.Sum256([]byte("agent certificate of " + standby))
	return hex.EncodeToString(sum[:])
}

// silentReport is a standby beacon node's report of two silent keys on hoodi.
func silentReport(pubkeys []string) beacon.Report {
	r := beacon.Report{GenesisValidatorsRoot: hoodiRoot, Epoch: 1000, Slot: 32_000, SilentEpochs: []uint64{999, 998, 997}}
	for i := range pubkeys {
		r.Indices = append(r.Indices, fmt.Sprint(i+1))
	}
	return r
}

// addrProvider is the simulated cloud with an agent address on every
// standby: the sim runs no agent, and failoverd refuses to move keys to a
// standby it cannot reach. Its sync status can be overridden.
type addrProvider struct {
	*sim.Cloud
	mu   sync.Mutex
	addr string
	sync func() (cloud.SyncStatus, error)
}

func (p *addrProvider) address() string { p.mu.Lock(); defer p.mu.Unlock(); return p.addr }

func (p *addrProvider) Get(ctx context.Context, name string) (cloud.Standby, error) {
	sb, err := p.Cloud.Get(ctx, name)
	sb.Address = p.address()
	return sb, err
}

func (p *addrProvider) Ensure(ctx context.Context, spec cloud.StandbySpec) (cloud.Standby, error) {
	sb, err := p.Cloud.Ensure(ctx, spec)
	sb.Address = p.address()
	return sb, err
}

func (p *addrProvider) SyncStatus(ctx context.Context, sb cloud.Standby) (cloud.SyncStatus, error) {
	p.mu.Lock()
	f := p.sync
	p.mu.Unlock()
	if f != nil {
		return f()
	}
	return p.Cloud.SyncStatus(ctx, sb)
}

// agentModel is one standby agent as the fake keeps it: what it has acted
// on and whether its validator client signs.
type agentModel struct {
	seen      int64 // highest generation acted on
	phase     string
	message   string
	statuses  map[string]string
	active    bool            // keys loaded, validator client running: it signs
	loaded    map[string]bool // keys its validator client ever loaded
	importGen int64           // the generation its signing keys came with
	since     time.Time       // when it started signing
	lastSign  time.Time
	report    *failover.SignerState // a scripted /v1/status answer
}

// fakeKeys is failover.StandbyKeys plus the approver's CLI delivering keys
// (Import). It follows the real agent's rules: a grant must verify against
// failoverd's CA, name this standby and be newer than anything seen.
type fakeKeys struct {
	mu     sync.Mutex
	caPEM  []byte
	now    func() time.Time
	agents map[string]*agentModel

	chain      func(sb cloud.Standby, pubkeys []string, epochs int) (beacon.Report, error)
	chainCalls int
	// silent is the chain as the agent sees it right before an import.
	silent func() bool

	fenceStatus func(pk string) string // nil: "deleted"
	fences      []grant.Grant
	fenceErrs   int

	imports []grant.Grant
}

func newFakeKeys(caPEM []byte, now func() time.Time) *fakeKeys {
	return &fakeKeys{caPEM: caPEM, now: now, agents: map[string]*agentModel{}}
}

func (k *fakeKeys) agent(name string) *agentModel {
	a, ok := k.agents[name]
	if !ok {
		a = &agentModel{}
		k.agents[name] = a
	}
	return a
}

func (k *fakeKeys) Chain(_ context.Context, sb cloud.Standby, pubkeys []string, epochs int) (beacon.Report, error) {
	k.mu.Lock()
	k.chainCalls++
	f := k.chain
	k.mu.Unlock()
	if epochs < beacon.MinSilentEpochs {
		return beacon.Report{}, fmt.Errorf("asked for %d epochs of silence, fewer than %d", epochs, beacon.MinSilentEpochs)
	}
	if f != nil {
		return f(sb, pubkeys, epochs)
	}
	return silentReport(pubkeys), nil
}

func (k *fakeKeys) Signer(_ context.Context, sb cloud.Standby) (failover.SignerState, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	a := k.agent(sb.Name)
	if a.report != nil {
		return *a.report, nil
	}
	st := failover.SignerState{Generation: a.seen, Phase: a.phase, Message: a.message}
	if a.statuses != nil {
		st.KeyStatuses = map[string]string{}
		for pk, s := range a.statuses {
			st.KeyStatuses[pk] = s
		}
	}
	return st, nil
}

func (k *fakeKeys) setReport(name string, st failover.SignerState) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.agent(name).report = &st
}

func (k *fakeKeys) Fence(_ context.Context, sb cloud.Standby, s grant.Signed) (failover.FenceReport, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	g, err := grant.Verify(s, k.caPEM, k.now())
	if err != nil {
		k.fenceErrs++
		return failover.FenceReport{}, err
	}
	a := k.agent(sb.Name)
	if g.Action != approval.ActionFailback || g.Standby != sb.Name {
		k.fenceErrs++
		return failover.FenceReport{}, fmt.Errorf("grant %s for %s is not a failback from %s", g.Action, g.Standby, sb.Name)
	}
	// A repeat at the same generation is allowed after a fence that ended
	// fenced or failed (a failback approved again after a failed fence).
	if g.Generation < a.seen || g.Generation == a.seen && a.phase != failover.SignerFenced && a.phase != failover.SignerFailed {
		k.fenceErrs++
		return failover.FenceReport{}, fmt.Errorf("fence grant generation %d, agent has seen %d", g.Generation, a.seen)
	}
	k.fences = append(k.fences, g)
	rep := failover.FenceReport{KeyStatuses: map[string]string{},
		SlashingProtection: `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"` + hoodiRoot + `"},"data":[]}`}
	failed := false
	for _, pk := range g.Pubkeys {
		st := "deleted"
		switch {
		case !a.loaded[pk]:
			st = "not_found"
		case !a.active:
			st = "not_active"
		}
		if k.fenceStatus != nil {
			if s := k.fenceStatus(pk); s != "" {
				st = s
			}
		}
		if st != "deleted" && st != "not_active" && st != "not_found" {
			failed = true
		}
		rep.KeyStatuses[pk] = st
	}
	a.seen, a.statuses = g.Generation, rep.KeyStatuses
	if failed {
		// A key the validator client would not delete still signs.
		a.phase, a.message = failover.SignerFailed, "fence incomplete"
	} else {
		a.phase, a.message, a.active = failover.SignerFenced, "every key deleted", false
	}
	return rep, nil
}

func (k *fakeKeys) Endpoint(sb cloud.Standby) (failover.AgentEndpoint, error) {
	if sb.Address == "" {
		return failover.AgentEndpoint{}, fmt.Errorf("standby %s has no address yet", sb.Name)
	}
	return failover.AgentEndpoint{URL: "https://" + sb.Address, ServerName: sb.Name, CAPEM: string(k.caPEM)}, nil
}

// The outcomes of a key delivery.
const (
	importOK    = "imported"
	importFail  = "failed"
	importStuck = "importing" // the agent died mid-import
)

// Import is the approver's CLI sending keys with a grant to the standby's
// agent; it returns the agent's refusal, if any.
func (k *fakeKeys) Import(standby string, s grant.Signed, outcome string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	g, err := grant.Verify(s, k.caPEM, k.now())
	if err != nil {
		return err
	}
	if g.Action != approval.ActionMigrate || g.Standby != standby || g.Owner != standby {
		return fmt.Errorf("grant is for %s to %s, not a migration to %s", g.Action, g.Owner, standby)
	}
	a := k.agent(standby)
	if g.Generation <= a.seen {
		return fmt.Errorf("generation %d, agent has seen %d", g.Generation, a.seen)
	}
	if k.silent != nil && !k.silent() {
		return errors.New("chain silence not proven right before the import")
	}
	a.seen, a.message = g.Generation, ""
	a.statuses = map[string]string{}
	if a.loaded == nil {
		a.loaded = map[string]bool{}
	}
	switch outcome {
	case importOK:
		for _, pk := range g.Pubkeys {
			a.statuses[pk] = "imported"
			a.loaded[pk] = true
		}
		a.phase, a.active, a.importGen, a.since = failover.SignerImported, true, g.Generation, k.now()
	case importFail:
		// The first key failed; the others loaded and were deleted again.
		for _, pk := range g.Pubkeys[1:] {
			a.statuses[pk], a.loaded[pk] = "imported", true
		}
		a.statuses[g.Pubkeys[0]] = "error"
		a.phase, a.message, a.active = failover.SignerFailed, "keystores[0]: \"error\" (invalid password)", false
	case importStuck:
		a.phase = failover.SignerImporting
	}
	k.imports = append(k.imports, g)
	return nil
}

func (k *fakeKeys) counts() (imports, fences int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.imports), len(k.fences)
}

// fakeHome scales the home validator client to zero.
type fakeHome struct {
	mu    sync.Mutex
	calls []string
	err   error
	// scale, when set, is the cluster's answer.
	scale func() error
}

func (h *fakeHome) ScaleToZero(_ context.Context, validator string) (string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, validator)
	if h.err != nil {
		return "", h.err
	}
	if h.scale != nil {
		if err := h.scale(); err != nil {
			return "", err
		}
	}
	return "home workload basement/statefulset/" + validator + " scaled to zero, no pod left", nil
}

// fakeAudit is the append-only audit log.
type fakeAudit struct {
	mu   sync.Mutex
	recs []failover.AuditRecord
}

func (a *fakeAudit) Append(_ context.Context, rec failover.AuditRecord) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recs = append(a.recs, rec)
	return nil
}

func (a *fakeAudit) records() []failover.AuditRecord {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.recs)
}

// hookStore lets a test write behind the engine's back at a precise moment.
type hookStore struct {
	failover.Store
	mu       sync.Mutex
	onPutInc func(inc *failover.Incident)
}

func (s *hookStore) PutIncident(ctx context.Context, inc *failover.Incident) error {
	s.mu.Lock()
	f := s.onPutInc
	s.mu.Unlock()
	if f != nil {
		f(inc)
	}
	return s.Store.PutIncident(ctx, inc)
}

func (s *hookStore) hook(f func(inc *failover.Incident)) { s.mu.Lock(); s.onPutInc = f; s.mu.Unlock() }

// signerFor is an approver's SSH key, the same in every run.
func signerFor(t testing.TB, name string) ssh.Signer {
	t.Helper()
	seed := sha256.Sum256([]byte("failoverd test approver " + name))
	s, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// migEnv is an engine with everything a key move needs.
type migEnv struct {
	t     testing.TB
	ctx   context.Context
	clk   *clock
	cfg   *config.Config
	store *hookStore
	cloud *sim.Cloud
	prov  *addrProvider
	keys  *fakeKeys
	home  *fakeHome
	audit *fakeAudit
	ca    *pki.Authority
	opts  failover.MigrationOptions
	reg   *prometheus.Registry
	eng   *failover.Engine
	nonce int
}

func newMigEnv(t testing.TB, tweak func(*failover.MigrationOptions)) *migEnv {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "failoverd.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ca, err := pki.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return newMigEnvWith(t, st, ca, tweak)
}

// newMigEnvWith is newMigEnv on a given store and CA.
func newMigEnvWith(t testing.TB, st failover.Store, ca *pki.Authority, tweak func(*failover.MigrationOptions)) *migEnv {
	t.Helper()
	cfg := config.Default()
	cfg.Engine.ConfirmFor = time.Minute
	cfg.Engine.KeepWarm = 10 * time.Minute
	cfg.Engine.PollInterval = 15 * time.Second
	cfg.Engine.MaxAttempts = 3
	cfg.Cloud.Sim.Zones = []string{"sim-a", "sim-b"}
	for i, keys := range [][]string{{pk1, pk2}, {pk3, pk4}} {
		cfg.Fleet = append(cfg.Fleet, config.Validator{Name: fmt.Sprintf("eth-%d", i+1), Chain: "ethereum", Network: "hoodi", Site: "basement", Pubkeys: keys})
	}
	cfg.Fleet = append(cfg.Fleet, config.Validator{Name: "bera-1", Chain: "berachain", Network: "bepolia", Site: "basement", Pubkeys: []string{pk5}})
	clk := &clock{t: start}
	c, err := sim.New(sim.Options{Now: clk.Now, BootTime: 30 * time.Second, SyncTime: 5 * time.Minute, Peers: 20})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, who := range []string{"alice", "bob", "carol"} {
		lines = append(lines, who+"@example "+strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signerFor(t, who).PublicKey()))))
	}
	signers, err := approval.ParseAllowedSigners(lines)
	if err != nil {
		t.Fatal(err)
	}
	m := &migEnv{t: t, ctx: context.Background(), clk: clk, cfg: &cfg, store: &hookStore{Store: st}, cloud: c,
		prov: &addrProvider{Cloud: c, addr: "127.0.0.1:7443"}, keys: newFakeKeys(ca.CAPEM(), clk.Now),
		home: &fakeHome{}, audit: &fakeAudit{}, ca: ca}
	m.opts = failover.MigrationOptions{
		Signers: signers, Threshold: 1, SilentEpochs: 3,
		GenesisRoots: map[string]string{"hoodi": hoodiRoot},
		Keys:         m.keys, Home: m.home, Grants: ca, Audit: m.audit,
		CertSHA256: func(inc failover.Incident) (string, error) {
			if inc.Standby == nil {
				return "", errors.New("no standby")
			}
			return certFor(inc.Standby.Name), nil
		},
		ImportTimeout: 10 * time.Minute,
	}
	if tweak != nil {
		tweak(&m.opts)
	}
	m.restart()
	return m
}

// restart is a new failoverd process on the same store, cloud and agents.
func (m *migEnv) restart() {
	m.t.Helper()
	m.reg = prometheus.NewRegistry()
	eng, err := failover.New(failover.Options{Config: m.cfg, Store: m.store, Provider: m.prov, Sync: m.prov, Now: m.clk.Now,
		Registerer: m.reg, Migration: m.opts})
	if err != nil {
		m.t.Fatal(err)
	}
	m.eng = eng
}

func (m *migEnv) observe(o failover.Observation) {
	m.t.Helper()
	if _, err := m.eng.Observe(m.ctx, []failover.Observation{o}, nil); err != nil {
		m.t.Fatal(err)
	}
}

func (m *migEnv) fire(validator, fp string, at time.Time) {
	m.t.Helper()
	m.observe(failover.Observation{Validator: validator, Site: "basement", AlertName: "ValidatorClientDown",
		Fingerprint: fp, Status: failover.AlertFiring, StartsAt: at})
}

func (m *migEnv) resolve(validator, fp string, startsAt time.Time) {
	m.t.Helper()
	m.observe(failover.Observation{Validator: validator, Site: "basement", AlertName: "ValidatorClientDown",
		Fingerprint: fp, Status: failover.AlertResolved, StartsAt: startsAt, EndsAt: m.clk.Now()})
}

func (m *migEnv) reconcile(validator string) {
	m.t.Helper()
	if _, err := m.eng.Reconcile(m.ctx, validator); err != nil {
		m.t.Fatalf("reconcile %s: %v", validator, err)
	}
}

func (m *migEnv) incident(id string) failover.Incident {
	m.t.Helper()
	inc, err := m.store.GetIncident(m.ctx, id)
	if err != nil {
		m.t.Fatalf("incident %s: %v", id, err)
	}
	return inc
}

func (m *migEnv) wantState(id string, want failover.State) failover.Incident {
	m.t.Helper()
	inc := m.incident(id)
	if inc.State != want {
		m.t.Fatalf("%s is %s (%s), want %s", id, inc.State, inc.Reason, want)
	}
	return inc
}

func (m *migEnv) owner(validator string) failover.Ownership {
	m.t.Helper()
	o, err := m.eng.Owner(m.ctx, validator)
	if err != nil {
		m.t.Fatalf("owner of %s: %v", validator, err)
	}
	return o
}

func (m *migEnv) wantOwner(validator, owner string, gen int64) failover.Ownership {
	m.t.Helper()
	o := m.owner(validator)
	if o.Current() != owner || o.Generation != gen {
		m.t.Fatalf("%s is owned by %s at generation %d, want %s at %d", validator, o.Current(), o.Generation, owner, gen)
	}
	return o
}

// toReady drives a fresh outage of validator to a ready standby.
func (m *migEnv) toReady(validator string) failover.Incident {
	m.t.Helper()
	fp := fmt.Sprintf("fp-%s-%d", validator, m.clk.Now().Unix())
	m.fire(validator, fp, m.clk.Now())
	m.reconcile(validator)
	m.clk.Advance(time.Minute)
	m.reconcile(validator)
	m.clk.Advance(6 * time.Minute)
	m.reconcile(validator)
	v, err := m.store.GetValidator(m.ctx, validator)
	if err != nil {
		m.t.Fatal(err)
	}
	inc := m.wantState(v.OpenIncident, failover.StateReady)
	if inc.Standby == nil || inc.Standby.Name == "" {
		m.t.Fatalf("ready incident %s has no standby", inc.ID)
	}
	return inc
}

func (m *migEnv) nextNonce() string {
	m.nonce++
	return fmt.Sprintf("%032x", m.nonce)
}

// newApproval is alice's approval for inc, as approve-migration builds it.
func (m *migEnv) newApproval(inc failover.Incident, action string, mutate func(*approval.Approval)) approval.Approval {
	now := m.clk.Now().UTC().Truncate(time.Second)
	a := approval.Approval{Incident: inc.ID, Standby: inc.Standby.Name, StandbyCertSHA256: certFor(inc.Standby.Name),
		Pubkeys: []string{pk1, pk2}, Action: action, Issued: now, Expires: now.Add(approval.DefaultValidity),
		Nonce: m.nextNonce(), Approver: "alice@example"}
	if mutate != nil {
		mutate(&a)
	}
	return a
}

// request signs a by every one of by and submits it for incident id.
func (m *migEnv) request(id string, a approval.Approval, f failover.Fencing, by ...string) failover.ApprovalRequest {
	m.t.Helper()
	canon, err := a.Canonical()
	if err != nil {
		m.t.Fatal(err)
	}
	req := failover.ApprovalRequest{Incident: id, Approval: string(canon), Fencing: f, From: fromAddr}
	for _, who := range by {
		sig, err := approval.Sign(a, signerFor(m.t, who))
		if err != nil {
			m.t.Fatal(err)
		}
		req.Signatures = append(req.Signatures, string(sig))
	}
	return req
}

func kmFenced(statuses map[string]string) failover.Fencing {
	return failover.Fencing{Method: failover.FenceKeymanager, KeyStatuses: statuses}
}

func allDeleted() map[string]string { return map[string]string{pk1: "deleted", pk2: "deleted"} }

// migrateReq is a valid migration request: alice approves, home's
// Keymanager deleted every key.
func (m *migEnv) migrateReq(inc failover.Incident) failover.ApprovalRequest {
	return m.request(inc.ID, m.newApproval(inc, approval.ActionMigrate, nil), kmFenced(allDeleted()), "alice")
}

func (m *migEnv) failbackReq(inc failover.Incident) failover.ApprovalRequest {
	return m.request(inc.ID, m.newApproval(inc, approval.ActionFailback, nil), failover.Fencing{}, "alice")
}

func (m *migEnv) approvals(action, outcome string) float64 {
	return counterValue(m.t, m.reg, "failoverd_approvals_total", map[string]string{"action": action, "outcome": outcome})
}

func (m *migEnv) moves(action, outcome string) float64 {
	return counterValue(m.t, m.reg, "failoverd_key_moves_total", map[string]string{"action": action, "outcome": outcome})
}

func counterValue(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
	next:
		for _, mt := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range mt.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue next
				}
			}
			sum += mt.GetCounter().GetValue()
		}
		return sum
	}
	return 0
}

// codeOf is a refusal's code, "" for anything else.
func codeOf(err error) string {
	var re *failover.RefusedError
	if errors.As(err, &re) {
		return re.Code
	}
	var ae *approval.RefusalError
	if errors.As(err, &ae) {
		return string(ae.Code)
	}
	return ""
}

// toMigrated approves a migration of a ready incident, delivers the keys
// and reconciles until the standby signs.
func (m *migEnv) toMigrated(validator string) (failover.Incident, failover.ApprovalReply) {
	m.t.Helper()
	inc := m.toReady(validator)
	reply, err := m.eng.Approve(m.ctx, m.migrateReq(inc))
	if err != nil {
		m.t.Fatalf("approve: %v", err)
	}
	if err := m.keys.Import(inc.Standby.Name, reply.Grant, importOK); err != nil {
		m.t.Fatalf("import: %v", err)
	}
	m.reconcile(validator)
	return m.wantState(inc.ID, failover.StateMigrated), reply
}

// wantRefused checks that a refused approval left everything where it was.
func (m *migEnv) wantRefused(inc failover.Incident, reply failover.ApprovalReply, err error, code, msg string) {
	m.t.Helper()
	if err == nil {
		m.t.Fatalf("accepted; want refused (%s)", code)
	}
	if got := codeOf(err); got != code {
		m.t.Fatalf("refused with code %q (%v), want %q", got, err, code)
	}
	if !strings.Contains(err.Error(), msg) {
		m.t.Fatalf("refusal %q does not say %q", err, msg)
	}
	if reply.Grant.Payload != nil || reply.Grant.Signature != nil || reply.Incident.ID != "" {
		m.t.Fatalf("a refused approval returned a grant or an incident: %+v", reply)
	}
	m.wantState(inc.ID, failover.StateReady)
	m.wantOwner(inc.Validator, failover.OwnerHome, 0)
	v, err2 := m.store.GetValidator(m.ctx, inc.Validator)
	if err2 != nil {
		m.t.Fatal(err2)
	}
	if v.Ownership.Generation != 0 || v.Ownership.Owner != "" && v.Ownership.Owner != failover.OwnerHome {
		m.t.Fatalf("stored ownership changed: %+v", v.Ownership)
	}
	recs := m.audit.records()
	if len(recs) == 0 {
		m.t.Fatal("no audit line for a refused approval")
	}
	last := recs[len(recs)-1]
	if last.Outcome != "refused" || last.Incident != inc.ID || last.From != fromAddr || !strings.Contains(last.Reason, msg) {
		m.t.Fatalf("audit line %+v", last)
	}
	// A failback approval sent for a ready incident counts as a failback.
	if got := counterValue(m.t, m.reg, "failoverd_approvals_total", map[string]string{"outcome": code}); got != 1 {
		m.t.Fatalf("failoverd_approvals_total{outcome=%q} = %v, want 1", code, got)
	}
	if got := counterValue(m.t, m.reg, "failoverd_approvals_total", map[string]string{"outcome": "accepted"}); got != 0 {
		m.t.Fatalf("accepted counted %v", got)
	}
	if imports, fences := m.keys.counts(); imports != 0 || fences != 0 {
		m.t.Fatalf("%d imports and %d fences after a refusal", imports, fences)
	}
}

func TestApprovalRefusals(t *testing.T) {
	type tc struct {
		name string
		code string
		msg  string
		opts func(*failover.MigrationOptions)
		// before runs on the ready incident before the request is made.
		before func(m *migEnv, inc failover.Incident)
		req    func(m *migEnv, inc failover.Incident) failover.ApprovalRequest
	}
	migrate := func(mutate func(*approval.Approval), f failover.Fencing, by ...string) func(*migEnv, failover.Incident) failover.ApprovalRequest {
		return func(m *migEnv, inc failover.Incident) failover.ApprovalRequest {
			return m.request(inc.ID, m.newApproval(inc, approval.ActionMigrate, mutate), f, by...)
		}
	}
	valid := migrate(nil, kmFenced(allDeleted()), "alice")
	chain := func(f func(pubkeys []string) beacon.Report) func(*migEnv, failover.Incident) {
		return func(m *migEnv, _ failover.Incident) {
			m.keys.chain = func(_ cloud.Standby, pubkeys []string, _ int) (beacon.Report, error) { return f(pubkeys), nil }
		}
	}
	cases := []tc{
		{name: "expired", code: "expired", msg: "expired", req: migrate(func(a *approval.Approval) {
			a.Issued, a.Expires = a.Issued.Add(-20*time.Minute), a.Issued.Add(-5*time.Minute)
		}, kmFenced(allDeleted()), "alice")},
		{name: "wrong incident", code: "wrong-incident", msg: "eth-1-7", req: migrate(func(a *approval.Approval) { a.Incident = "eth-1-7" }, kmFenced(allDeleted()), "alice")},
		{name: "wrong standby", code: "wrong-standby", msg: "fo-elsewhere", req: migrate(func(a *approval.Approval) { a.Standby = "fo-elsewhere" }, kmFenced(allDeleted()), "alice")},
		{name: "wrong standby certificate", code: "wrong-standby-cert", msg: "was it replaced", req: migrate(func(a *approval.Approval) {
			a.StandbyCertSHA256 = certFor("an impostor")
		}, kmFenced(allDeleted()), "alice")},
		{name: "unknown signer", code: "unknown-signer", msg: "not an allowed approver", req: migrate(func(a *approval.Approval) { a.Approver = "mallory@example" }, kmFenced(allDeleted()), "mallory")},
		{name: "signature over other bytes", code: "bad-signature", msg: "does not verify", req: func(m *migEnv, inc failover.Incident) failover.ApprovalRequest {
			r := valid(m, inc)
			other := m.request(inc.ID, m.newApproval(inc, approval.ActionMigrate, nil), kmFenced(allDeleted()), "alice")
			r.Signatures = other.Signatures
			return r
		}},
		{name: "no signature", code: "below-threshold", msg: "no signatures", req: migrate(nil, kmFenced(allDeleted()))},
		{name: "below threshold", code: "below-threshold", msg: "2 of", opts: func(o *failover.MigrationOptions) { o.Threshold = 2 }, req: valid},
		{name: "below threshold (one person signing twice)", code: "below-threshold", msg: "2 of", opts: func(o *failover.MigrationOptions) { o.Threshold = 2 },
			req: migrate(nil, kmFenced(allDeleted()), "alice", "alice")},
		{name: "a failback approval for a ready incident", code: "wrong-state", msg: "only a migrated incident", req: func(m *migEnv, inc failover.Incident) failover.ApprovalRequest {
			return m.failbackReq(inc)
		}},
		{name: "no approvers configured", code: "not-configured", msg: "no approvers", opts: func(o *failover.MigrationOptions) { o.Signers = nil }, req: valid},
		{name: "home fencing not given", code: "home-not-fenced", msg: "unreachable is not stopped", req: migrate(nil, failover.Fencing{}, "alice")},
		{name: "home DELETE answered error", code: "home-not-fenced", msg: pk2 + ": error", req: migrate(nil, kmFenced(map[string]string{pk1: "deleted", pk2: "error"}), "alice")},
		{name: "home DELETE status missing for a key", code: "home-not-fenced", msg: pk2 + ": no DELETE status", req: migrate(nil, kmFenced(map[string]string{pk1: "not_active"}), "alice")},
		{name: "home DELETE not_found", code: "home-not-fenced", msg: pk1 + ": not_found", req: migrate(nil, kmFenced(map[string]string{pk1: "not_found", pk2: "deleted"}), "alice")},
		{name: "power-off confirmed by a non-approver", code: "home-not-fenced", msg: "must name one of the approvers", req: migrate(nil,
			failover.Fencing{Method: failover.FencePoweredOff, ConfirmedBy: "bob@example"}, "alice")},
		{name: "power-off confirmed by nobody", code: "home-not-fenced", msg: "must name one of the approvers", req: migrate(nil,
			failover.Fencing{Method: failover.FencePoweredOff}, "alice")},
		{name: "scale-to-zero without cluster access", code: "home-not-fenced", msg: "cannot scale", opts: func(o *failover.MigrationOptions) { o.Home = nil },
			req: migrate(nil, failover.Fencing{Method: failover.FenceScale}, "alice")},
		{name: "scale-to-zero failing", code: "home-not-fenced", msg: "2 pods still terminating", before: func(m *migEnv, _ failover.Incident) {
			m.home.err = errors.New("2 pods still terminating")
		}, req: migrate(nil, failover.Fencing{Method: failover.FenceScale}, "alice")},
		{name: "liveness seen in the newest finished epoch", code: "chain-not-silent", msg: "live in epoch 999", before: chain(func(pks []string) beacon.Report {
			r := silentReport(pks)
			r.SilentEpochs, r.NotSilent = nil, "validator 2 is live in epoch 999"
			return r
		}), req: valid},
		{name: "liveness seen in the oldest of the 3 epochs", code: "chain-not-silent", msg: "live in epoch 997", before: chain(func(pks []string) beacon.Report {
			r := silentReport(pks)
			r.SilentEpochs, r.NotSilent = nil, "validator 1 is live in epoch 997"
			return r
		}), req: valid},
		{name: "silence not proven (no epochs)", code: "chain-not-silent", msg: "silence not proven", before: chain(func(pks []string) beacon.Report {
			r := silentReport(pks)
			r.SilentEpochs = nil
			r.NotSilent = "silence not proven"
			return r
		}), req: valid},
		{name: "standby's beacon node on another network", code: "network-mismatch", msg: otherRoot, before: chain(func(pks []string) beacon.Report {
			r := silentReport(pks)
			r.GenesisValidatorsRoot = otherRoot
			return r
		}), req: valid},
		{name: "validator slashed", code: "validator-unusable", msg: "slashed", before: chain(func(pks []string) beacon.Report {
			r := silentReport(pks)
			r.Unusable = "validator 2 (" + pk2 + ") is slashed (active_slashed)"
			return r
		}), req: valid},
		{name: "validator exited", code: "validator-unusable", msg: "exited", before: chain(func(pks []string) beacon.Report {
			r := silentReport(pks)
			r.Unusable = "validator 1 is exited (exited_unslashed)"
			return r
		}), req: valid},
		{name: "standby's beacon node unreachable", code: "cannot-verify", msg: "connection refused", before: func(m *migEnv, _ failover.Incident) {
			m.keys.chain = func(cloud.Standby, []string, int) (beacon.Report, error) {
				return beacon.Report{}, errors.New("dial tcp 127.0.0.1:7443: connection refused")
			}
		}, req: valid},
		{name: "standby not ready", code: "standby-not-ready", msg: "not ready", before: func(m *migEnv, _ failover.Incident) {
			m.prov.mu.Lock()
			m.prov.sync = func() (cloud.SyncStatus, error) {
				return cloud.SyncStatus{ExecutionSynced: true, ConsensusSynced: true, Optimistic: true, Health: 206, Peers: 20, ExecutionPeers: 20}, nil
			}
			m.prov.mu.Unlock()
		}, req: valid},
		{name: "standby's sync status unreadable", code: "standby-not-ready", msg: "cannot read the standby's sync status", before: func(m *migEnv, _ failover.Incident) {
			m.prov.mu.Lock()
			m.prov.sync = func() (cloud.SyncStatus, error) { return cloud.SyncStatus{}, cloud.ErrTransient }
			m.prov.mu.Unlock()
		}, req: valid},
		{name: "no agent address", code: "no-agent", msg: "no agent address", before: func(m *migEnv, _ failover.Incident) {
			m.prov.mu.Lock()
			m.prov.addr = ""
			m.prov.mu.Unlock()
		}, req: valid},
		{name: "no agent client", code: "no-agent", msg: "no standby agent client", opts: func(o *failover.MigrationOptions) { o.Keys = nil }, req: valid},
		// Keys belong to one validator: eth-1 is pk1 and pk2, eth-2 is pk3 and pk4.
		{name: "another validator's keys", code: "wrong-keys", msg: "not this validator's: " + pk3 + ", " + pk4 + "; missing: " + pk1 + ", " + pk2,
			req: migrate(func(a *approval.Approval) { a.Pubkeys = []string{pk3, pk4} }, kmFenced(map[string]string{pk3: "deleted", pk4: "deleted"}), "alice")},
		{name: "one of the validator's keys missing", code: "wrong-keys", msg: "missing: " + pk2,
			req: migrate(func(a *approval.Approval) { a.Pubkeys = []string{pk1} }, kmFenced(map[string]string{pk1: "deleted"}), "alice")},
		{name: "a key of another validator added", code: "wrong-keys", msg: "not this validator's: " + pk3,
			req: migrate(func(a *approval.Approval) { a.Pubkeys = []string{pk1, pk2, pk3} }, kmFenced(allDeleted()), "alice")},
		{name: "no keys declared for the validator", code: "not-configured", msg: "declares no keys (fleet[].pubkeys)", before: func(m *migEnv, _ failover.Incident) {
			m.cfg.Fleet[0].Pubkeys = nil
		}, req: valid},
		{name: "a key another validator's incident is importing", code: "wrong-keys", msg: "being moved by incident eth-2-9 of validator eth-2", before: func(m *migEnv, _ failover.Incident) {
			// A config edit moved pk2 from eth-2 to eth-1 while eth-2's
			// accepted move has not swapped its signing right yet.
			other := failover.Incident{ID: "eth-2-9", Validator: "eth-2", State: failover.StateMigrating, CreatedAt: m.clk.Now(),
				Migrations: []failover.Migration{{Action: approval.ActionMigrate, From: failover.OwnerHome, To: "fo-other", Generation: 1, Pubkeys: []string{pk2, pk3}}}}
			if err := m.store.PutIncident(m.ctx, &other); err != nil {
				m.t.Fatal(err)
			}
		}, req: valid},
		{name: "a key another validator's standby holds", code: "wrong-keys", msg: "signed for by standby fo-other of validator eth-2", before: func(m *migEnv, _ failover.Incident) {
			// A config edit moved pk2 from eth-2 to eth-1 while eth-2's
			// standby signs with it: the store still knows who holds it.
			v, err := m.store.GetValidator(m.ctx, "eth-2")
			if errors.Is(err, failover.ErrNotFound) {
				v = failover.ValidatorRecord{Name: "eth-2"}
			} else if err != nil {
				m.t.Fatal(err)
			}
			v.Ownership = failover.Ownership{Owner: "fo-other", Generation: 1, Incident: "eth-2-1", Pubkeys: []string{pk2, pk3}}
			if err := m.store.PutValidator(m.ctx, &v); err != nil {
				m.t.Fatal(err)
			}
		}, req: valid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMigEnv(t, c.opts)
			inc := m.toReady("eth-1")
			if c.before != nil {
				c.before(m, inc)
			}
			reply, err := m.eng.Approve(m.ctx, c.req(m, inc))
			m.wantRefused(inc, reply, err, c.code, c.msg)
		})
	}
}

// A second beacon node is asked too; it must agree on the network and show
// the keys silent. It is a real client against a spec-following server.
func TestApprovalAsksEveryBeaconNode(t *testing.T) {
	newNode := func(t *testing.T) (*beacontest.Server, *beacon.Client) {
		bn := beacontest.New(t)
		bn.SetGenesis(beacontest.MainnetGenesisTime, hoodiRoot, "0x10000910")
		bn.AddValidator(beacontest.Validator{Index: 1, Pubkey: pk1})
		bn.AddValidator(beacontest.Validator{Index: 2, Pubkey: pk2})
		c, err := beacon.New(bn.URL)
		if err != nil {
			t.Fatal(err)
		}
		return bn, c
	}
	epochAt := func(at time.Time) uint64 {
		return uint64(at.Unix()-beacontest.MainnetGenesisTime) / (32 * 12)
	}
	t.Run("agrees and silent", func(t *testing.T) {
		bn, c := newNode(t)
		m := newMigEnv(t, func(o *failover.MigrationOptions) { o.Beacons = []*beacon.Client{c} })
		inc := m.toReady("eth-1")
		bn.SetCurrentEpoch(epochAt(m.clk.Now()))
		reply, err := m.eng.Approve(m.ctx, m.migrateReq(inc))
		if err != nil {
			t.Fatalf("refused: %v", err)
		}
		cur, _ := reply.Incident.CurrentMigration()
		if !strings.Contains(cur.Silence, "2 beacon nodes") {
			t.Fatalf("silence evidence %q does not count both beacon nodes", cur.Silence)
		}
		if got := bn.LivenessRequests(); len(got) != 3 {
			t.Fatalf("liveness asked for epochs %v, want the 3 last finished", got)
		}
	})
	t.Run("another network", func(t *testing.T) {
		bn, c := newNode(t)
		bn.SetGenesis(beacontest.MainnetGenesisTime, otherRoot, "0x00000000")
		// The network's root is not configured: the nodes must agree.
		m := newMigEnv(t, func(o *failover.MigrationOptions) { o.Beacons = []*beacon.Client{c}; o.GenesisRoots = nil })
		inc := m.toReady("eth-1")
		bn.SetCurrentEpoch(epochAt(m.clk.Now()))
		reply, err := m.eng.Approve(m.ctx, m.migrateReq(inc))
		m.wantRefused(inc, reply, err, "network-mismatch", otherRoot)
	})
	t.Run("live in the second oldest epoch", func(t *testing.T) {
		bn, c := newNode(t)
		m := newMigEnv(t, func(o *failover.MigrationOptions) { o.Beacons = []*beacon.Client{c} })
		inc := m.toReady("eth-1")
		e := epochAt(m.clk.Now())
		bn.SetCurrentEpoch(e)
		bn.SetLive(e-2, 2, true)
		reply, err := m.eng.Approve(m.ctx, m.migrateReq(inc))
		m.wantRefused(inc, reply, err, "chain-not-silent", fmt.Sprint(e-2))
	})
	t.Run("unreachable", func(t *testing.T) {
		bn, c := newNode(t)
		bn.Fail(beacontest.Liveness, 503)
		m := newMigEnv(t, func(o *failover.MigrationOptions) { o.Beacons = []*beacon.Client{c} })
		inc := m.toReady("eth-1")
		bn.SetCurrentEpoch(epochAt(m.clk.Now()))
		reply, err := m.eng.Approve(m.ctx, m.migrateReq(inc))
		if err == nil || codeOf(err) == "" {
			t.Fatalf("a failing beacon node let the approval through: %v", err)
		}
		m.wantRefused(inc, reply, err, codeOf(err), "503")
	})
}

// An approval is good once: a refused precondition spends it, and it cannot
// be sent again once the precondition holds; an accepted one cannot move
// the keys a second time.
func TestApprovalIsSingleUse(t *testing.T) {
	t.Run("refused, then re-sent with the fencing fixed", func(t *testing.T) {
		m := newMigEnv(t, nil)
		inc := m.toReady("eth-1")
		a := m.newApproval(inc, approval.ActionMigrate, nil)
		reply, err := m.eng.Approve(m.ctx, m.request(inc.ID, a, failover.Fencing{}, "alice"))
		if codeOf(err) != "home-not-fenced" || reply.Grant.Payload != nil {
			t.Fatalf("first submission: %v", err)
		}
		reply, err = m.eng.Approve(m.ctx, m.request(inc.ID, a, kmFenced(allDeleted()), "alice"))
		m.wantRefused(inc, reply, err, "replayed", "already used")
		if got := m.approvals(approval.ActionMigrate, "home-not-fenced"); got != 1 {
			t.Fatalf("home-not-fenced counted %v", got)
		}
		// The same approval on a restarted failoverd: the nonce is in the store.
		m.restart()
		reply, err = m.eng.Approve(m.ctx, m.request(inc.ID, a, kmFenced(allDeleted()), "alice"))
		if codeOf(err) != "replayed" || reply.Grant.Payload != nil {
			t.Fatalf("after a restart: %v", err)
		}
		// A new approval for the same incident goes through.
		if _, err := m.eng.Approve(m.ctx, m.migrateReq(inc)); err != nil {
			t.Fatalf("a fresh approval: %v", err)
		}
	})
	t.Run("accepted, then sent again", func(t *testing.T) {
		m := newMigEnv(t, nil)
		inc := m.toReady("eth-1")
		req := m.migrateReq(inc)
		first, err := m.eng.Approve(m.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		second, err := m.eng.Approve(m.ctx, req)
		if err == nil || second.Grant.Payload != nil {
			t.Fatalf("the same approval was accepted twice: %+v", second)
		}
		m.wantOwner("eth-1", inc.Standby.Name, 1)
		if got := m.approvals(approval.ActionMigrate, "accepted"); got != 1 {
			t.Fatalf("accepted counted %v", got)
		}
		// Its grant still imports once, and only once.
		if err := m.keys.Import(inc.Standby.Name, first.Grant, importOK); err != nil {
			t.Fatal(err)
		}
		if err := m.keys.Import(inc.Standby.Name, first.Grant, importOK); err == nil {
			t.Fatal("the agent took the same grant twice")
		}
	})
}

// Another writer moves the validator's signing right between the approval's
// verification and the swap: nothing is granted, the incident stops.
func TestApprovalOwnershipChangedMeanwhile(t *testing.T) {
	m := newMigEnv(t, nil)
	inc := m.toReady("eth-1")
	var once sync.Once
	m.store.hook(func(in *failover.Incident) {
		if in.State != failover.StateMigrating {
			return
		}
		once.Do(func() {
			v, err := m.store.Store.GetValidator(m.ctx, "eth-1")
			if err != nil {
				t.Error(err)
				return
			}
			v.Ownership = failover.Ownership{Owner: "fo-intruder", Generation: 1, Incident: "eth-1-0"}
			if err := m.store.Store.PutValidator(m.ctx, &v); err != nil {
				t.Error(err)
			}
		})
	})
	reply, err := m.eng.Approve(m.ctx, m.migrateReq(inc))
	m.store.hook(nil)
	if err == nil || reply.Grant.Payload != nil {
		t.Fatalf("approved although the ownership changed: %+v %v", reply, err)
	}
	if codeOf(err) != failover.RefuseOwner || !strings.Contains(err.Error(), "changed meanwhile") {
		t.Fatalf("refusal %v", err)
	}
	m.wantOwner("eth-1", "fo-intruder", 1)
	recs := m.audit.records()
	if len(recs) == 0 || recs[len(recs)-1].Outcome != "refused" || !strings.Contains(recs[len(recs)-1].Reason, "changed meanwhile") {
		t.Fatalf("audit %+v", recs)
	}
	if got := m.approvals(approval.ActionMigrate, failover.RefuseOwner); got != 1 {
		t.Fatalf("failoverd_approvals_total{outcome=ownership} = %v", got)
	}
	if got := m.approvals(approval.ActionMigrate, "accepted"); got != 0 {
		t.Fatalf("accepted counted %v", got)
	}
	// The incident stops where it is; nothing is retried.
	m.reconcile("eth-1")
	got := m.wantState(inc.ID, failover.StateFailed)
	if !strings.Contains(got.Reason, "changed meanwhile") {
		t.Fatalf("reason %q", got.Reason)
	}
	m.wantOwner("eth-1", "fo-intruder", 1)
	p, err := m.eng.Plan(m.ctx, inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if p.Grant != nil {
		t.Fatal("the plan hands out a grant for a move that never happened")
	}
	if imports, _ := m.keys.counts(); imports != 0 {
		t.Fatal("keys imported")
	}
}

// The reconciler writes a ready incident at every poll; such a write
// landing while an approval checks its preconditions must not turn the
// approval into a replay of itself.
func TestApprovalSurvivesConcurrentIncidentWrite(t *testing.T) {
	concurrentWrite := func(m *migEnv, when func(*failover.Incident) bool) {
		var once sync.Once
		m.store.hook(func(in *failover.Incident) {
			if !when(in) {
				return
			}
			once.Do(func() {
				cur, err := m.store.Store.GetIncident(m.ctx, in.ID)
				if err != nil {
					m.t.Error(err)
					return
				}
				cur.Reason = "standby is in sync (a poll by another worker)"
				if err := m.store.Store.PutIncident(m.ctx, &cur); err != nil {
					m.t.Error(err)
				}
			})
		})
	}
	t.Run("accepted", func(t *testing.T) {
		m := newMigEnv(t, nil)
		inc := m.toReady("eth-1")
		concurrentWrite(m, func(in *failover.Incident) bool { return in.State == failover.StateMigrating })
		reply, err := m.eng.Approve(m.ctx, m.migrateReq(inc))
		if err != nil {
			t.Fatalf("a concurrent poll made failoverd refuse a good approval: %v", err)
		}
		if reply.Incident.State != failover.StateMigrating {
			t.Fatalf("state %s", reply.Incident.State)
		}
		m.wantOwner("eth-1", inc.Standby.Name, 1)
		if got := m.approvals(approval.ActionMigrate, "accepted"); got != 1 {
			t.Fatalf("accepted counted %v", got)
		}
	})
	t.Run("refused for its own reason", func(t *testing.T) {
		m := newMigEnv(t, nil)
		inc := m.toReady("eth-1")
		concurrentWrite(m, func(in *failover.Incident) bool {
			n := len(in.History)
			return n > 0 && strings.HasPrefix(in.History[n-1].Cause, "approval refused")
		})
		reply, err := m.eng.Approve(m.ctx, m.request(inc.ID, m.newApproval(inc, approval.ActionMigrate, nil), failover.Fencing{}, "alice"))
		m.store.hook(nil)
		m.wantRefused(inc, reply, err, "home-not-fenced", "unreachable is not stopped")
	})
}

func TestMigrationHappyPath(t *testing.T) {
	m := newMigEnv(t, nil)
	inc := m.toReady("eth-1")
	sb := inc.Standby.Name
	plan, err := m.eng.Plan(m.ctx, inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Action != approval.ActionMigrate || plan.Standby != sb || plan.StandbyCertSHA256 != certFor(sb) || plan.Threshold != 1 ||
		plan.Grant != nil || plan.Agent.URL != "https://127.0.0.1:7443" || !slices.Contains(plan.Principals, "alice@example") {
		t.Fatalf("plan before the approval %+v", plan)
	}
	req := m.migrateReq(inc)
	reply, err := m.eng.Approve(m.ctx, req)
	if err != nil {
		t.Fatalf("refused: %v", err)
	}
	if reply.Incident.State != failover.StateMigrating {
		t.Fatalf("reply incident %s", reply.Incident.State)
	}
	m.wantState(inc.ID, failover.StateMigrating)
	own := m.wantOwner("eth-1", sb, 1)
	if own.Incident != inc.ID || !slices.Equal(own.ChangedBy, []string{"alice@example"}) || !own.ChangedAt.Equal(m.clk.Now()) {
		t.Fatalf("ownership record %+v", own)
	}
	g, err := grant.Verify(reply.Grant, m.ca.CAPEM(), m.clk.Now())
	if err != nil {
		t.Fatalf("the grant does not verify against the CA: %v", err)
	}
	sum := sha256.Sum256([]byte(req.Approval))
	if g.Validator != "eth-1" || g.Incident != inc.ID || g.Standby != sb || g.Owner != sb || g.Action != approval.ActionMigrate ||
		g.Generation != 1 || !g.Covers([]string{pk1, pk2}) || g.ApprovalSHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("grant %+v", g)
	}
	if reply.Agent.URL != "https://127.0.0.1:7443" || reply.Agent.ServerName != sb || reply.Agent.CAPEM != string(m.ca.CAPEM()) {
		t.Fatalf("agent endpoint %+v", reply.Agent)
	}
	if reply.Chain.GenesisValidatorsRoot != hoodiRoot || reply.Chain.Epoch != 1000 {
		t.Fatalf("chain report %+v", reply.Chain)
	}
	mig, ok := reply.Incident.CurrentMigration()
	if !ok || mig.From != failover.OwnerHome || mig.To != sb || mig.Generation != 1 || len(mig.Approvers) != 1 ||
		mig.Approvers[0].Principal != "alice@example" || mig.Approvers[0].From != fromAddr || !strings.Contains(mig.Fencing, "Keymanager") ||
		!strings.Contains(mig.Silence, "997") {
		t.Fatalf("migration record %+v", mig)
	}
	recs := m.audit.records()
	if len(recs) != 1 || recs[0].Outcome != "accepted" || recs[0].Generation != 1 || recs[0].From != fromAddr ||
		!slices.Equal(recs[0].Approvers, []string{"alice@example"}) || recs[0].Action != approval.ActionMigrate {
		t.Fatalf("audit %+v", recs)
	}
	if m.approvals(approval.ActionMigrate, "accepted") != 1 {
		t.Fatal("accepted not counted")
	}
	// A CLI that lost the reply gets the same grant from the plan.
	plan, err = m.eng.Plan(m.ctx, inc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if plan.Grant == nil || string(plan.Grant.Payload) != string(reply.Grant.Payload) || plan.Ownership.Current() != sb {
		t.Fatalf("plan while migrating %+v", plan)
	}
	// Nothing delivered yet: it waits, and says for what.
	m.reconcile("eth-1")
	if got := m.wantState(inc.ID, failover.StateMigrating); !strings.Contains(got.Reason, "waiting for the approver's CLI") {
		t.Fatalf("reason %q", got.Reason)
	}
	// Teardown is refused while keys are moving.
	if _, err := m.eng.Teardown(m.ctx, inc.ID, "ops"); err == nil {
		t.Fatal("teardown of a migrating incident accepted")
	}
	if err := m.keys.Import(sb, reply.Grant, importOK); err != nil {
		t.Fatal(err)
	}
	m.reconcile("eth-1")
	done := m.wantState(inc.ID, failover.StateMigrated)
	mig, _ = done.CurrentMigration()
	if mig.DoneAt == nil || mig.KeyStatuses[pk1] != "imported" || mig.KeyStatuses[pk2] != "imported" {
		t.Fatalf("migration record after import %+v", mig)
	}
	if !strings.Contains(done.Reason, "failoverd failback "+inc.ID) {
		t.Fatalf("migrated reason %q does not say how to fail back", done.Reason)
	}
	if m.moves(approval.ActionMigrate, "done") != 1 {
		t.Fatal("move not counted")
	}

	// Home comes back: its alert resolves. Nothing changes by itself.
	v, _ := m.store.GetValidator(m.ctx, "eth-1")
	for fp, a := range v.Alerts {
		m.resolve("eth-1", fp, a.StartsAt)
	}
	for range 3 {
		m.clk.Advance(time.Hour)
		m.reconcile("eth-1")
	}
	m.wantState(inc.ID, failover.StateMigrated)
	m.wantOwner("eth-1", sb, 1)
	if m.cloud.Live() != 1 {
		t.Fatal("the signing standby was deleted")
	}
	_, err = m.eng.Teardown(m.ctx, inc.ID, "ops")
	if codeOf(err) != failover.RefuseOwner || !strings.Contains(err.Error(), "failoverd failback "+inc.ID) {
		t.Fatalf("teardown of a migrated incident: %v", err)
	}
	m.wantState(inc.ID, failover.StateMigrated)
	// A second migration approval moves nothing.
	reply2, err := m.eng.Approve(m.ctx, m.migrateReq(done))
	if codeOf(err) != failover.RefuseState || reply2.Grant.Payload != nil {
		t.Fatalf("a migration of a migrated incident: %v", err)
	}
	m.wantOwner("eth-1", sb, 1)
	plan, err = m.eng.Plan(m.ctx, inc.ID)
	if err != nil || plan.Action != approval.ActionFailback || plan.Grant != nil {
		t.Fatalf("plan when migrated %+v %v", plan, err)
	}
	// A restarted failoverd finds it as it was.
	m.restart()
	m.reconcile("eth-1")
	m.wantState(inc.ID, failover.StateMigrated)
	m.wantOwner("eth-1", sb, 1)
}

// The other fencing methods are accepted and recorded.
func TestMigrationFencingMethods(t *testing.T) {
	cases := []struct {
		name string
		f    failover.Fencing
		want string
	}{
		{"keymanager, keys not active", kmFenced(map[string]string{strings.ToUpper(pk1[:4]) + pk1[4:]: "not_active", pk2: "deleted"}), "Keymanager"},
		{"scale to zero", failover.Fencing{Method: failover.FenceScale}, "scaled to zero"},
		{"powered off, confirmed by the approver", failover.Fencing{Method: failover.FencePoweredOff, ConfirmedBy: "alice@example"}, "powered off by alice@example"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMigEnv(t, nil)
			inc := m.toReady("eth-1")
			reply, err := m.eng.Approve(m.ctx, m.request(inc.ID, m.newApproval(inc, approval.ActionMigrate, nil), c.f, "alice"))
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			mig, _ := reply.Incident.CurrentMigration()
			if !strings.Contains(mig.Fencing, c.want) {
				t.Fatalf("fencing evidence %q, want %q", mig.Fencing, c.want)
			}
			if c.f.Method == failover.FenceScale && !slices.Equal(m.home.calls, []string{"eth-1"}) {
				t.Fatalf("scale calls %v", m.home.calls)
			}
		})
	}
}

// Threshold 2: two people sign the same approval.
func TestMigrationTwoApprovers(t *testing.T) {
	m := newMigEnv(t, func(o *failover.MigrationOptions) { o.Threshold = 2 })
	inc := m.toReady("eth-1")
	reply, err := m.eng.Approve(m.ctx, m.request(inc.ID, m.newApproval(inc, approval.ActionMigrate, nil), kmFenced(allDeleted()), "alice", "carol"))
	if err != nil {
		t.Fatal(err)
	}
	own := m.wantOwner("eth-1", inc.Standby.Name, 1)
	if !slices.Equal(own.ChangedBy, []string{"alice@example", "carol@example"}) {
		t.Fatalf("changed by %v", own.ChangedBy)
	}
	if mig, _ := reply.Incident.CurrentMigration(); len(mig.Approvers) != 2 {
		t.Fatalf("approvers %+v", mig.Approvers)
	}
}

// Anything but a clean import stops the incident where it is; the signing
// right stays with the standby (it may hold keys) until a person fails back.
func TestMigrationStops(t *testing.T) {
	cases := []struct {
		name string
		act  func(m *migEnv, sb string, reply failover.ApprovalReply)
		want string
	}{
		{"import failed", func(m *migEnv, sb string, reply failover.ApprovalReply) {
			if err := m.keys.Import(sb, reply.Grant, importFail); err != nil {
				m.t.Fatal(err)
			}
		}, "invalid password"},
		{"one key not imported", func(m *migEnv, sb string, _ failover.ApprovalReply) {
			m.keys.setReport(sb, failover.SignerState{Generation: 1, Phase: failover.SignerImported,
				KeyStatuses: map[string]string{pk1: "imported", pk2: "duplicate"}})
		}, `key ` + pk2 + `: import status "duplicate"`},
		{"one key missing from the report", func(m *migEnv, sb string, _ failover.ApprovalReply) {
			m.keys.setReport(sb, failover.SignerState{Generation: 1, Phase: failover.SignerImported,
				KeyStatuses: map[string]string{pk1: "imported"}})
		}, `key ` + pk2 + `: import status ""`},
		{"import timeout", func(m *migEnv, _ string, _ failover.ApprovalReply) {
			m.clk.Advance(10*time.Minute + time.Second)
		}, "no import reported within 10m0s"},
		{"stuck importing past the timeout", func(m *migEnv, sb string, reply failover.ApprovalReply) {
			if err := m.keys.Import(sb, reply.Grant, importStuck); err != nil {
				m.t.Fatal(err)
			}
			m.clk.Advance(11 * time.Minute)
		}, "no import reported within"},
		{"a newer generation on the standby", func(m *migEnv, sb string, _ failover.ApprovalReply) {
			m.keys.setReport(sb, failover.SignerState{Generation: 7, Phase: failover.SignerImported})
		}, "newer than this migration's 1"},
		{"an unknown phase", func(m *migEnv, sb string, _ failover.ApprovalReply) {
			m.keys.setReport(sb, failover.SignerState{Generation: 1, Phase: "exploded"})
		}, `unknown signer phase "exploded"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMigEnv(t, nil)
			inc := m.toReady("eth-1")
			reply, err := m.eng.Approve(m.ctx, m.migrateReq(inc))
			if err != nil {
				t.Fatal(err)
			}
			c.act(m, inc.Standby.Name, reply)
			m.reconcile("eth-1")
			got := m.wantState(inc.ID, failover.StateFailed)
			if !strings.Contains(got.Reason, c.want) || !strings.Contains(got.Reason, "runbooks/approve-migration.md") {
				t.Fatalf("reason %q does not say %q", got.Reason, c.want)
			}
			m.wantOwner("eth-1", inc.Standby.Name, 1)
			if m.moves(approval.ActionMigrate, "failed") != 1 {
				t.Fatal("failed move not counted")
			}
			// Failed is where it stays: a resolve, time and restarts change nothing.
			v, _ := m.store.GetValidator(m.ctx, "eth-1")
			for fp, a := range v.Alerts {
				m.resolve("eth-1", fp, a.StartsAt)
			}
			m.clk.Advance(time.Hour)
			m.restart()
			m.reconcile("eth-1")
			m.wantState(inc.ID, failover.StateFailed)
			if _, err := m.eng.Teardown(m.ctx, inc.ID, "ops"); codeOf(err) != failover.RefuseOwner {
				t.Fatalf("teardown while the standby owns the signing right: %v", err)
			}
			if m.cloud.Live() != 1 {
				t.Fatal("standby deleted")
			}
			plan, err := m.eng.Plan(m.ctx, inc.ID)
			if err != nil || plan.Action != approval.ActionFailback {
				t.Fatalf("plan after a failed migration %+v %v", plan, err)
			}
		})
	}
}

// In migrated, the standby losing its keys or its generation stops the
// incident too.
func TestMigratedStandbyChangesUnderneath(t *testing.T) {
	m := newMigEnv(t, nil)
	inc, _ := m.toMigrated("eth-1")
	m.keys.setReport(inc.Standby.Name, failover.SignerState{Generation: 1, Phase: failover.SignerFailed, Message: "validator client crashed"})
	m.reconcile("eth-1")
	got := m.wantState(inc.ID, failover.StateFailed)
	if !strings.Contains(got.Reason, "validator client crashed") {
		t.Fatalf("reason %q", got.Reason)
	}
	m.wantOwner("eth-1", inc.Standby.Name, 1)
}

func TestFailback(t *testing.T) {
	m := newMigEnv(t, nil)
	inc, _ := m.toMigrated("eth-1")
	sb := inc.Standby.Name
	plan, err := m.eng.Plan(m.ctx, inc.ID)
	if err != nil || plan.Action != approval.ActionFailback {
		t.Fatalf("plan %+v %v", plan, err)
	}
	reply, err := m.eng.Approve(m.ctx, m.failbackReq(inc))
	if err != nil {
		t.Fatalf("failback refused: %v", err)
	}
	if reply.Incident.State != failover.StateFailingBack {
		t.Fatalf("state %s", reply.Incident.State)
	}
	g, err := grant.Verify(reply.Grant, m.ca.CAPEM(), m.clk.Now())
	if err != nil {
		t.Fatal(err)
	}
	if g.Action != approval.ActionFailback || g.Owner != failover.OwnerHome || g.Standby != sb || g.Generation != 2 || !g.Covers([]string{pk1, pk2}) {
		t.Fatalf("failback grant %+v", g)
	}
	// The signing right moves only once the standby is fenced and the chain silent.
	m.wantOwner("eth-1", sb, 1)
	if recs := m.audit.records(); recs[len(recs)-1].Outcome != "accepted" || recs[len(recs)-1].Action != approval.ActionFailback || recs[len(recs)-1].Generation != 2 {
		t.Fatalf("audit %+v", recs[len(recs)-1])
	}
	if m.approvals(approval.ActionFailback, "accepted") != 1 {
		t.Fatal("failback not counted")
	}
	if _, err := m.eng.Teardown(m.ctx, inc.ID, "ops"); err == nil {
		t.Fatal("teardown while failing back")
	}

	live := true
	m.keys.chain = func(_ cloud.Standby, pks []string, _ int) (beacon.Report, error) {
		r := silentReport(pks)
		if live {
			r.SilentEpochs, r.NotSilent = nil, "validator 1 is live in epoch 999"
		}
		return r, nil
	}
	m.reconcile("eth-1")
	_, fences := m.keys.counts()
	if fences != 1 || m.keys.fences[0].Generation != 2 || m.keys.fences[0].Action != approval.ActionFailback {
		t.Fatalf("fences %+v", m.keys.fences)
	}
	got := m.wantState(inc.ID, failover.StateFailingBack)
	if !strings.Contains(got.Reason, "waiting for chain silence") || !strings.Contains(got.Reason, "live in epoch 999") {
		t.Fatalf("reason %q", got.Reason)
	}
	m.wantOwner("eth-1", sb, 1)
	// Waiting does not fence again, and a restart does not either.
	m.clk.Advance(time.Minute)
	m.restart()
	m.reconcile("eth-1")
	if _, fences := m.keys.counts(); fences != 1 {
		t.Fatalf("fenced %d times", fences)
	}
	m.wantState(inc.ID, failover.StateFailingBack)
	m.wantOwner("eth-1", sb, 1)
	if m.cloud.Live() != 1 {
		t.Fatal("standby deleted before home owns the signing right")
	}

	live = false
	m.clk.Advance(20 * time.Minute)
	m.reconcile("eth-1")
	done := m.wantState(inc.ID, failover.StateClosed)
	own := m.wantOwner("eth-1", failover.OwnerHome, 2)
	if own.Incident != inc.ID || !slices.Equal(own.ChangedBy, []string{"alice@example"}) {
		t.Fatalf("ownership %+v", own)
	}
	if m.cloud.Live() != 0 || done.Standby.State != cloud.StateDeleted {
		t.Fatal("standby not deleted after the failback")
	}
	mig, _ := done.CurrentMigration()
	if mig.Action != approval.ActionFailback || mig.DoneAt == nil || mig.SlashingProtection == "" || mig.KeyStatuses[pk1] != "deleted" {
		t.Fatalf("failback record %+v", mig)
	}
	if m.moves(approval.ActionFailback, "done") != 1 {
		t.Fatal("failback not counted as done")
	}
	// The validator is free again, and the next outage moves at generation 3.
	m.reconcile("eth-1")
	m.clk.Advance(time.Minute)
	inc2 := m.toReady("eth-1")
	if inc2.ID == inc.ID {
		t.Fatal("the closed incident was reused")
	}
	if _, err := m.eng.Approve(m.ctx, m.migrateReq(inc2)); err != nil {
		t.Fatal(err)
	}
	m.wantOwner("eth-1", inc2.Standby.Name, 3)
}

func TestFailbackFenceError(t *testing.T) {
	m := newMigEnv(t, nil)
	inc, _ := m.toMigrated("eth-1")
	sb := inc.Standby.Name
	m.keys.fenceStatus = func(pk string) string {
		if pk == pk2 {
			return "error"
		}
		return ""
	}
	if _, err := m.eng.Approve(m.ctx, m.failbackReq(inc)); err != nil {
		t.Fatal(err)
	}
	m.reconcile("eth-1")
	got := m.wantState(inc.ID, failover.StateFailed)
	if !strings.Contains(got.Reason, pk2) || !strings.Contains(got.Reason, `"error"`) || !strings.Contains(got.Reason, "runbooks/failback.md") {
		t.Fatalf("reason %q", got.Reason)
	}
	m.wantOwner("eth-1", sb, 1)
	if m.cloud.Live() != 1 {
		t.Fatal("standby deleted")
	}
	if _, err := m.eng.Teardown(m.ctx, inc.ID, "ops"); codeOf(err) != failover.RefuseOwner {
		t.Fatalf("teardown: %v", err)
	}
	if m.moves(approval.ActionFailback, "failed") != 1 {
		t.Fatal("failed failback not counted")
	}
	// A person fixes the standby's validator client and approves again.
	m.keys.fenceStatus = nil
	reply, err := m.eng.Approve(m.ctx, m.failbackReq(got))
	if err != nil {
		t.Fatalf("second failback refused: %v", err)
	}
	if reply.Incident.State != failover.StateFailingBack {
		t.Fatalf("state %s", reply.Incident.State)
	}
	m.reconcile("eth-1")
	m.wantState(inc.ID, failover.StateClosed)
	m.wantOwner("eth-1", failover.OwnerHome, 2)
}

// A migration whose import failed (one key never loaded) still fails back:
// the standby answers not_found for that key.
func TestFailbackAfterFailedImport(t *testing.T) {
	m := newMigEnv(t, nil)
	inc := m.toReady("eth-1")
	reply, err := m.eng.Approve(m.ctx, m.migrateReq(inc))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.keys.Import(inc.Standby.Name, reply.Grant, importFail); err != nil {
		t.Fatal(err)
	}
	m.reconcile("eth-1")
	failed := m.wantState(inc.ID, failover.StateFailed)
	if _, err := m.eng.Approve(m.ctx, m.failbackReq(failed)); err != nil {
		t.Fatalf("failback refused: %v", err)
	}
	m.reconcile("eth-1")
	done := m.wantState(inc.ID, failover.StateClosed)
	mig, _ := done.CurrentMigration()
	if mig.KeyStatuses[pk1] != "not_found" || mig.KeyStatuses[pk2] != "not_active" {
		t.Fatalf("fence statuses %+v", mig.KeyStatuses)
	}
	m.wantOwner("eth-1", failover.OwnerHome, 2)
}

// Without the standby's word on a key, or with anything but a removal, the
// failback stops.
func TestFailbackUnknownFenceStatus(t *testing.T) {
	for _, st := range []string{"error", "unknown", "pending"} {
		t.Run(st, func(t *testing.T) {
			m := newMigEnv(t, nil)
			inc, _ := m.toMigrated("eth-1")
			m.keys.fenceStatus = func(pk string) string {
				if pk == pk1 {
					return st
				}
				return ""
			}
			if _, err := m.eng.Approve(m.ctx, m.failbackReq(inc)); err != nil {
				t.Fatal(err)
			}
			m.reconcile("eth-1")
			m.wantState(inc.ID, failover.StateFailed)
			m.wantOwner("eth-1", inc.Standby.Name, 1)
		})
	}
}

func TestFailbackRefusals(t *testing.T) {
	m := newMigEnv(t, nil)
	inc, _ := m.toMigrated("eth-1")
	other := m.newApproval(inc, approval.ActionFailback, func(a *approval.Approval) { a.Pubkeys = []string{pk1} })
	_, err := m.eng.Approve(m.ctx, m.request(inc.ID, other, failover.Fencing{}, "alice"))
	if codeOf(err) != "pubkeys-differ" {
		t.Fatalf("failback of other keys: %v", err)
	}
	_, err = m.eng.Approve(m.ctx, m.request(inc.ID, m.newApproval(inc, approval.ActionFailback, func(a *approval.Approval) { a.Approver = "mallory@example" }), failover.Fencing{}, "mallory"))
	if codeOf(err) != "unknown-signer" {
		t.Fatalf("failback by mallory: %v", err)
	}
	m.wantState(inc.ID, failover.StateMigrated)
	m.wantOwner("eth-1", inc.Standby.Name, 1)
	if _, fences := m.keys.counts(); fences != 0 {
		t.Fatal("fenced without an accepted failback")
	}
	if m.approvals(approval.ActionFailback, "pubkeys-differ") != 1 || m.approvals(approval.ActionFailback, "unknown-signer") != 1 {
		t.Fatal("failback refusals not counted")
	}
}

// The property test: no sequence of alerts, resolves, reconciles, clock
// jumps, restarts, approvals (good and bad, migrate and failback), key
// deliveries and fence outcomes ever lets two signers sign for a validator,
// or lets either sign without owning the signing right.
//
// The model tracks who could really sign: the home validator client (it
// starts only when the gate says home, and a Keymanager DELETE or a scale
// to zero stops it) and each standby's validator client (it signs only after
// an import the fake agent accepted, which needs a grant that verifies
// against failoverd's CA). The chain the fakes report shows a key live while
// any signer signed in the last 3 epochs.
//
// A failing sequence prints its seed and its steps; replay it with
//
//	go test ./failover/ -run 'TestOwnershipProperty/seed=17$' -v
//	FAILOVERD_SEED=17 go test ./failover/ -run TestOwnershipProperty -v
func TestOwnershipProperty(t *testing.T) {
	seeds := make([]uint64, 0, 250)
	if s := os.Getenv("FAILOVERD_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("FAILOVERD_SEED=%q: %v", s, err)
		}
		seeds = append(seeds, n)
	} else {
		n := uint64(250)
		if testing.Short() {
			n = 60
		}
		for i := uint64(1); i <= n; i++ {
			seeds = append(seeds, i)
		}
	}
	// One CA for every sequence: grants are all it signs here.
	ca, err := pki.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var cov coverage
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			w := newWorld(t, seed, ca)
			for i := range propertySteps {
				w.step(i)
			}
			cov.add(w)
		})
	}
	if len(seeds) >= 200 && !t.Failed() {
		// The generator must reach the deep states, or the property says little.
		t.Logf("coverage over %d sequences: %+v", len(seeds), cov)
		n := len(seeds)
		if cov.migrated < n/5 || cov.failedBack < n/10 || cov.failedMoves < n/10 || cov.imports < n/4 ||
			cov.refused < 2*n || cov.refusedImports < n/4 || cov.restartsInMove < n/20 {
			t.Fatalf("the sequences do not reach deep enough: %+v", cov)
		}
	}
}

const propertySteps = 45

// chainWindow is how long a signature stays visible to the liveness check
// (3 epochs of 32 slots of 12 s).
const chainWindow = 3 * 32 * 12 * time.Second

type coverage struct {
	migrated, failedBack, failedMoves, imports, refusedImports, refused, restartsInMove int
	// final counts the state each sequence ended in.
	final map[failover.State]int
}

func (c *coverage) add(w *world) {
	if c.final == nil {
		c.final = map[failover.State]int{}
	}
	inc, ok := w.open()
	if !ok {
		inc.State = "none open"
	}
	c.final[inc.State]++
	if w.sawMigrated {
		c.migrated++
	}
	if w.failedBack {
		c.failedBack++
	}
	if w.sawFailed {
		c.failedMoves++
	}
	c.imports += w.imports
	c.refusedImports += w.refusedImports
	c.refused += w.refused
	if w.restartInMove {
		c.restartsInMove++
	}
}

type world struct {
	t   *testing.T
	m   *migEnv
	rng *rand.Rand
	log []string

	// Home: the machine is up; its validator client holds the keys; it
	// signs; it is scaled to zero.
	homeUp, homeKeys, homeActive, scaled bool
	// partitioned: home is cut off from monitoring (its alerts fire) but
	// runs, and signs if it did: unreachable is not stopped.
	partitioned  bool
	lastHomeSign time.Time
	homeSince    time.Time // when home last started signing
	outage       int
	firingAt     time.Time

	// cur is the open incident as the last check read it.
	cur              failover.Incident
	curOK, curLoaded bool
	maxGen           int64
	nonces           map[string]bool // accepted approval nonces
	moves            map[string]bool // "incident/generation" of accepted migrations
	grants           []grant.Signed  // every grant a CLI has seen
	sent             []failover.ApprovalRequest
	fenceBroken      bool

	sawMigrated, failedBack, sawFailed, restartInMove bool
	imports, refusedImports, refused                  int
}

func newWorld(t *testing.T, seed uint64, ca *pki.Authority) *world {
	w := &world{t: t, rng: rand.New(rand.NewPCG(seed, seed*0x9e3779b97f4a7c15+1)), homeUp: true, homeKeys: true, homeActive: true,
		lastHomeSign: start, homeSince: start, nonces: map[string]bool{}, moves: map[string]bool{}}
	w.m = newMigEnvWith(t, newMemStore(), ca, nil)
	w.m.keys.chain = w.chain
	w.m.keys.silent = func() bool { return w.quietLocked() == "" }
	w.m.home.scale = func() error {
		if w.partitioned {
			// The pod sits on a node the cluster cannot reach: it is not
			// gone, whatever its owner object says.
			return errors.New("1 pod left on an unreachable node")
		}
		w.homeActive, w.scaled = false, true
		return nil
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d, steps:\n  %s", seed, strings.Join(w.log, "\n  "))
		}
	})
	return w
}

// quietLocked says why the chain is not silent ("" when it is); the caller
// holds the fake agent's lock.
func (w *world) quietLocked() string {
	now := w.m.clk.Now()
	if !w.lastHomeSign.IsZero() && now.Sub(w.lastHomeSign) < chainWindow {
		return fmt.Sprintf("home signed at %s", w.lastHomeSign.Format(time.TimeOnly))
	}
	for name, a := range w.m.keys.agents {
		if !a.lastSign.IsZero() && now.Sub(a.lastSign) < chainWindow {
			return fmt.Sprintf("standby %s signed at %s", name, a.lastSign.Format(time.TimeOnly))
		}
	}
	return ""
}

func (w *world) chain(_ cloud.Standby, pubkeys []string, _ int) (beacon.Report, error) {
	w.m.keys.mu.Lock()
	why := w.quietLocked()
	w.m.keys.mu.Unlock()
	r := silentReport(pubkeys)
	if why != "" {
		r.SilentEpochs, r.NotSilent = nil, why
	}
	return r, nil
}

// touch records that every active signer signed up to now; a standby whose
// machine is gone signs no more.
func (w *world) touch() {
	now := w.m.clk.Now()
	if w.homeActive {
		w.lastHomeSign = now
	}
	w.m.keys.mu.Lock()
	names := make([]string, 0, len(w.m.keys.agents))
	for name, a := range w.m.keys.agents {
		if a.active {
			a.lastSign = now
			names = append(names, name)
		}
	}
	w.m.keys.mu.Unlock()
	for _, name := range names {
		if _, err := w.m.cloud.Get(w.m.ctx, name); errors.Is(err, cloud.ErrNotFound) {
			w.m.keys.mu.Lock()
			w.m.keys.agents[name].active = false
			w.m.keys.mu.Unlock()
		}
	}
}

func (w *world) open() (failover.Incident, bool) {
	v, err := w.m.store.GetValidator(w.m.ctx, "eth-1")
	if err != nil || v.OpenIncident == "" {
		return failover.Incident{}, false
	}
	inc, err := w.m.store.GetIncident(w.m.ctx, v.OpenIncident)
	return inc, err == nil
}

func (w *world) logf(format string, args ...any) {
	w.log = append(w.log, fmt.Sprintf("[%s] ", w.m.clk.Now().Format(time.TimeOnly))+fmt.Sprintf(format, args...))
}

func (w *world) fail(format string, args ...any) {
	w.t.Helper()
	w.t.Fatalf(format, args...)
}

type move struct {
	name   string
	weight int
	do     func()
}

func (w *world) step(i int) {
	if !w.curLoaded {
		w.cur, w.curOK = w.open()
		w.curLoaded = true
	}
	inc, ok := w.cur, w.curOK
	st := failover.State("")
	if ok {
		st = inc.State
	}
	hasStandby := ok && inc.Standby != nil
	keysMoved := ok && inc.KeysMoved()
	weight := func(cond bool, yes, no int) int {
		if cond {
			return yes
		}
		return no
	}
	moves := []move{
		{"outage", weight(w.homeUp, weight(!ok, 6, 1), 0), w.doOutage},
		// Home rarely returns before a migration (else the standby is only
		// kept warm), more often after one (the case that must not act).
		{"home back", weight(!w.homeUp, weight(keysMoved, 3, 1), 0), w.doHomeBack},
		{"reconcile", 8, w.doReconcile},
		// A person waits for chain silence when failoverd says to.
		{"advance", weight(st == failover.StateReady || st == failover.StateFailingBack, 10, 6), w.doAdvance},
		{"restart", 1, w.doRestart},
		{"approve migration", weight(st == failover.StateReady, 8, weight(hasStandby, 1, 0)), func() { w.doMigrate(inc) }},
		{"approve bad migration", weight(hasStandby, 2, 0), func() { w.doBadMigrate(inc) }},
		{"approve failback", weight(st == failover.StateMigrated || st == failover.StateFailed && keysMoved, 6, weight(hasStandby, 1, 0)), func() { w.doFailback(inc) }},
		{"approve bad failback", weight(hasStandby && keysMoved, 1, 0), func() { w.doBadFailback(inc) }},
		{"deliver keys with a grant seen", weight(len(w.grants) > 0, 2, 0), w.doImportSeen},
		{"deliver keys with the plan's grant", weight(st == failover.StateMigrating, 4, 0), func() { w.doImportPlan(inc) }},
		{"fence outcome", 1, w.doFenceOutcome},
		{"restore home", weight(w.homeUp && !w.homeActive, 2, 0), w.doRestoreHome},
		{"a person powers home off", weight(w.partitioned && w.homeActive, 3, 0), w.doPowerOff},
		{"teardown", weight(ok, 1, 0), func() { w.doTeardown(inc) }},
	}
	total := 0
	for _, mv := range moves {
		total += mv.weight
	}
	pick := w.rng.IntN(total)
	for _, mv := range moves {
		if pick < mv.weight {
			w.touch()
			mv.do()
			w.touch()
			w.check(i, mv.name, inc.ID)
			return
		}
		pick -= mv.weight
	}
}

func (w *world) fp() string { return fmt.Sprintf("fp-%d", w.outage) }

func (w *world) doOutage() {
	w.homeUp = false
	w.outage++
	w.firingAt = w.m.clk.Now()
	if w.rng.IntN(3) == 0 {
		w.partitioned = true
		w.logf("home is cut off from monitoring (alert %s fires); it still signs: %v", w.fp(), w.homeActive)
	} else {
		w.homeActive = false
		w.logf("home goes down (alert %s fires)", w.fp())
	}
	w.m.fire("eth-1", w.fp(), w.firingAt)
}

func (w *world) doHomeBack() {
	w.homeUp = true
	if w.partitioned {
		// It never stopped, so it never asked the gate.
		w.partitioned = false
		w.logf("home's network is back (alert %s resolves); it signs: %v", w.fp(), w.homeActive)
	} else {
		own := w.m.owner("eth-1")
		// The home validator client starts only when its gate says home.
		w.homeActive = w.homeKeys && !w.scaled && own.AtHome()
		if w.homeActive {
			w.homeSince = w.m.clk.Now()
		}
		w.logf("home is back (alert %s resolves); gate says %s, home signs: %v", w.fp(), own.Current(), w.homeActive)
	}
	w.m.resolve("eth-1", w.fp(), w.firingAt)
}

func (w *world) doReconcile() {
	after, err := w.m.eng.Reconcile(w.m.ctx, "eth-1")
	inc, _ := w.open()
	w.logf("reconcile: %s (%s), next in %s", inc.State, inc.Reason, after)
	if err != nil {
		w.fail("reconcile: %v", err)
	}
}

func (w *world) doAdvance() {
	ds := []time.Duration{15 * time.Second, time.Minute, 5*time.Minute + 30*time.Second, 10 * time.Minute, 20 * time.Minute, 20 * time.Minute}
	d := ds[w.rng.IntN(len(ds))]
	w.m.clk.Advance(d)
	w.logf("clock +%s", d)
}

func (w *world) doRestart() {
	if inc, ok := w.open(); ok && (inc.State == failover.StateMigrating || inc.State == failover.StateFailingBack) {
		w.restartInMove = true
	}
	w.logf("failoverd restarts")
	w.m.restart()
}

// submit sends an approval and checks what an acceptance must mean.
func (w *world) submit(what string, req failover.ApprovalRequest) (failover.ApprovalReply, bool) {
	w.sent = append(w.sent, req)
	a, perr := approval.ParseCanonical([]byte(req.Approval))
	reply, err := w.m.eng.Approve(w.m.ctx, req)
	if err != nil {
		w.refused++
		w.logf("%s: refused (%s): %v", what, codeOf(err), err)
		if codeOf(err) == "" {
			w.fail("%s: an error that is not a refusal: %v", what, err)
		}
		if reply.Grant.Payload != nil {
			w.fail("%s: a refusal came with a grant", what)
		}
		return reply, false
	}
	if perr != nil {
		w.fail("%s: accepted an approval that does not parse: %v", what, perr)
	}
	if w.nonces[a.Nonce] {
		w.fail("%s: nonce %s accepted twice", what, a.Nonce)
	}
	w.nonces[a.Nonce] = true
	g, err := grant.Verify(reply.Grant, w.m.ca.CAPEM(), w.m.clk.Now())
	if err != nil {
		w.fail("%s: accepted, but its grant does not verify: %v", what, err)
	}
	if g.Incident != req.Incident || g.Action != a.Action || g.Generation <= w.maxGen {
		w.fail("%s: grant %+v (generation seen so far %d)", what, g, w.maxGen)
	}
	if g.Action == approval.ActionMigrate {
		w.moves[fmt.Sprintf("%s/%d", g.Incident, g.Generation)] = true
	}
	w.logf("%s: accepted by %v, generation %d, incident %s", what, a.Approver, g.Generation, reply.Incident.State)
	w.grants = append(w.grants, reply.Grant)
	return reply, true
}

func (w *world) importOutcome() string {
	switch r := w.rng.IntN(20); {
	case r < 15:
		return importOK
	case r < 19:
		return importFail
	default:
		return importStuck
	}
}

// honestFencing is what an approver can say about home in good faith, with
// the effect of doing it (a Keymanager DELETE stops home signing). A home
// cut off from monitoring looks powered off to the approver.
func (w *world) honestFencing() failover.Fencing {
	switch {
	case w.homeUp && !w.scaled:
		st := "deleted"
		if !w.homeKeys {
			st = "not_active"
		}
		w.homeKeys, w.homeActive = false, false
		return kmFenced(map[string]string{pk1: st, pk2: st})
	case !w.homeUp && w.rng.IntN(2) == 0:
		return failover.Fencing{Method: failover.FencePoweredOff, ConfirmedBy: "alice@example"}
	default:
		return failover.Fencing{Method: failover.FenceScale}
	}
}

func (w *world) doMigrate(inc failover.Incident) {
	f := w.honestFencing()
	by := []string{"alice"}
	if w.rng.IntN(3) == 0 {
		by = append(by, "bob")
	}
	reply, ok := w.submit("migration ("+f.Method+")", w.m.request(inc.ID, w.m.newApproval(inc, approval.ActionMigrate, nil), f, by...))
	if !ok {
		return
	}
	switch r := w.rng.IntN(10); {
	case r < 7:
		w.deliver("the approver's CLI", inc.Standby.Name, reply.Grant)
	default:
		w.logf("the approver's CLI loses the reply")
	}
}

func (w *world) doBadMigrate(inc failover.Incident) {
	kinds := []string{"expired", "wrong incident", "wrong standby", "wrong certificate", "unknown signer", "lying fence",
		"power-off by a non-approver", "no fencing", "replay", "another validator's keys", "a key short", "an extra key"}
	kind := kinds[w.rng.IntN(len(kinds))]
	var mutate func(*approval.Approval)
	by := []string{"alice"}
	f := kmFenced(allDeleted()) // a claim; home is not touched
	switch kind {
	case "expired":
		mutate = func(a *approval.Approval) {
			a.Issued, a.Expires = a.Issued.Add(-30*time.Minute), a.Issued.Add(-time.Second)
		}
	case "wrong incident":
		mutate = func(a *approval.Approval) { a.Incident = inc.ID + "0" }
	case "wrong standby":
		mutate = func(a *approval.Approval) { a.Standby = "fo-elsewhere" }
	case "wrong certificate":
		mutate = func(a *approval.Approval) { a.StandbyCertSHA256 = certFor("an impostor") }
	case "unknown signer":
		mutate, by = func(a *approval.Approval) { a.Approver = "mallory@example" }, []string{"mallory"}
	case "another validator's keys":
		mutate = func(a *approval.Approval) { a.Pubkeys = []string{pk3, pk4} }
	case "a key short":
		mutate = func(a *approval.Approval) { a.Pubkeys = []string{pk2} }
	case "an extra key":
		mutate = func(a *approval.Approval) { a.Pubkeys = []string{pk1, pk2, pk3} }
	case "power-off by a non-approver":
		f = failover.Fencing{Method: failover.FencePoweredOff, ConfirmedBy: "bob@example"}
	case "no fencing":
		f = failover.Fencing{}
	case "replay":
		if len(w.sent) > 0 {
			w.submit("replay of an earlier approval", w.sent[w.rng.IntN(len(w.sent))])
			return
		}
	}
	reply, ok := w.submit("bad migration ("+kind+")", w.m.request(inc.ID, w.m.newApproval(inc, approval.ActionMigrate, mutate), f, by...))
	if ok && kind != "lying fence" && kind != "replay" {
		w.fail("a %s approval was accepted", kind)
	}
	if ok {
		// A lie that the chain could not tell from the truth: home really
		// was silent. The CLI delivers as usual.
		w.deliver("the approver's CLI", inc.Standby.Name, reply.Grant)
	}
}

func (w *world) doFailback(inc failover.Incident) {
	pubkeys := []string{pk1, pk2}
	if m, ok := inc.CurrentMigration(); ok {
		pubkeys = m.Pubkeys
	}
	w.submit("failback", w.m.request(inc.ID, w.m.newApproval(inc, approval.ActionFailback, func(a *approval.Approval) { a.Pubkeys = pubkeys }), failover.Fencing{}, "alice"))
}

func (w *world) doBadFailback(inc failover.Incident) {
	var accepted bool
	switch w.rng.IntN(3) {
	case 0:
		_, accepted = w.submit("bad failback (unknown signer)", w.m.request(inc.ID, w.m.newApproval(inc, approval.ActionFailback, func(a *approval.Approval) {
			a.Approver = "mallory@example"
		}), failover.Fencing{}, "mallory"))
	case 1:
		_, accepted = w.submit("bad failback (expired)", w.m.request(inc.ID, w.m.newApproval(inc, approval.ActionFailback, func(a *approval.Approval) {
			a.Issued, a.Expires = a.Issued.Add(-30*time.Minute), a.Issued.Add(-time.Second)
		}), failover.Fencing{}, "alice"))
	default:
		// A replay may be a first use: an approval refused before its
		// signature was checked (wrong state) never spent its nonce.
		if len(w.sent) > 0 {
			w.submit("replay of an earlier approval", w.sent[w.rng.IntN(len(w.sent))])
		}
	}
	if accepted {
		w.fail("a bad failback was accepted")
	}
}

// deliver is a CLI sending keys with a grant to a standby's agent.
func (w *world) deliver(who, standby string, g grant.Signed) {
	if _, err := w.m.cloud.Get(w.m.ctx, standby); err != nil {
		w.logf("%s cannot reach %s: %v", who, standby, err)
		return
	}
	before, _ := w.m.keys.counts()
	outcome := w.importOutcome()
	err := w.m.keys.Import(standby, g, outcome)
	after, _ := w.m.keys.counts()
	if err != nil {
		w.refusedImports++
		w.logf("%s delivers keys to %s: agent refuses: %v", who, standby, err)
		if after != before {
			w.fail("a refused import was recorded")
		}
		return
	}
	w.imports++
	w.m.keys.mu.Lock()
	last := w.m.keys.imports[len(w.m.keys.imports)-1]
	w.m.keys.mu.Unlock()
	w.logf("%s delivers keys to %s: %s at generation %d", who, standby, outcome, last.Generation)
	if !w.moves[fmt.Sprintf("%s/%d", last.Incident, last.Generation)] {
		w.fail("keys imported at %s generation %d without an accepted migration", last.Incident, last.Generation)
	}
}

func (w *world) doImportSeen() {
	g := w.grants[w.rng.IntN(len(w.grants))]
	var gg grant.Grant
	if err := json.Unmarshal(g.Payload, &gg); err != nil {
		w.fail("grant payload: %v", err)
	}
	w.deliver("a CLI with an old grant", gg.Standby, g)
}

func (w *world) doImportPlan(inc failover.Incident) {
	p, err := w.m.eng.Plan(w.m.ctx, inc.ID)
	if err != nil {
		w.fail("plan: %v", err)
	}
	if p.Grant == nil {
		w.logf("plan of %s (%s) has no grant", inc.ID, p.State)
		return
	}
	w.grants = append(w.grants, *p.Grant)
	w.deliver("a CLI with the plan's grant", p.Standby, *p.Grant)
}

func (w *world) doFenceOutcome() {
	w.fenceBroken = w.rng.IntN(3) == 0
	w.m.keys.mu.Lock()
	if w.fenceBroken {
		w.m.keys.fenceStatus = func(pk string) string {
			if pk == pk2 {
				return "error"
			}
			return ""
		}
	} else {
		w.m.keys.fenceStatus = nil
	}
	w.m.keys.mu.Unlock()
	w.logf("standby deletes now answer error: %v", w.fenceBroken)
}

func (w *world) doPowerOff() {
	// Off now for real; powering on again is a restart, through the gate.
	w.partitioned, w.homeActive = false, false
	w.logf("a person pulls home's plug")
}

func (w *world) doRestoreHome() {
	own := w.m.owner("eth-1")
	if !own.AtHome() {
		w.logf("a person tries to start home; the gate says %s: it stays stopped", own.Current())
		return
	}
	w.homeKeys, w.scaled, w.homeActive, w.homeSince = true, false, true, w.m.clk.Now()
	w.logf("a person restores home (keys re-imported, scaled up); the gate says home")
}

func (w *world) doTeardown(inc failover.Incident) {
	_, err := w.m.eng.Teardown(w.m.ctx, inc.ID, "ops")
	w.logf("teardown of %s (%s): %v", inc.ID, inc.State, err)
}

// check asserts the invariants after step i; before is the incident that
// was open before it.
func (w *world) check(i int, name, before string) {
	w.t.Helper()
	where := fmt.Sprintf("after step %d (%s)", i, name)
	v, err := w.m.store.GetValidator(w.m.ctx, "eth-1")
	if err != nil && !errors.Is(err, failover.ErrNotFound) {
		w.fail("%s: %v", where, err)
	}
	own := v.Ownership
	own.Owner = own.Current()
	if own.Generation < w.maxGen {
		w.fail("%s: the generation went down from %d to %d", where, w.maxGen, own.Generation)
	}
	w.maxGen = own.Generation
	if int(own.Generation) > len(w.nonces) {
		w.fail("%s: generation %d with only %d accepted approvals", where, own.Generation, len(w.nonces))
	}
	// Two signers must not even come near each other: one that starts
	// within 3 epochs of the other's last signature could sign an epoch the
	// other signed too. So each signer's activity began at least 3 epochs
	// after every other signer's last signature.
	overlaps := func(last, since time.Time) bool { return !last.IsZero() && last.Add(chainWindow).After(since) }
	var signers []string
	w.m.keys.mu.Lock()
	var bad string
	if w.homeActive {
		signers = append(signers, "home")
		if !own.AtHome() {
			bad = fmt.Sprintf("home signs while %s owns the signing right", own.Current())
		}
		for name, a := range w.m.keys.agents {
			if overlaps(a.lastSign, w.homeSince) {
				bad = fmt.Sprintf("home signs since %s, standby %s signed at %s", w.homeSince.Format(time.TimeOnly), name, a.lastSign.Format(time.TimeOnly))
			}
		}
	}
	for name, a := range w.m.keys.agents {
		if !a.active {
			continue
		}
		signers = append(signers, name)
		if own.Current() != name || own.Generation != a.importGen {
			bad = fmt.Sprintf("standby %s signs with keys of generation %d while %s owns generation %d", name, a.importGen, own.Current(), own.Generation)
		}
		if overlaps(w.lastHomeSign, a.since) {
			bad = fmt.Sprintf("standby %s signs since %s, home signed at %s", name, a.since.Format(time.TimeOnly), w.lastHomeSign.Format(time.TimeOnly))
		}
		for other, o := range w.m.keys.agents {
			if other != name && overlaps(o.lastSign, a.since) {
				bad = fmt.Sprintf("standby %s signs since %s, standby %s signed at %s", name, a.since.Format(time.TimeOnly), other, o.lastSign.Format(time.TimeOnly))
			}
		}
	}
	w.m.keys.mu.Unlock()
	if bad != "" {
		w.fail("%s: %s", where, bad)
	}
	if len(signers) > 1 {
		w.fail("%s: two signers at once: %v", where, signers)
	}
	if !own.AtHome() {
		if _, err := w.m.cloud.Get(w.m.ctx, own.Current()); err != nil {
			w.fail("%s: the owner %s is gone from the cloud: %v", where, own.Current(), err)
		}
	}
	// Only an open incident moves: the one open before the step and the
	// one open after it are all that can have changed.
	var incs []failover.Incident
	w.cur, w.curOK = failover.Incident{}, false
	if before != "" {
		inc, err := w.m.store.GetIncident(w.m.ctx, before)
		if err != nil {
			w.fail("%s: incident %s: %v", where, before, err)
		}
		incs = append(incs, inc)
		if inc.ID == v.OpenIncident {
			w.cur, w.curOK = inc, true
		}
	}
	if v.OpenIncident != "" && v.OpenIncident != before {
		// A claimed validator whose incident is not written yet has none.
		if inc, err := w.m.store.GetIncident(w.m.ctx, v.OpenIncident); err == nil {
			incs = append(incs, inc)
			w.cur, w.curOK = inc, true
		}
	}
	for _, inc := range incs {
		moved, prev := false, failover.State("")
		for _, e := range inc.History {
			if e.To == "" {
				continue
			}
			switch {
			case e.To == failover.StateMigrating:
				moved = true
			case moved && e.To == failover.StateRecovering:
				w.fail("%s: %s went %s -> recovering after its keys moved", where, inc.ID, prev)
			case moved && e.To == failover.StateClosed && prev != failover.StateFailingBack:
				w.fail("%s: %s closed from %s after its keys moved", where, inc.ID, prev)
			}
			prev = e.To
		}
		switch inc.State {
		case failover.StateMigrated:
			w.sawMigrated = true
		case failover.StateFailed:
			if moved {
				w.sawFailed = true
			}
		case failover.StateClosed:
			if moved {
				w.failedBack = true
			}
		}
	}
}

// memStore is an in-memory failover.Store for the property test (hundreds
// of sequences must run in seconds); TestMemStoreContract holds it to the
// same contract as the real stores. Records are kept as JSON, so nothing a
// caller holds aliases what is stored.
type memStore struct {
	mu   sync.Mutex
	seq  int
	data map[string]map[string]memRec
}

type memRec struct {
	version string
	body    []byte
}

func newMemStore() *memStore { return &memStore{data: map[string]map[string]memRec{}} }

func memGet[T any](ctx context.Context, s *memStore, kind, key string, ver func(*T) *string) (T, error) {
	var v T
	if err := ctx.Err(); err != nil {
		return v, err
	}
	s.mu.Lock()
	rec, ok := s.data[kind][key]
	s.mu.Unlock()
	if !ok {
		return v, fmt.Errorf("%s %q: %w", kind, key, failover.ErrNotFound)
	}
	if err := json.Unmarshal(rec.body, &v); err != nil {
		return v, err
	}
	*ver(&v) = rec.version
	return v, nil
}

func memPut[T any](ctx context.Context, s *memStore, kind, key string, v *T, ver func(*T) *string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if key == "" {
		return fmt.Errorf("%s: empty key", kind)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.data[kind] == nil {
		s.data[kind] = map[string]memRec{}
	}
	cur, ok := s.data[kind][key]
	switch have := *ver(v); {
	case have == "" && ok:
		return fmt.Errorf("create %s %q: %w", kind, key, failover.ErrConflict)
	case have != "" && !ok:
		return fmt.Errorf("update %s %q: %w", kind, key, failover.ErrNotFound)
	case have != "" && have != cur.version:
		return fmt.Errorf("update %s %q: %w", kind, key, failover.ErrConflict)
	}
	c := *v
	*ver(&c) = ""
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	s.seq++
	next := strconv.Itoa(s.seq)
	s.data[kind][key] = memRec{version: next, body: b}
	*ver(v) = next
	return nil
}

func memList[T any](ctx context.Context, s *memStore, kind string, ver func(*T) *string) ([]T, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	keys := make([]string, 0, len(s.data[kind]))
	for k := range s.data[kind] {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	slices.Sort(keys)
	out := make([]T, 0, len(keys))
	for _, k := range keys {
		v, err := memGet(ctx, s, kind, k, ver)
		if errors.Is(err, failover.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func incVer(v *failover.Incident) *string        { return &v.Version }
func valVer(v *failover.ValidatorRecord) *string { return &v.Version }
func siteVer(v *failover.SiteRecord) *string     { return &v.Version }
func runVer(v *failover.SnapshotRun) *string     { return &v.Version }

func (s *memStore) GetIncident(ctx context.Context, id string) (failover.Incident, error) {
	return memGet(ctx, s, "incident", id, incVer)
}

func (s *memStore) PutIncident(ctx context.Context, inc *failover.Incident) error {
	return memPut(ctx, s, "incident", inc.ID, inc, incVer)
}

func (s *memStore) ListIncidents(ctx context.Context, opts failover.ListOptions) ([]failover.Incident, error) {
	all, err := memList(ctx, s, "incident", incVer)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, inc := range all {
		if opts.Match(inc) {
			out = append(out, inc)
		}
	}
	slices.SortStableFunc(out, func(a, b failover.Incident) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

func (s *memStore) GetValidator(ctx context.Context, name string) (failover.ValidatorRecord, error) {
	return memGet(ctx, s, "validator", name, valVer)
}

func (s *memStore) PutValidator(ctx context.Context, v *failover.ValidatorRecord) error {
	return memPut(ctx, s, "validator", v.Name, v, valVer)
}

func (s *memStore) ListValidators(ctx context.Context) ([]failover.ValidatorRecord, error) {
	return memList(ctx, s, "validator", valVer)
}

func (s *memStore) GetSite(ctx context.Context, name string) (failover.SiteRecord, error) {
	return memGet(ctx, s, "site", name, siteVer)
}

func (s *memStore) PutSite(ctx context.Context, r *failover.SiteRecord) error {
	return memPut(ctx, s, "site", r.Name, r, siteVer)
}

func (s *memStore) ListSites(ctx context.Context) ([]failover.SiteRecord, error) {
	return memList(ctx, s, "site", siteVer)
}

func (s *memStore) GetSnapshotRun(ctx context.Context, id string) (failover.SnapshotRun, error) {
	return memGet(ctx, s, "run", id, runVer)
}

func (s *memStore) PutSnapshotRun(ctx context.Context, r *failover.SnapshotRun) error {
	return memPut(ctx, s, "run", r.ID, r, runVer)
}

func (s *memStore) ListSnapshotRuns(ctx context.Context, validator string) ([]failover.SnapshotRun, error) {
	all, err := memList(ctx, s, "run", runVer)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, r := range all {
		if validator == "" || r.Validator == validator {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b failover.SnapshotRun) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

func (s *memStore) Close() error { return nil }

func TestMemStoreContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) failover.Store { return newMemStore() })
}

// A crash between recording an accepted migration and moving the signing
// right: the reconciler moves it, and the audit log still says who approved
// it (found by e2e/crash_migration_test.go, crash point M2).
func TestReconcilerAuditsTheMoveItFinishes(t *testing.T) {
	m := newMigEnv(t, nil)
	inc := m.toReady("eth-1")
	req := m.migrateReq(inc)
	if _, err := m.eng.Approve(m.ctx, req); err != nil {
		t.Fatal(err)
	}
	a, err := approval.ParseCanonical([]byte(req.Approval))
	if err != nil {
		t.Fatal(err)
	}
	// Rewind to the crash: intent recorded, swap and audit line not done.
	v, err := m.store.GetValidator(m.ctx, "eth-1")
	if err != nil {
		t.Fatal(err)
	}
	v.Ownership = failover.Ownership{}
	if err := m.store.PutValidator(m.ctx, &v); err != nil {
		t.Fatal(err)
	}
	m.audit.mu.Lock()
	m.audit.recs = nil
	m.audit.mu.Unlock()
	m.wantState(inc.ID, failover.StateMigrating)

	m.restart()
	m.reconcile("eth-1")
	m.wantOwner("eth-1", inc.Standby.Name, 1)
	recs := m.audit.records()
	if len(recs) != 1 || recs[0].Outcome != "accepted" || recs[0].Nonce != a.Nonce || !slices.Equal(recs[0].Approvers, []string{"alice@example"}) ||
		recs[0].Generation != 1 || !strings.Contains(recs[0].Reason, "reconciler") {
		t.Fatalf("audit after the reconciler's swap: %+v", recs)
	}
	// Done once: the next reconcile finds the swap made and writes nothing.
	m.reconcile("eth-1")
	if n := len(m.audit.records()); n != 1 {
		t.Fatalf("%d audit records after a second reconcile", n)
	}
}

// cometKeys is fakeKeys plus a standby beacond that answers CometBFT
// silence (failover.CometBFTChainer).
type cometKeys struct {
	*fakeKeys
	report func(pubkeys []string, blocks int) (cometbft.Report, error)
	asked  []int
}

func (c *cometKeys) CometBFTChain(_ context.Context, _ cloud.Standby, pubkeys []string, blocks int) (cometbft.Report, error) {
	c.asked = append(c.asked, blocks)
	return c.report(pubkeys, blocks)
}

func silentComet(chainID string) func([]string, int) (cometbft.Report, error) {
	return func(_ []string, blocks int) (cometbft.Report, error) {
		return cometbft.Report{Network: chainID, Height: 5000, InValidatorSet: true, VotingPower: 10, Address: strings.Repeat("AB", 20),
			CheckedFrom: int64(5001 - blocks), CheckedTo: 5000}, nil
	}
}

// Berachain: silence is the validator's absence from the last commits'
// signatures on the standby's beacond; there is no Keymanager to fence with.
func TestBerachainMigration(t *testing.T) {
	scaled := failover.Fencing{Method: failover.FenceScale}
	req := func(m *migEnv, inc failover.Incident, f failover.Fencing) failover.ApprovalRequest {
		return m.request(inc.ID, m.newApproval(inc, approval.ActionMigrate, func(a *approval.Approval) { a.Pubkeys = []string{pk5} }), f, "alice")
	}
	env := func(t *testing.T, report func([]string, int) (cometbft.Report, error)) (*migEnv, *cometKeys) {
		var ck *cometKeys
		m := newMigEnv(t, func(o *failover.MigrationOptions) {
			ck = &cometKeys{fakeKeys: o.Keys.(*fakeKeys), report: report}
			o.Keys = ck
		})
		return m, ck
	}
	t.Run("silent: moves, and records the height", func(t *testing.T) {
		m, ck := env(t, silentComet("bepolia-beacon-80069"))
		inc := m.toReady("bera-1")
		reply, err := m.eng.Approve(m.ctx, req(m, inc, scaled))
		if err != nil {
			t.Fatal(err)
		}
		mv, _ := reply.Incident.CurrentMigration()
		if mv.Chain == nil || mv.Chain.ChainID != "bepolia-beacon-80069" || mv.Chain.Height != 5000 || !strings.Contains(mv.Silence, "heights 4851-5000") {
			t.Fatalf("migration %+v chain %+v", mv, mv.Chain)
		}
		if len(ck.asked) != 1 || ck.asked[0] < cometbft.DefaultBlocks {
			t.Fatalf("asked for %v blocks", ck.asked)
		}
		m.wantOwner("bera-1", inc.Standby.Name, 1)
	})
	refusals := []struct {
		name, code, msg string
		report          func([]string, int) (cometbft.Report, error)
		fence           failover.Fencing
	}{
		{"signed recently", "chain-not-silent", "signed height 4990", func(p []string, b int) (cometbft.Report, error) {
			r, _ := silentComet("bepolia-beacon-80069")(p, b)
			r.LastSigned, r.NotSilent = 4990, "signed height 4990"
			return r, nil
		}, scaled},
		{"another chain", "network-mismatch", "mainnet-beacon-80094", silentComet("mainnet-beacon-80094"), scaled},
		{"not in the validator set", "validator-unusable", "not in the validator set", func(p []string, b int) (cometbft.Report, error) {
			r, _ := silentComet("bepolia-beacon-80069")(p, b)
			r.InValidatorSet, r.Unusable = false, "not in the validator set"
			return r, nil
		}, scaled},
		{"node unreachable", "cannot-verify", "connection refused", func([]string, int) (cometbft.Report, error) {
			return cometbft.Report{}, errors.New("dial tcp 127.0.0.1:26657: connection refused")
		}, scaled},
		{"Keymanager fencing claimed", "home-not-fenced", "no Keymanager API", silentComet("bepolia-beacon-80069"),
			failover.Fencing{Method: failover.FenceKeymanager, KeyStatuses: map[string]string{pk5: "deleted"}}},
	}
	for _, c := range refusals {
		t.Run(c.name, func(t *testing.T) {
			m, _ := env(t, c.report)
			inc := m.toReady("bera-1")
			reply, err := m.eng.Approve(m.ctx, req(m, inc, c.fence))
			m.wantRefused(inc, reply, err, c.code, c.msg)
			m.wantOwner("bera-1", failover.OwnerHome, 0)
		})
	}
	t.Run("no CometBFT client", func(t *testing.T) {
		m := newMigEnv(t, nil)
		inc := m.toReady("bera-1")
		reply, err := m.eng.Approve(m.ctx, req(m, inc, scaled))
		m.wantRefused(inc, reply, err, "not-configured", "cannot check CometBFT commit signatures")
	})
}

// A signing standby the cloud lost (a spot preemption, a person in the
// console) cannot be fenced through its agent: it was deleted with the boot
// disk that held the keys. Its failback is proven by the other beacon nodes
// alone, and refused without one.
func TestFailbackOfALostStandby(t *testing.T) {
	for _, withNode := range []bool{true, false} {
		t.Run(fmt.Sprintf("another beacon node %v", withNode), func(t *testing.T) {
			bn := beacontest.New(t)
			bn.SetGenesis(beacontest.MainnetGenesisTime, hoodiRoot, "0x10000910")
			bn.AddValidator(beacontest.Validator{Index: 1, Pubkey: pk1})
			bn.AddValidator(beacontest.Validator{Index: 2, Pubkey: pk2})
			c, err := beacon.New(bn.URL)
			if err != nil {
				t.Fatal(err)
			}
			var m *migEnv
			m = newMigEnv(t, func(o *failover.MigrationOptions) { o.Beacons = []*beacon.Client{c} })
			epoch := func() uint64 { return uint64(m.clk.Now().Unix()-beacontest.MainnetGenesisTime) / (32 * 12) }
			bn.SetCurrentEpoch(epoch())
			inc, _ := m.toMigrated("eth-1")
			sb := inc.Standby.Name
			if err := m.cloud.Delete(m.ctx, sb); err != nil {
				t.Fatal(err)
			}
			m.reconcile("eth-1")
			failed := m.wantState(inc.ID, failover.StateFailed)
			if !strings.Contains(failed.Reason, "gone from the cloud") {
				t.Fatalf("reason %q", failed.Reason)
			}
			if !withNode {
				// The approval is taken, but nothing proves silence.
				m.opts.Beacons = nil
				m.restart()
			}
			if _, err := m.eng.Approve(m.ctx, m.failbackReq(failed)); err != nil {
				t.Fatalf("failback refused: %v", err)
			}
			m.clk.Advance(time.Minute)
			bn.SetCurrentEpoch(epoch())
			for range 3 {
				m.reconcile("eth-1")
			}
			got := m.incident(inc.ID)
			if !withNode {
				m.wantOwner("eth-1", sb, 1)
				if got.State != failover.StateFailingBack || !strings.Contains(got.Reason, "no other beacon node is configured") {
					t.Fatalf("%s: %s", got.State, got.Reason)
				}
				return
			}
			m.wantOwner("eth-1", failover.OwnerHome, 2)
			mv, _ := got.CurrentMigration()
			if got.State != failover.StateClosed || !strings.Contains(mv.Fencing, "gone from the cloud") || mv.Chain == nil || !strings.Contains(mv.Silence, "1 beacon nodes") {
				t.Fatalf("%s (%s): fencing %q, silence %q", got.State, got.Reason, mv.Fencing, mv.Silence)
			}
			if _, fences := m.keys.counts(); fences != 0 {
				t.Fatalf("%d fences sent to a standby that is gone", fences)
			}
		})
	}
}
