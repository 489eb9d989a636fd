package simulation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/beacon"
	"github.com/failoverd/failoverd/failover/cometbft"
	"github.com/failoverd/failoverd/failover/grant"
)

// The chain clock every simulated network shares.
var genesis = time.Date(2025, 3, 17, 12, 0, 0, 0, time.UTC)

const (
	slotTime      = 12 * time.Second
	slotsPerEpoch = 32
	epochTime     = slotsPerEpoch * slotTime
)

// Berachain's consensus chain: a block every 2 seconds, and the chain IDs
// its beacond reports.
const blockTime = 2 * time.Second

var chainIDs = map[string]string{"bepolia": "bepolia-beacon-80069", "mainnet": "mainnet-beacon-80094"}

// Networks and their genesis_validators_root, as failoverd is configured
// with them and as the beacon nodes report them.
var roots = map[string]string{
	"hoodi":   "0x" + strings.Repeat("10", 32),
	"mainnet": "0x" + strings.Repeat("4b", 32),
	"bepolia": "0x" + strings.Repeat("be", 32),
}

// sighting is the last time a key signed, and who signed it.
type sighting struct {
	at time.Time
	by string
}

// home is a validator's home validator client: a pod on a node at a site.
type home struct {
	validator string
	site      *site
	up        bool // its node runs
	keys      bool // its keystores are loaded (a Keymanager DELETE removes them)
	scaled    bool // scaled to zero
	active    bool // it runs and signs
	// firing: the home's alert as the site's Prometheus sees it.
	firing      bool
	firingSince time.Time
}

func (h *home) ref() string { return "home/" + h.validator }

// site is a place with validators, its own Prometheus and Alertmanager, and
// an uplink.
type site struct {
	name string
	// dark: the power is out (nothing runs); cut: the uplink is down (things
	// run, nobody outside hears of them).
	dark, cut bool
}

func (s *site) reachable() bool { return !s.dark && !s.cut }

// agent is one standby's agent and validator client. It follows the real
// agent's rules (failover/agent): a grant must verify against failoverd's
// CA, name this standby, be newer than any it has acted on, and come with
// the very approval failoverd accepted; the chain must be silent right
// before an import. Its validator client starts only when failoverd's gate
// says this standby owns the signing right.
type agent struct {
	provider, name string
	created        time.Time
	validator      string
	seen           int64
	phase, message string
	statuses       map[string]string
	loaded         []string // keys its validator client holds
	gateOpen       bool     // the agent let the validator client start
	active         bool
	importGen      int64
	nonces         []string
}

func (a *agent) ref() string {
	return fmt.Sprintf("standby/%s/%s@%d", a.provider, a.name, a.created.Unix())
}

// agentFor returns the agent of a running standby, a fresh one for a new
// incarnation, or nil when the VM is gone.
func (w *world) agentFor(provider, name string) *agent {
	c := w.cloudNamed(provider)
	if c == nil {
		return nil
	}
	sb, ok := c.exists(name)
	key := provider + "/" + name
	a := w.agents[key]
	if !ok {
		if a != nil {
			w.agentGone(key)
		}
		return nil
	}
	if a == nil || !a.created.Equal(sb.CreatedAt) {
		if a != nil {
			w.agentGone(key)
		}
		a = &agent{provider: provider, name: name, created: sb.CreatedAt}
		w.agents[key] = a
	}
	return a
}

func (w *world) agentGone(key string) {
	a := w.agents[key]
	if a.active {
		w.note("  %s stops signing: its VM is gone", a.name)
	}
	delete(w.agents, key)
}

// certFor is the SHA-256 of a standby agent's certificate, as failoverd
// reports it to an approver.
func certFor(provider, name string) string {
	sum := sha256.Sum256([]byte("agent certificate of " + provider + "/" + name))
	return hex.EncodeToString(sum[:])
}

// epochAt is the chain's epoch at t.
func epochAt(t time.Time) uint64 { return uint64(t.Sub(genesis) / epochTime) }

// chainReport is what any beacon node of the network says of pubkeys now:
// silent only when no key signed in the last 3 finished epochs.
func (w *world) chainReport(network string, pubkeys []string, need int) beacon.Report {
	now := w.clk.Now()
	ep := epochAt(now)
	r := beacon.Report{Source: "standby", GenesisValidatorsRoot: roots[network], GenesisTime: genesis,
		Epoch: ep, Slot: uint64(now.Sub(genesis) / slotTime)}
	for _, pk := range pubkeys {
		r.Indices = append(r.Indices, fmt.Sprint(w.indexOf(pk)))
	}
	quietFrom := genesis.Add(time.Duration(ep-uint64(need)) * epochTime)
	for _, pk := range pubkeys {
		if s, ok := w.signed[approval.NormalizePubkey(pk)]; ok && !s.at.Before(quietFrom) {
			r.NotSilent = fmt.Sprintf("validator %d is_live=true in epoch %d", w.indexOf(pk), epochAt(s.at))
			return r
		}
	}
	for i := 1; i <= need; i++ {
		r.SilentEpochs = append(r.SilentEpochs, ep-uint64(i))
	}
	return r
}

// heightAt is the Berachain block height at t.
func heightAt(t time.Time) int64 { return int64(t.Sub(genesis)/blockTime) + 1 }

// cometReport is what beacond says of a Berachain key now: silent only when
// the validator signed none of the last blocks commits.
func (w *world) cometReport(network string, pubkey string, blocks int) cometbft.Report {
	now := w.clk.Now()
	h := heightAt(now)
	r := cometbft.Report{Source: "standby", Network: chainIDs[network], Height: h, BlockTime: genesis.Add(time.Duration(h-1) * blockTime),
		Address: strings.ToUpper(strings.TrimPrefix(approval.NormalizePubkey(pubkey), "0x")[:40]), InValidatorSet: true, VotingPower: 1,
		CheckedFrom: h - int64(blocks) + 1, CheckedTo: h}
	if s, ok := w.signed[approval.NormalizePubkey(pubkey)]; ok && heightAt(s.at) >= r.CheckedFrom {
		r.LastSigned = heightAt(s.at)
		r.NotSilent = fmt.Sprintf("the validator signed the commit of height %d", r.LastSigned)
	}
	return r
}

// silentNow is what a standby's chain check says right before an import.
func (w *world) silentNow(validator string, keys []string) (bool, string) {
	v, _ := w.member(validator)
	if v.Chain == "berachain" {
		if len(keys) != 1 {
			return false, "a Berachain validator has one key"
		}
		r := w.cometReport(v.Network, keys[0], cometbft.DefaultBlocks)
		return r.Silent(), r.NotSilent
	}
	r := w.chainReport(v.Network, keys, w.cfg.Approval.SilentEpochs)
	return r.Silent(), r.NotSilent
}

func (w *world) indexOf(pk string) int {
	pk = approval.NormalizePubkey(pk)
	for i, k := range w.allKeys {
		if k == pk {
			return 1000 + i
		}
	}
	return 999_999
}

// keysFake is failover.StandbyKeys: failoverd's client of the standby agents.
type keysFake struct {
	w   *world
	rng *rand.Rand
}

func (k *keysFake) unreachable(what string) error {
	if r := k.w.faults.agent; r > 0 && k.rng.Float64() < r {
		k.w.countFault("agent unreachable")
		k.w.note("  fault: agent %s: no answer", what)
		return fmt.Errorf("agent %s: %w", what, cloud.ErrTransient)
	}
	return nil
}

func (k *keysFake) Chain(_ context.Context, sb cloud.Standby, pubkeys []string, epochs int) (beacon.Report, error) {
	if err := k.w.proc.call(); err != nil {
		return beacon.Report{}, err
	}
	if err := k.unreachable("chain of " + sb.Name); err != nil {
		return beacon.Report{}, err
	}
	if k.w.agentFor(sb.Provider, sb.Name) == nil {
		return beacon.Report{}, fmt.Errorf("agent of %s: no route to host", sb.Name)
	}
	if epochs < beacon.MinSilentEpochs {
		return beacon.Report{}, fmt.Errorf("asked for %d epochs of silence, fewer than %d", epochs, beacon.MinSilentEpochs)
	}
	return k.w.chainReport(k.w.networkOfStandby(sb), pubkeys, epochs), nil
}

// The fakes must stay what the engine asks for: a renamed interface must
// break this build, not quietly refuse every Berachain migration.
var (
	_ failover.StandbyKeys     = (*keysFake)(nil)
	_ failover.CometBFTChainer = (*keysFake)(nil)
	_ failover.HomeFencer      = homeFencer{}
	_ failover.AuditLog        = auditFake{}
	_ failover.Notifier        = (*pagerFake)(nil)
)

// CometBFTChain implements failover.CometBFTChainer: the standby's beacond.
func (k *keysFake) CometBFTChain(_ context.Context, sb cloud.Standby, pubkeys []string, blocks int) (cometbft.Report, error) {
	if err := k.w.proc.call(); err != nil {
		return cometbft.Report{}, err
	}
	if err := k.unreachable("beacond of " + sb.Name); err != nil {
		return cometbft.Report{}, err
	}
	if k.w.agentFor(sb.Provider, sb.Name) == nil {
		return cometbft.Report{}, fmt.Errorf("agent of %s: no route to host", sb.Name)
	}
	if len(pubkeys) != 1 || blocks < cometbft.MinBlocks {
		return cometbft.Report{}, fmt.Errorf("asked about %d keys over %d blocks", len(pubkeys), blocks)
	}
	return k.w.cometReport(k.w.networkOfStandby(sb), pubkeys[0], blocks), nil
}

func (k *keysFake) Signer(_ context.Context, sb cloud.Standby) (failover.SignerState, error) {
	if err := k.w.proc.call(); err != nil {
		return failover.SignerState{}, err
	}
	if err := k.unreachable("status of " + sb.Name); err != nil {
		return failover.SignerState{}, err
	}
	a := k.w.agentFor(sb.Provider, sb.Name)
	if a == nil {
		return failover.SignerState{}, fmt.Errorf("agent of %s: no route to host", sb.Name)
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

func (k *keysFake) Fence(_ context.Context, sb cloud.Standby, s grant.Signed) (failover.FenceReport, error) {
	what := "fence " + sb.Name
	if err := k.w.proc.enter(what); err != nil {
		return failover.FenceReport{}, err
	}
	if err := k.unreachable(what); err != nil {
		return failover.FenceReport{}, err
	}
	a := k.w.agentFor(sb.Provider, sb.Name)
	if a == nil {
		return failover.FenceReport{}, fmt.Errorf("agent of %s: no route to host", sb.Name)
	}
	g, err := grant.Verify(s, k.w.fx.CA.CAPEM(), k.w.clk.Now())
	if err != nil {
		return failover.FenceReport{}, fmt.Errorf("agent refuses the fence: %w", err)
	}
	if g.Action != approval.ActionFailback || g.Standby != sb.Name {
		return failover.FenceReport{}, fmt.Errorf("agent refuses the fence: the grant is %s on %s", g.Action, g.Standby)
	}
	if g.Generation < a.seen || g.Generation == a.seen && a.phase != failover.SignerFenced && a.phase != failover.SignerFailed {
		return failover.FenceReport{}, fmt.Errorf("agent refuses the fence: grant generation %d, seen %d", g.Generation, a.seen)
	}
	// A validator client that will not delete a key keeps signing with it.
	stubborn := ""
	if r := k.w.faults.agent; r > 0 && k.rng.Float64() < r {
		stubborn = approval.NormalizePubkey(g.Pubkeys[0])
		k.w.countFault("fence incomplete")
		k.w.note("  fault: %s's validator client answers error for %s", sb.Name, short(stubborn))
	}
	rep := failover.FenceReport{KeyStatuses: map[string]string{},
		SlashingProtection: `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"` + roots[k.w.networkOfStandby(sb)] + `"},"data":[]}`}
	if v, _ := k.w.member(a.validator); v.Chain == "berachain" {
		rep.SlashingProtection = ""
		rep.PrivValidatorState = fmt.Sprintf(`{"height":"%d","round":0,"step":3}`, heightAt(k.w.clk.Now()))
	}
	for _, pk := range g.Pubkeys {
		st := "not_found"
		switch {
		case approval.NormalizePubkey(pk) == stubborn:
			st = "error"
		case slices.Contains(a.loaded, pk) && a.active:
			st = "deleted"
		case slices.Contains(a.loaded, pk):
			st = "not_active"
		}
		rep.KeyStatuses[pk] = st
	}
	a.seen, a.statuses = g.Generation, rep.KeyStatuses
	a.gateOpen = false
	if stubborn != "" {
		a.phase, a.message = failover.SignerFailed, "fence incomplete: "+short(stubborn)+": error"
		kept := slices.DeleteFunc(slices.Clone(a.loaded), func(pk string) bool { return approval.NormalizePubkey(pk) != stubborn })
		a.loaded = kept
		if len(kept) == 0 {
			a.active = false
		}
	} else {
		a.phase, a.message, a.loaded = failover.SignerFenced, "every key deleted", nil
		if a.active {
			a.active = false
			k.w.note("  %s stops signing: fenced", sb.Name)
		}
	}
	if cerr := k.w.proc.leave(what); cerr != nil {
		return failover.FenceReport{}, cerr
	}
	return rep, nil
}

func (k *keysFake) Endpoint(sb cloud.Standby) (failover.AgentEndpoint, error) {
	if sb.Address == "" {
		return failover.AgentEndpoint{}, fmt.Errorf("standby %s has no address", sb.Name)
	}
	return failover.AgentEndpoint{URL: "https://" + sb.Address, ServerName: sb.Name, CAPEM: string(k.w.fx.CA.CAPEM())}, nil
}

// homeFencer scales a validator's home workload to zero through the cluster
// at its site, which failoverd (off-site) reaches only while the site is.
type homeFencer struct{ w *world }

func (h homeFencer) ScaleToZero(_ context.Context, validator string) (string, error) {
	what := "scale " + validator + " to zero"
	if err := h.w.proc.enter(what); err != nil {
		return "", err
	}
	hm := h.w.homeOf(validator)
	if hm == nil {
		return "", fmt.Errorf("no workload for %s", validator)
	}
	if !hm.site.reachable() {
		return "", fmt.Errorf("the cluster at %s does not answer", hm.site.name)
	}
	hm.scaled = true
	h.w.stopHome(hm, "scaled to zero")
	if err := h.w.proc.leave(what); err != nil {
		return "", err
	}
	return "home workload basement/statefulset/" + validator + " scaled to zero, no pod left", nil
}

// pagerFake is the operator's Alertmanager, where failoverd posts its own
// alerts (FailoverdStandbyReady, FailoverdIncidentFailed). It fails as the
// agents do in a storm; the time of its last failure is kept, so that the
// checker asks for a page only of a failoverd that could have posted one.
type pagerFake struct {
	w   *world
	rng *rand.Rand
}

// page is one alert failoverd posted.
type page struct {
	state failover.State
	at    time.Time
}

func (p *pagerFake) Notify(_ context.Context, inc failover.Incident) error {
	if err := p.w.proc.call(); err != nil {
		return err
	}
	refuse := p.w.refusePosts > 0
	if refuse {
		p.w.refusePosts--
	}
	if r := p.w.faults.agent; refuse || r > 0 && p.rng.Float64() < r {
		p.w.countFault("alertmanager refuses failoverd's alert")
		clear(p.w.pageDue)
		return errors.New("alertmanager: 503 (injected by the simulation)")
	}
	if !p.w.breaks("pager-drops") {
		p.w.pages[inc.ID] = append(p.w.pages[inc.ID], page{state: inc.State, at: p.w.clk.Now()})
	}
	return nil
}

// auditFake is the audit log; the invariants read the store, not the log.
type auditFake struct{}

func (auditFake) Append(context.Context, failover.AuditRecord) error { return nil }

// importOutcome is how a key delivery goes on the standby's validator client.
type importOutcome string

const (
	importOK    importOutcome = "imported"
	importFail  importOutcome = "failed"    // a keystore's password is wrong
	importStuck importOutcome = "importing" // the agent dies halfway
)

// errRefused marks a delivery the agent refused.
var errRefused = errors.New("agent refused")

// deliver is an approver's CLI sending keystores, the approval and the grant
// straight to a standby's agent (failoverd never sees the keys).
func (w *world) deliver(who string, provider, name string, s grant.Signed, approvalText string, sigs []string, keys []string, outcome importOutcome) error {
	a := w.agentFor(provider, name)
	if a == nil {
		return fmt.Errorf("%s: cannot reach the agent of %s/%s", who, provider, name)
	}
	g, err := w.agentAccepts(a, s, approvalText, sigs, keys)
	if err != nil {
		w.stats.add("imports refused by the agent", 1)
		return fmt.Errorf("%w: %v", errRefused, err)
	}
	w.stats.add("imports", 1)
	a.validator, a.seen, a.statuses, a.message = g.Validator, g.Generation, map[string]string{}, ""
	w.checkImport(a, g)
	switch outcome {
	case importOK:
		for _, pk := range g.Pubkeys {
			a.statuses[pk] = "imported"
		}
		a.loaded, a.phase, a.importGen, a.gateOpen = slices.Clone(g.Pubkeys), failover.SignerImported, g.Generation, true
		w.tryStartStandby(a)
	case importFail:
		for _, pk := range g.Pubkeys[1:] {
			a.statuses[pk] = "imported"
		}
		a.statuses[g.Pubkeys[0]] = "error"
		a.loaded, a.phase, a.message = nil, failover.SignerFailed, "keystores[0]: error (invalid password); every key removed again"
	case importStuck:
		a.phase = failover.SignerImporting
	}
	return nil
}

// agentAccepts runs the agent's checks of a delivery (failover/agent's
// doImport), unless the world is told to break them.
func (w *world) agentAccepts(a *agent, s grant.Signed, approvalText string, sigs []string, keys []string) (grant.Grant, error) {
	if w.breaks("agent-skips-checks") {
		g, err := decodeGrant(s)
		if err != nil || g.Generation <= 0 {
			g = grant.Grant{Validator: w.validatorOfKeys(keys), Incident: "unknown", Standby: a.name, Action: approval.ActionMigrate,
				Owner: a.name, Generation: a.seen + 1, Pubkeys: keys}
		}
		return g, nil
	}
	now := w.clk.Now()
	g, err := grant.Verify(s, w.fx.CA.CAPEM(), now)
	if err != nil {
		return grant.Grant{}, fmt.Errorf("failoverd's grant does not verify: %v", err)
	}
	if g.Action != approval.ActionMigrate || g.Standby != a.name || g.Owner != a.name {
		return grant.Grant{}, fmt.Errorf("the grant is %s to %s on %s, not a migration to %s", g.Action, g.Owner, g.Standby, a.name)
	}
	if g.Generation <= a.seen {
		return grant.Grant{}, fmt.Errorf("grant generation %d, this standby has seen %d", g.Generation, a.seen)
	}
	if !g.Covers(keys) {
		return grant.Grant{}, errors.New("the keystores are not exactly the keys the grant names")
	}
	sum := sha256.Sum256([]byte(approvalText))
	if hex.EncodeToString(sum[:]) != g.ApprovalSHA256 {
		return grant.Grant{}, errors.New("the approval is not the one failoverd accepted")
	}
	ap, err := approval.ParseCanonical([]byte(approvalText))
	if err != nil {
		return grant.Grant{}, err
	}
	raw := make([][]byte, len(sigs))
	for i, sg := range sigs {
		raw[i] = []byte(sg)
	}
	used := &approval.MemoryNonces{}
	for _, n := range a.nonces {
		_ = used.Mark(n)
	}
	v := &approval.Verifier{Signers: w.fx.Allowed, Threshold: w.cfg.Approval.Threshold, Now: w.clk.Now, Used: used}
	if _, err := v.Verify(ap, raw, approval.Want{Incident: g.Incident, Standby: a.name, StandbyCertSHA256: certFor(a.provider, a.name),
		Pubkeys: keys, Action: approval.ActionMigrate}); err != nil {
		return grant.Grant{}, err
	}
	if ok, why := w.silentNow(g.Validator, keys); !ok {
		return grant.Grant{}, fmt.Errorf("chain silence not proven right before the import: %s", why)
	}
	a.nonces = append(a.nonces, ap.Nonce)
	return g, nil
}

// short abbreviates a public key for the trace.
func short(pk string) string {
	if len(pk) > 10 {
		return pk[:10] + "…"
	}
	return pk
}
