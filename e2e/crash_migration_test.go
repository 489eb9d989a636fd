package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failoverd/failoverd/cloud/gcp/gcpfake"
	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/agent"
	"github.com/failoverd/failoverd/failover/agent/agenttest"
	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/beacon/beacontest"
	"github.com/failoverd/failoverd/failover/httpapi"
	"github.com/failoverd/failoverd/failover/keymanager/keymanagertest"
)

// TestCrashDuringKeyMoves SIGKILLs the real failoverd, and separately the
// real standby agent, at each step of a migration and of a failback, and
// restarts it on the same data dir. The crash points, in the order
// failover/migration.go (Engine.Approve, migrating, failingBack) and the
// agent (doImport, doFence) take them:
//
//	M1 approval verified, its nonce spent and recorded; preconditions in flight
//	   (the approval's chain-silence check held at the standby's beacon node)
//	M2 intent recorded (incident migrating with its migration record), the
//	   ownership swap not yet done (the transition's page held at Alertmanager)
//	M3 ownership swapped and grant issued; the answer never reaches the CLI
//	   (failoverd killed between answering and the CLI reading it)
//	M4 keys in flight: the agent's POST /eth/v1/keystores held at the standby's
//	   validator client; failoverd killed, the import lands while it is down
//	M5 the same, but the agent is killed: the import lands, the agent never
//	   records it
//	M6 as M2, but failoverd stays down longer than the approver's CLI waits
//	F1 failback approved (failing-back recorded), fence not yet sent (every
//	   cloud read held from the approval on)
//	F2 fence in flight: the agent's DELETE /eth/v1/keystores held; failoverd
//	   killed, the delete lands, the agent's answer is lost
//	F3 fence recorded; waiting for chain silence (liveness held)
//	F4 ownership back home; the standby's delete in flight at the GCP fake
//	F5 fence in flight, the agent killed
//
// At M1, M2, M3 and F1 failoverd dies with the approver's CLI waiting for
// its answer and comes back while the CLI still polls for it: the CLI must
// learn from the incident's record what became of its approval (its nonce)
// and carry on, or say it was not recorded; at M6 it must say the outcome
// is unknown, never that the approval was refused.
//
// After every crash and restart: one owner, home gate and standby gate
// agree with it (and both stay shut while failoverd is down), the
// generation never goes back, a key is never active on two validator
// clients nor imported twice, one instance is ever created and none is left
// after the close, every carried-out move has an accepted audit record, and
// the incident either finishes or stops as failed with a reason and a page
// for a person.
func TestCrashDuringKeyMoves(t *testing.T) {
	bin, _ := binaries(t)
	t.Run("migrate then fail back (M1 M4 F2 F3 F4)", func(t *testing.T) {
		t.Parallel()
		cmMigrateAndFailBack(t, bin)
	})
	t.Run("intent before the ownership swap (M2 F1)", func(t *testing.T) {
		t.Parallel()
		cmIntentBeforeSwap(t, bin)
	})
	t.Run("grant issued, answer lost (M3)", func(t *testing.T) {
		t.Parallel()
		cmAnswerLost(t, bin)
	})
	t.Run("agent killed mid-import and mid-fence (M5 F5)", func(t *testing.T) {
		t.Parallel()
		cmAgentKilled(t, bin)
	})
	t.Run("failoverd down longer than the CLI waits (M6)", func(t *testing.T) {
		t.Parallel()
		cmOutlivesTheCLI(t, bin)
	})
}

func cmMigrateAndFailBack(t *testing.T, bin string) {
	r := newCMRig(t, bin, 30*time.Second)

	// M1: a signed approval the test keeps, so it can replay it.
	file := filepath.Join(t.TempDir(), "approval.txt")
	text := r.printApproval()
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := approval.ParseCanonical([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	r.beacon.arm(cmIsLiveness)
	first := r.approve("--approval", file)
	r.beacon.wait(t, "the approval's chain-silence check")
	inc := r.incident()
	if inc.State != failover.StateReady || !slices.Contains(inc.Nonces, a.Nonce) || !historyMentions(inc, a.Nonce, "checking preconditions") {
		t.Fatalf("M1: the nonce is not recorded before the preconditions: %s %v", inc.State, inc.Nonces)
	}
	r.expectOwner(r.check("M1 preconditions in flight"), failover.OwnerHome, 0)
	r.kill("M1")
	r.beacon.open()
	r.restart() // while the CLI polls for the answer it lost
	if out, err := first.wait(t); err == nil || !strings.Contains(out, "did not record this approval") ||
		!strings.Contains(out, "slashing protection is saved in") {
		t.Fatalf("M1: the approver's CLI must learn that its approval was not recorded, and say where home's slashing protection is: %v", err)
	}
	inc = r.incident()
	if inc.State != failover.StateReady || !slices.Contains(inc.Nonces, a.Nonce) {
		t.Fatalf("M1 after restart: %s, nonces %v", inc.State, inc.Nonces)
	}
	r.expectOwner(r.check("M1 after restart"), failover.OwnerHome, 0)
	if out, err := r.approve("--approval", file).wait(t); err == nil || !strings.Contains(out, "already used") {
		t.Fatalf("M1: the approval whose nonce was spent before the crash was not refused as replayed: %v", err)
	}
	if !r.audited(a.Nonce, "refused") {
		t.Fatal("M1: the replay's refusal is not in the audit log")
	}

	// M4: a new approval; failoverd dies while the keys are on their way.
	r.vc.arm(cmIsImport)
	move := r.approve()
	r.vc.wait(t, "the standby's key import")
	if inc := r.incident(); inc.State != failover.StateMigrating {
		t.Fatalf("M4: importing while the incident is %s", inc.State)
	}
	r.expectOwner(r.check("M4 import in flight"), r.standby, 1)
	r.kill("M4")
	r.vc.open()
	r.waitAgent(1, failover.SignerImported)
	r.restart()
	if out, err := move.wait(t); err != nil || !strings.Contains(out, validatorKey+"  imported") || !strings.Contains(out, "is migrated") {
		t.Fatalf("M4: approve-migration across the crash: %v", err)
	}
	r.waitState(failover.StateMigrated)
	r.expectOwner(r.check("M4 after restart"), r.standby, 1)
	if !r.standbyKM.Active(validatorKey) {
		t.Fatal("M4: migrated but the standby does not sign")
	}

	// F2: failoverd dies while the standby's validator client deletes the keys.
	r.vc.arm(cmIsDelete)
	back := r.failback()
	r.vc.wait(t, "the standby's fence")
	if inc := r.incident(); inc.State != failover.StateFailingBack {
		t.Fatalf("F2: fencing while the incident is %s", inc.State)
	}
	r.expectOwner(r.check("F2 fence in flight"), r.standby, 1)
	r.kill("F2")
	r.vc.open()
	waitFor(t, "the held delete to land", 20*time.Second, func() (bool, string) {
		return !r.standbyKM.Active(validatorKey), "standby still active"
	})

	// F3: fenced and recorded; failoverd dies while it checks chain silence.
	r.beacon.arm(cmIsLiveness)
	r.restart()
	r.beacon.wait(t, "the failback's chain-silence check")
	m := r.lastMove()
	if m.KeyStatuses == nil || !strings.Contains(m.SlashingProtection, strings.ToLower(validatorKey)) {
		t.Fatalf("F3: the fence after the crash is not recorded with the standby's slashing protection: %+v", m)
	}
	r.expectOwner(r.check("F3 waiting for chain silence"), r.standby, 1)
	fences := r.standbyCalls(http.MethodDelete)
	r.kill("F3")

	// F4: the right is home; failoverd dies while the standby is deleted.
	r.cloud.arm(cmIsInstanceDelete)
	r.beacon.open()
	r.restart()
	r.cloud.wait(t, "the standby's delete")
	if inc := r.incident(); inc.Intent == nil || inc.Intent.Action != "delete-standby" {
		t.Fatalf("F4: deleting the standby without recording the intent: %+v", inc.Intent)
	}
	r.expectOwner(r.check("F4 standby delete in flight"), failover.OwnerHome, 2)
	r.kill("F4")
	r.cloud.open()
	r.restart()
	if out, err := back.wait(t); err != nil || !strings.Contains(out, "home imported 1 keys") {
		t.Fatalf("failback across three crashes: %v", err)
	}
	if n := r.standbyCalls(http.MethodDelete); n != fences {
		t.Fatalf("the standby was fenced again after the fence was recorded (%d deletes, %d before)", n, fences)
	}
	r.checkClosed("closed", "confirming,provisioning,syncing,ready,migrating,migrated,failing-back,closed", true)
	if !r.homeKM.Active(validatorKey) {
		t.Fatal("home does not sign after the failback")
	}
}

func cmIntentBeforeSwap(t *testing.T, bin string) {
	r := newCMRig(t, bin, 30*time.Second)

	// M2: failoverd comes back while the CLI polls; the reconciler finishes
	// the recorded swap and the CLI, finding its nonce in the record, goes
	// on with the plan's grant. Its import is held so that a second
	// approval meets the incident still migrating.
	move, m := r.crashAtIntent("M2")
	r.vc.arm(cmIsImport)
	r.restart()
	r.vc.wait(t, "the key import of the CLI that lost its answer")
	if inc := r.incident(); inc.State != failover.StateMigrating {
		t.Fatalf("M2: importing while the incident is %s", inc.State)
	}
	r.expectOwner(r.check("M2 swap finished by the reconciler, keys in flight"), r.standby, 1)
	if recs := r.auditRecords(m.Nonce, "accepted"); len(recs) != 1 || !strings.Contains(recs[0].Reason, "reconciler") {
		t.Errorf("M2: the signing right moved (generation %d) on alice's approval (nonce %s) by the reconciler after the "+
			"crash; want exactly one accepted audit record saying so, got %+v", m.Generation, m.Nonce, recs)
	}
	if out, err := r.approve().wait(t); err == nil || !strings.Contains(out, "is migrating") {
		t.Fatalf("M2: a second approval while migrating was not refused: %v", err)
	}
	r.vc.open()
	out, err := move.wait(t)
	if err != nil || !strings.Contains(out, "had accepted the approval") || !strings.Contains(out, validatorKey+"  imported") ||
		!strings.Contains(out, "is migrated") {
		t.Fatalf("M2: approve-migration must recover the lost answer from the incident's record, deliver the keys and see the incident migrated: %v", err)
	}
	r.waitState(failover.StateMigrated)
	r.expectOwner(r.check("M2 migrated"), r.standby, 1)
	if !r.standbyKM.Active(validatorKey) {
		t.Fatal("M2: migrated but the standby does not sign")
	}

	// F1: the failback is accepted; every cloud read from then on is held,
	// and each way to the fence goes through one (Approve's own answer
	// too, so the CLI gets none).
	r.relay.set(func(req *http.Request) {
		if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/approvals") {
			r.cloud.arm(cmIsInstanceRead)
		}
	}, nil)
	back := r.failback()
	r.waitState(failover.StateFailingBack)
	if n := r.standbyCalls(http.MethodDelete); n != 0 {
		t.Fatalf("F1: %d fences sent before the crash point", n)
	}
	r.expectOwner(r.check("F1 failback accepted, fence not sent"), r.standby, 1)
	r.kill("F1")
	r.relay.set(nil, nil)
	r.cloud.open()
	r.restart() // while the CLI polls for the answer it lost
	if out, err := back.wait(t); err != nil || !strings.Contains(out, "had accepted the failback") || !strings.Contains(out, "home imported 1 keys") {
		t.Fatalf("F1: failback must recover the lost answer from the incident's record and finish: %v", err)
	}
	r.checkClosed("closed", "confirming,provisioning,syncing,ready,migrating,migrated,failing-back,closed", true)
}

func cmAnswerLost(t *testing.T, bin string) {
	r := newCMRig(t, bin, 30*time.Second)

	// M3: failoverd answered the approval; it dies before the CLI reads it.
	answered, killed := make(chan struct{}), make(chan struct{})
	r.relay.set(nil, func(req *http.Request, status int) bool {
		if req.Method != http.MethodPost || !strings.HasSuffix(req.URL.Path, "/approvals") || status != http.StatusOK {
			return true
		}
		close(answered)
		select {
		case <-killed:
		case <-time.After(time.Minute):
		}
		return false
	})
	move := r.approve()
	select {
	case <-answered:
	case <-time.After(40 * time.Second):
		t.Fatal("M3: the approval was never answered")
	}
	if inc := r.incident(); inc.State != failover.StateMigrating {
		t.Fatalf("M3: answered while %s", inc.State)
	}
	r.expectOwner(r.check("M3 grant issued, answer lost"), r.standby, 1)
	r.kill("M3")
	close(killed)
	r.relay.set(nil, nil)
	r.restart() // while the CLI polls for the answer it lost
	out, err := move.wait(t)
	if strings.Contains(out, "failoverd: refused:") {
		t.Errorf("M3: failoverd accepted the approval and moved the signing right to %s, but approve-migration, which lost "+
			"the answer, tells the approver it was refused", r.standby)
	}
	if err != nil || !strings.Contains(out, "had accepted the approval") || !strings.Contains(out, validatorKey+"  imported") ||
		!strings.Contains(out, "is migrated") {
		t.Fatalf("M3: approve-migration must recover the lost answer from the incident's record, deliver the keys and see the incident migrated: %v", err)
	}
	r.waitState(failover.StateMigrated)
	r.expectOwner(r.check("M3 migrated"), r.standby, 1)
	m := r.lastMove()
	if recs := r.auditRecords(m.Nonce, "accepted"); len(recs) != 1 {
		t.Errorf("M3: want exactly one accepted audit record of the approval (nonce %s), got %+v", m.Nonce, recs)
	}
	if !r.standbyKM.Active(validatorKey) {
		t.Fatal("M3: migrated but the standby does not sign")
	}
	if out, err := r.failback().wait(t); err != nil || !strings.Contains(out, "home imported 1 keys") {
		t.Fatalf("M3: failback: %v", err)
	}
	r.checkClosed("closed", "confirming,provisioning,syncing,ready,migrating,migrated,failing-back,closed", true)
}

// cmOutlivesTheCLI: failoverd dies at M2 and stays down until the
// approver's CLI has given up. The CLI cannot know what became of the
// approval, so it must say so rather than "refused" (which invites putting
// the keys back at home while failoverd may be moving the right away).
func cmOutlivesTheCLI(t *testing.T, bin string) {
	r := newCMRig(t, bin, 10*time.Second)

	const patience = 5 * time.Second
	move, m := r.crashAtIntent("M6", "--wait", patience.String())
	killed := time.Now()
	out, err := move.wait(t)
	waited := time.Since(killed)
	t.Logf("M6: the CLI gave up %s after failoverd died (--wait %s)", waited.Round(time.Second), patience)
	if err == nil || strings.Contains(out, "refused") || !strings.Contains(out, "the outcome is unknown") ||
		!strings.Contains(out, "failoverd incidents show "+cmIncident) || !strings.Contains(out, "failoverd owners") ||
		!strings.Contains(out, "slashing protection is saved in") {
		t.Fatalf("M6: with failoverd gone, approve-migration must fail saying the outcome is unknown (not refused), what "+
			"to look at, and where home's slashing protection is: %v", err)
	}
	if waited < patience {
		t.Fatalf("M6: the CLI gave up %s after failoverd died, before its --wait %s", waited, patience)
	}
	r.gatesShut("M6 the CLI gave up, failoverd still down")

	// failoverd comes back with nobody left to deliver the keys: the
	// reconciler finishes the recorded swap (home is fenced, the standby
	// has no keys: nobody signs), finds the import overdue and stops for a
	// person.
	r.restart()
	r.waitOwner(r.standby, 1)
	r.stopsForAPerson("M6")
	if recs := r.auditRecords(m.Nonce, "accepted"); len(recs) != 1 || !strings.Contains(recs[0].Reason, "reconciler") {
		t.Errorf("M6: the signing right moved (generation %d) on alice's approval (nonce %s) by the reconciler after the "+
			"crash; want exactly one accepted audit record saying so, got %+v", m.Generation, m.Nonce, recs)
	}
	// The approver, told to look before anything else, tries again anyway.
	if out, err := r.approve().wait(t); err == nil || !strings.Contains(out, "expects a failback approval") {
		t.Fatalf("M6: approve-migration run again on the stopped incident was not refused with what to do instead: %v", err)
	}
	if n := r.standbyCalls(http.MethodPost); n != 0 {
		t.Fatalf("M6: %d imports reached the standby though nobody delivered keys", n)
	}
	if out, err := r.failback().wait(t); err != nil || !strings.Contains(out, "home imported 1 keys") {
		t.Fatalf("M6: failback: %v", err)
	}
	r.checkClosed("closed", "confirming,provisioning,syncing,ready,migrating,failed,failing-back,closed", false)
}

// crashAtIntent SIGKILLs failoverd at M2: an approve-migration (with
// extra flags) is recorded as the incident's migration, the ownership swap
// not yet done. It returns the CLI, still waiting for its answer, and the
// recorded migration; failoverd stays down.
func (r *cmRig) crashAtIntent(point string, extra ...string) (*cmCLI, failover.Migration) {
	t := r.t
	t.Helper()
	// The transition to migrating is stored; its page is held, so
	// Approve's swap that follows it has not happened. The reconciler would
	// do the swap itself at its next poll: with its timers an hour apart
	// only Approve moves the validator on.
	normal := r.d.env
	r.d.kill()
	r.d.env = append(slices.Clone(normal), "FAILOVERD_ENGINE_POLL_INTERVAL=1h", "FAILOVERD_ENGINE_RESYNC_INTERVAL=1h")
	restarted := time.Now()
	r.restart()
	waitFor(t, "the reconciler's pass after the restart", 20*time.Second, func() (bool, string) {
		inc := r.incident()
		return inc.Standby.Sync != nil && inc.Standby.Sync.CheckedAt.After(restarted), "not yet"
	})
	r.am.hold.arm(func(_, _, body string) bool { return strings.Contains(body, "migration approved") })
	move := r.approve(extra...)
	r.am.hold.wait(t, "the page of the migrating transition")
	inc := r.incident()
	m, ok := inc.CurrentMigration()
	if inc.State != failover.StateMigrating || len(inc.Migrations) != 1 || !ok {
		t.Fatalf("%s: %s with %d migrations", point, inc.State, len(inc.Migrations))
	}
	// The record still says home, but the gate says nobody: home was
	// fenced for this move and must not start again in this window.
	r.expectOwner(r.check(point+" intent recorded, swap not done"), failover.OwnerNobody, 0)
	r.kill(point)
	r.am.hold.open()
	r.d.env = normal
	return move, m
}

func cmAgentKilled(t *testing.T, bin string) {
	r := newCMRig(t, bin, 10*time.Second)

	// M5: the agent dies while its import is at the validator client, which
	// carries it out.
	r.vc.arm(cmIsImport)
	move := r.approve()
	r.vc.wait(t, "the standby's key import")
	r.expectOwner(r.check("M5 import in flight"), r.standby, 1)
	r.killAgent()
	r.vc.open()
	waitFor(t, "the held import to land", 20*time.Second, func() (bool, string) {
		return r.standbyKM.Active(validatorKey), "not active"
	})
	if _, err := move.wait(t); err == nil {
		t.Fatal("M5: the CLI reports success though the agent died")
	}
	r.startAgent()
	r.expectOwner(r.check("M5 agent restarted"), r.standby, 1)
	r.stopsForAPerson("M5")

	// F5: the agent dies while its fence is at the validator client.
	r.vc.arm(cmIsDelete)
	back := r.failback()
	r.vc.wait(t, "the standby's fence")
	r.expectOwner(r.check("F5 fence in flight"), r.standby, 1)
	r.killAgent()
	r.vc.open()
	r.startAgent()
	if out, err := back.wait(t); err != nil || !strings.Contains(out, "home imported 1 keys") {
		t.Fatalf("F5: failback: %v", err)
	}
	r.checkClosed("closed", "confirming,provisioning,syncing,ready,migrating,failed,failing-back,closed", true)
}

const (
	cmValidator = "eth-mainnet-1"
	cmIncident  = "eth-mainnet-1-1"
)

func cmIsLiveness(method, path, _ string) bool {
	return method == http.MethodPost && strings.HasPrefix(path, "/eth/v1/validator/liveness/")
}
func cmIsImport(method, path, _ string) bool {
	return method == http.MethodPost && path == "/eth/v1/keystores"
}
func cmIsDelete(method, path, _ string) bool {
	return method == http.MethodDelete && path == "/eth/v1/keystores"
}
func cmIsInstanceDelete(method, path, _ string) bool {
	return method == http.MethodDelete && strings.Contains(path, "/instances/fo-")
}
func cmIsInstanceRead(method, path, _ string) bool {
	return method == http.MethodGet && strings.Contains(path, "/instances")
}

// cmHold keeps every request that matches while it is armed until open:
// the test kills a process while its request is on the wire, and the
// server then carries it out with nobody left to hear the answer.
type cmHold struct {
	mu      sync.Mutex
	match   func(method, path, body string) bool
	arrived chan struct{}
	release chan struct{}
}

func (h *cmHold) arm(match func(method, path, body string) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.match != nil {
		close(h.release)
	}
	h.match, h.arrived, h.release = match, make(chan struct{}), make(chan struct{})
}

func (h *cmHold) check(method, path, body string) {
	h.mu.Lock()
	if h.match == nil || !h.match(method, path, body) {
		h.mu.Unlock()
		return
	}
	select {
	case <-h.arrived:
	default:
		close(h.arrived)
	}
	release := h.release
	h.mu.Unlock()
	<-release
}

func (h *cmHold) wait(t *testing.T, what string) {
	t.Helper()
	h.mu.Lock()
	arrived := h.arrived
	h.mu.Unlock()
	select {
	case <-arrived:
	case <-time.After(40 * time.Second):
		t.Fatalf("%s never arrived", what)
	}
}

func (h *cmHold) open() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.match != nil {
		close(h.release)
		h.match = nil
	}
}

// cmProxy relays HTTP to a target through a hold. carryOut forwards a held
// request even when its sender is gone, as a validator client that already
// read the request would carry it out.
type cmProxy struct {
	url      string
	target   func(path string) string
	hold     *cmHold
	carryOut bool

	mu        sync.Mutex
	onRequest func(*http.Request)
	onAnswer  func(*http.Request, int) bool // false: the answer is lost
}

func newCMProxy(t *testing.T, target func(string) string, hold *cmHold, carryOut bool) *cmProxy {
	p := &cmProxy{target: target, hold: hold, carryOut: carryOut}
	srv := httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(srv.Close)
	p.url = srv.URL
	return p
}

func (p *cmProxy) set(onRequest func(*http.Request), onAnswer func(*http.Request, int) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.onRequest, p.onAnswer = onRequest, onAnswer
}

func (p *cmProxy) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	onRequest, onAnswer := p.onRequest, p.onAnswer
	p.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	if onRequest != nil {
		onRequest(r)
	}
	if p.hold != nil {
		p.hold.check(r.Method, r.URL.Path, string(body))
	}
	ctx := r.Context()
	if p.carryOut {
		ctx = context.WithoutCancel(ctx)
	}
	out, err := http.NewRequestWithContext(ctx, r.Method, p.target(r.URL.Path)+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	resp, err := http.DefaultClient.Do(out)
	if err != nil {
		cmHangUp(w)
		return
	}
	rb, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || onAnswer != nil && !onAnswer(r, resp.StatusCode) {
		cmHangUp(w)
		return
	}
	maps.Copy(w.Header(), resp.Header)
	w.WriteHeader(resp.StatusCode)
	_, _ = w.Write(rb)
}

// cmHangUp closes the sender's connection without an answer, as a process
// that dies mid-request does.
func cmHangUp(w http.ResponseWriter) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		http.Error(w, "relay: "+err.Error(), http.StatusBadGateway)
		return
	}
	c.Close()
}

// cmAlertmanager receives failoverd's own pages.
type cmAlertmanager struct {
	url    string
	hold   cmHold
	mu     sync.Mutex
	firing map[string]bool // alertname/incident
}

func newCMAlertmanager(t *testing.T) *cmAlertmanager {
	a := &cmAlertmanager{firing: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		a.hold.check(r.Method, r.URL.Path, string(body))
		var alerts []struct {
			Labels map[string]string `json:"labels"`
			EndsAt time.Time         `json:"endsAt"`
		}
		if err := json.Unmarshal(body, &alerts); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		a.mu.Lock()
		for _, al := range alerts {
			a.firing[al.Labels["alertname"]+"/"+al.Labels["incident"]] = al.EndsAt.After(time.Now())
		}
		a.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	a.url = srv.URL
	return a
}

func (a *cmAlertmanager) paging(alertname, incident string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.firing[alertname+"/"+incident]
}

// cmRig is one validator with a ready GCP standby, its real agent, the
// chain, both validator clients' Keymanager APIs and an approver.
type cmRig struct {
	t         *testing.T
	bin       string
	d         *daemon
	api       *httpapi.Client
	relay     *cmProxy // the approver's CLI reaches failoverd through it
	fake      *gcpfake.Server
	cloud     cmHold // requests to GCP
	beacon    cmHold // requests to the standby's beacon node
	vc        cmHold // requests to the standby's validator client
	am        *cmAlertmanager
	homeKM    *keymanagertest.Server
	standbyKM *keymanagertest.Server
	alice     approver
	agentArgs []string
	agent     *proc
	agentRuns int
	control   string
	state     string
	standby   string
	keysDir   string
	pwFile    string
	outDir    string
	homeToken string
	gen       int64 // the highest ownership generation seen
	agentGen  int64 // the highest generation the agent recorded
}

// newCMRig: importTimeout is how long failoverd waits, from the approval,
// for the standby to report the keys imported.
func newCMRig(t *testing.T, bin string, importTimeout time.Duration) *cmRig {
	t.Helper()
	r := &cmRig{t: t, bin: bin, alice: newApprover(t, "alice@example.org")}
	r.fake = gcpfake.New()
	t.Cleanup(r.fake.Close)
	r.fake.SetExternalIP("127.0.0.1")
	r.fake.Hook(func(req *http.Request) { r.cloud.check(req.Method, req.URL.Path, "") })
	r.am = newCMAlertmanager(t)

	// The chain: the validator is active, silent, and its clock is at epoch 1000.
	chain := beacontest.New(t)
	const spe = 32 * 12
	genesis := uint64(time.Now().Unix()) - 1000*spe - spe/2
	chain.SetGenesis(genesis, beacontest.MainnetRoot, beacontest.MainnetFork)
	chain.SetCurrentEpoch(1000)
	chain.AddValidator(beacontest.Validator{Index: 4242, Pubkey: validatorKey, Status: "active_ongoing"})
	node := agenttest.NewBeacon(t, agenttest.SyncedBeacon())
	exe := agenttest.NewExecution(t, agenttest.SyncedExecution())
	beaconURL := newCMProxy(t, func(path string) string {
		if strings.HasPrefix(path, "/eth/v1/node/") {
			return node.URL
		}
		return chain.URL
	}, &r.beacon, false).url

	r.standbyKM = keymanagertest.New(t)
	r.standbyKM.SetRoot(beacontest.MainnetRoot)
	r.homeKM = keymanagertest.New(t)
	r.homeKM.SetRoot(beacontest.MainnetRoot)
	r.homeKM.AddKey(validatorKey, keymanagertest.History{Blocks: []uint64{31000}})
	vcURL := newCMProxy(t, func(string) string { return r.standbyKM.URL }, &r.vc, true).url
	// Held requests must go before the servers close.
	t.Cleanup(func() { r.cloud.open(); r.beacon.open(); r.vc.open(); r.am.hold.open() })

	dir := t.TempDir()
	port, agentPort := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:%d
dataDir: %s
engine:
  confirmFor: 0s
  pollInterval: 200ms
  resyncInterval: 500ms
  backoffBase: 200ms
  backoffMax: 1s
  callTimeout: 20s
cloud:
  providers: [gcp]
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
  importTimeout: %s
notify:
  alertmanagerURL: %s
fleet:
  - name: %s
    chain: ethereum
    network: mainnet
    site: basement
    pubkeys: [%s]
    clients:
      execution: {name: geth, version: v1.16.7}
      consensus: {name: lighthouse, version: v8.0.1}
`, port, filepath.Join(dir, "data"), r.fake.URL(), agentPort, r.alice.signersLine, importTimeout, r.am.url, cmValidator, validatorKey)
	cfgFile := filepath.Join(dir, "failoverd.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	r.d = &daemon{t: t, bin: bin, cfg: cfgFile, base: fmt.Sprintf("http://127.0.0.1:%d", port),
		env: []string{"FAILOVERD_WEBHOOK_TOKEN=" + webhookToken, "FAILOVERD_API_TOKEN=" + apiToken}}
	var err error
	if r.api, err = httpapi.NewClient(r.d.base, apiToken, nil); err != nil {
		t.Fatal(err)
	}
	r.relay = newCMProxy(t, func(string) string { return r.d.base }, nil, false)
	r.d.start()
	r.d.fire()
	inc := r.d.waitState("syncing", "waiting for its agent")
	r.standby = inc.Standby.Name
	script := ""
	for _, item := range r.fake.Instance("europe-west4-a", r.standby).GetMetadata().GetItems() {
		if item.GetKey() == "startup-script" {
			script = item.GetValue()
		}
	}
	ca, cert, key := credentialsFromBootstrap(t, script, t.TempDir())

	signers := filepath.Join(t.TempDir(), "allowed_signers")
	standbyToken := filepath.Join(t.TempDir(), "api-token.txt")
	r.homeToken = filepath.Join(t.TempDir(), "home-api-token.txt")
	for f, s := range map[string]string{signers: r.alice.signersLine, standbyToken: r.standbyKM.Token, r.homeToken: r.homeKM.Token} {
		if err := os.WriteFile(f, []byte(s+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r.control, r.state = t.TempDir(), t.TempDir()
	r.agentArgs = []string{"agent", "--listen", fmt.Sprintf("127.0.0.1:%d", agentPort),
		"--tls-cert", cert, "--tls-key", key, "--client-ca", ca,
		"--execution-url", exe.URL, "--beacon-url", beaconURL, "--data-path", t.TempDir(),
		"--control-dir", r.control, "--allowed-signers", signers, "--keymanager-url", vcURL,
		"--keymanager-token-file", standbyToken, "--state-dir", r.state}
	r.startAgent()
	r.d.waitState("ready", "in sync")

	r.keysDir, r.outDir = t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(r.keysDir, "keystore-m_12381_3600_0_0_0.json"),
		[]byte(keymanagertest.NewKeystore(validatorKey, canaryPassword)), 0o600); err != nil {
		t.Fatal(err)
	}
	r.pwFile = filepath.Join(t.TempDir(), "password.txt")
	if err := os.WriteFile(r.pwFile, []byte(canaryPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.check("ready")
	return r
}

func (r *cmRig) startAgent() {
	r.t.Helper()
	r.agentRuns++
	r.agent = start(r.t, fmt.Sprintf("agent-run-%d", r.agentRuns), nil, r.bin, r.agentArgs...)
	waitFor(r.t, "the agent listening", 20*time.Second, func() (bool, string) {
		c, err := net.DialTimeout("tcp", r.agentArgs[2], time.Second)
		if err != nil {
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
}

func (r *cmRig) killAgent() {
	r.t.Helper()
	if err := r.agent.cmd.Process.Kill(); err != nil {
		r.t.Fatal(err)
	}
	_ = r.agent.cmd.Wait()
	r.t.Logf("agent killed (SIGKILL)")
}

// kill is SIGKILL of failoverd; while it is down no gate may open.
func (r *cmRig) kill(point string) {
	r.t.Helper()
	r.d.kill()
	r.t.Logf("%s: failoverd killed (SIGKILL)", point)
	r.gatesShut(point)
}

// gatesShut: with failoverd down, neither gate may open.
func (r *cmRig) gatesShut(point string) {
	r.t.Helper()
	for _, as := range [][]string{{"--as", "home"}, {"--as", "standby", "--standby", r.standby}} {
		if out, err := cli(r.t, r.bin, r.d.base, append([]string{"gate", "--validator", cmValidator}, as...)...); err == nil {
			r.t.Fatalf("%s: gate %v opened while failoverd was down: %s", point, as, out)
		}
	}
}

func (r *cmRig) restart() {
	r.t.Helper()
	r.d.start()
}

// cmCLI is a failoverd command running as an approver would run it.
type cmCLI struct {
	out  *proc
	done chan struct{}
	err  error
}

func (r *cmRig) cliStart(args ...string) *cmCLI {
	c := &cmCLI{out: &proc{name: "cli"}, done: make(chan struct{})}
	cmd := exec.Command(r.bin, args...)
	cmd.Env = append(os.Environ(), "FAILOVERD_SERVER="+r.relay.url, "FAILOVERD_API_TOKEN="+apiToken, "SSH_AUTH_SOCK=")
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	r.t.Logf("$ failoverd %s &", strings.Join(args, " "))
	go func() { c.err = cmd.Wait(); close(c.done) }()
	r.t.Cleanup(func() { _ = cmd.Process.Kill(); <-c.done })
	return c
}

func (c *cmCLI) wait(t *testing.T) (string, error) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(90 * time.Second):
		t.Fatalf("the CLI did not finish:\n%s", c.out.output())
	}
	t.Logf("CLI finished (%v):\n%s", c.err, c.out.output())
	return c.out.output(), c.err
}

func (r *cmRig) moveFlags() []string {
	return []string{"--signing-key", r.alice.keyFile, "--approver", r.alice.principal, "--keystores", r.keysDir,
		"--password-file", r.pwFile, "--out-dir", r.outDir, "--home-keymanager", r.homeKM.URL,
		"--home-keymanager-token-file", r.homeToken, "--wait", "60s"}
}

func (r *cmRig) approve(extra ...string) *cmCLI {
	return r.cliStart(append(append([]string{"approve-migration", cmIncident}, r.moveFlags()...), extra...)...)
}

func (r *cmRig) failback() *cmCLI {
	return r.cliStart(append([]string{"failback", cmIncident}, r.moveFlags()...)...)
}

// printApproval builds an approval without sending it.
func (r *cmRig) printApproval() string {
	r.t.Helper()
	cmd := exec.Command(r.bin, "approve-migration", cmIncident, "--print-approval", "--approver", r.alice.principal,
		"--keystores", r.keysDir, "--password-file", r.pwFile)
	cmd.Env = append(os.Environ(), "FAILOVERD_SERVER="+r.d.base, "FAILOVERD_API_TOKEN="+apiToken)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		r.t.Fatalf("print-approval: %v\n%s", err, stderr.String())
	}
	return string(out)
}

func (r *cmRig) incident() failover.Incident {
	r.t.Helper()
	inc, err := r.api.GetIncident(context.Background(), cmIncident)
	if err != nil {
		r.t.Fatal(err)
	}
	return inc
}

func (r *cmRig) lastMove() failover.Migration {
	r.t.Helper()
	m, ok := r.incident().CurrentMigration()
	if !ok {
		r.t.Fatal("no migration recorded")
	}
	return m
}

func (r *cmRig) waitState(state failover.State) failover.Incident {
	r.t.Helper()
	var inc failover.Incident
	waitFor(r.t, "incident "+string(state), 40*time.Second, func() (bool, string) {
		var err error
		inc, err = r.api.GetIncident(context.Background(), cmIncident)
		if err != nil {
			return false, err.Error()
		}
		return inc.State == state, fmt.Sprintf("%s: %s", inc.State, inc.Reason)
	})
	return inc
}

func (r *cmRig) waitOwner(owner string, gen int64) {
	r.t.Helper()
	waitFor(r.t, fmt.Sprintf("owner %s at generation %d", owner, gen), 20*time.Second, func() (bool, string) {
		o, err := r.api.Owner(context.Background(), cmValidator)
		if err != nil {
			return false, err.Error()
		}
		return o.Current() == owner && o.Generation == gen, fmt.Sprintf("%s at %d", o.Current(), o.Generation)
	})
}

func (r *cmRig) expectOwner(o failover.Ownership, owner string, gen int64) {
	r.t.Helper()
	if o.Current() != owner || o.Generation != gen {
		r.t.Fatalf("owner %s at generation %d, want %s at %d", o.Current(), o.Generation, owner, gen)
	}
}

// agentSigner is the signer state the agent keeps across its restarts.
func (r *cmRig) agentSigner() (gen int64, phase string) {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(r.state, "signer.json"))
	if os.IsNotExist(err) {
		return 0, ""
	}
	if err != nil {
		r.t.Fatal(err)
	}
	var st failover.SignerState
	if err := json.Unmarshal(b, &st); err != nil {
		r.t.Fatalf("the agent's signer state: %v", err)
	}
	return st.Generation, st.Phase
}

func (r *cmRig) waitAgent(gen int64, phase string) {
	r.t.Helper()
	waitFor(r.t, fmt.Sprintf("the agent at generation %d, %s", gen, phase), 20*time.Second, func() (bool, string) {
		g, p := r.agentSigner()
		return g == gen && p == phase, fmt.Sprintf("generation %d, %q", g, p)
	})
}

// auditRecords returns failoverd's audit records of the approval with
// nonce and outcome.
func (r *cmRig) auditRecords(nonce, outcome string) []failover.AuditRecord {
	r.t.Helper()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(r.d.cfg), "data", "audit.log"))
	if err != nil && !os.IsNotExist(err) {
		r.t.Fatal(err)
	}
	var out []failover.AuditRecord
	for line := range strings.Lines(string(b)) {
		var rec failover.AuditRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			r.t.Fatalf("audit log line %q: %v", line, err)
		}
		if rec.Nonce == nonce && rec.Outcome == outcome {
			out = append(out, rec)
		}
	}
	return out
}

// audited reports whether failoverd's audit log holds a record of the
// approval with nonce and outcome.
func (r *cmRig) audited(nonce, outcome string) bool {
	return len(r.auditRecords(nonce, outcome)) > 0
}

// standbyCalls counts the requests with method that reached the standby's
// validator client's keystores route.
func (r *cmRig) standbyCalls(method string) int {
	n := 0
	for _, x := range r.standbyKM.Exchanges() {
		if x.Method == method && x.Path == "/eth/v1/keystores" {
			n++
		}
	}
	return n
}

// check asserts the invariants a crash must never break and returns the
// owner.
func (r *cmRig) check(point string) failover.Ownership {
	t := r.t
	t.Helper()
	own, err := r.api.Owner(context.Background(), cmValidator)
	if err != nil {
		t.Fatalf("%s: owner: %v", point, err)
	}
	if own.Generation < r.gen {
		t.Fatalf("%s: the generation went back from %d to %d", point, r.gen, own.Generation)
	}
	r.gen = own.Generation
	owner := own.Current()
	_, homeErr := cli(t, r.bin, r.d.base, "gate", "--validator", cmValidator, "--as", "home")
	_, standbyErr := cli(t, r.bin, r.d.base, "gate", "--validator", cmValidator, "--as", "standby", "--standby", r.standby)
	if (homeErr == nil) != (owner == failover.OwnerHome) || (standbyErr == nil) != (owner == r.standby) {
		t.Fatalf("%s: owner %s but home gate open %v, standby gate open %v", point, owner, homeErr == nil, standbyErr == nil)
	}
	home, standby := r.homeKM.Active(validatorKey), r.standbyKM.Active(validatorKey)
	switch {
	case home && standby:
		t.Fatalf("%s: the key is active on both validator clients", point)
	case home && owner != failover.OwnerHome:
		t.Fatalf("%s: home signs while %s owns the key", point, owner)
	case standby && owner != r.standby:
		t.Fatalf("%s: the standby signs while %s owns the key", point, owner)
	}
	if _, err := os.Stat(filepath.Join(r.control, agent.ValidatorStartFile)); err == nil && owner != r.standby {
		t.Fatalf("%s: the standby's validator gate is open while %s owns the key", point, owner)
	}
	// The agent acts on a failback's grant (the next generation) before the
	// right comes home; never on one failoverd has not accepted.
	accepted := own.Generation
	if m, ok := r.incident().CurrentMigration(); ok {
		accepted = max(accepted, m.Generation)
	}
	gen, phase := r.agentSigner()
	if gen < r.agentGen || gen > accepted {
		t.Fatalf("%s: the agent is at generation %d (was %d, last accepted %d)", point, gen, r.agentGen, accepted)
	}
	r.agentGen = gen
	if n := r.standbyCalls(http.MethodPost); n > 1 {
		t.Fatalf("%s: %d imports reached the standby", point, n)
	}
	if c, n := r.fake.Created("instance"), r.fake.Instances(); c != 1 || n > 1 {
		t.Fatalf("%s: %d instances created, %d live", point, c, n)
	}
	t.Logf("%s: owner %s (generation %d), home signs %v, standby signs %v, agent at %d %q",
		point, owner, own.Generation, home, standby, gen, phase)
	return own
}

// stopsForAPerson: a migration whose keys never arrived as far as the
// agent could tell stops at the import timeout, with a reason and a page.
func (r *cmRig) stopsForAPerson(point string) {
	r.t.Helper()
	inc := r.waitState(failover.StateFailed)
	if !strings.Contains(inc.Reason, "no import reported") || !strings.Contains(inc.Reason, "a person decides") {
		r.t.Fatalf("%s: failed without saying why and who decides: %s", point, inc.Reason)
	}
	waitFor(r.t, "the failed page", 20*time.Second, func() (bool, string) {
		return r.am.paging("FailoverdIncidentFailed", cmIncident), "no page"
	})
	r.t.Logf("%s: stopped: %s", point, inc.Reason)
	r.expectOwner(r.check(point+" stopped"), r.standby, 1)
}

// checkClosed: the failback finished, the right is home at generation 2,
// nothing is left in the cloud, and the standby's slashing protection was
// kept for home.
func (r *cmRig) checkClosed(point, lifecycle string, standbyHadKey bool) {
	r.t.Helper()
	inc := r.waitState(failover.StateClosed)
	r.expectOwner(r.check(point), failover.OwnerHome, 2)
	var p []string
	for _, h := range inc.History {
		if h.To != "" {
			p = append(p, string(h.To))
		}
	}
	if got := strings.Join(p, ","); got != lifecycle {
		r.t.Fatalf("%s: lifecycle %s, want %s", point, got, lifecycle)
	}
	if r.standbyKM.Active(validatorKey) {
		r.t.Fatalf("%s: the standby still signs", point)
	}
	if i, d, f := r.fake.Instances(), r.fake.Disks(), r.fake.Firewalls(); i+d+f != 0 {
		r.t.Fatalf("%s: left in the cloud: %d instances, %d disks, %d firewall rules", point, i, d, f)
	}
	m := r.lastMove()
	if m.Action != approval.ActionFailback || m.DoneAt == nil || m.SlashingProtection == "" {
		r.t.Fatalf("%s: the failback record: %+v", point, m)
	}
	if standbyHadKey && !strings.Contains(m.SlashingProtection, strings.ToLower(validatorKey)) {
		r.t.Fatalf("%s: the standby's slashing protection for the key was lost: %s", point, m.SlashingProtection)
	}
	if n := r.standbyCalls(http.MethodPost); standbyHadKey != (n == 1) {
		r.t.Fatalf("%s: %d imports reached the standby", point, n)
	}
	for _, m := range inc.Migrations {
		if !r.audited(m.Nonce, "accepted") {
			r.t.Errorf("%s: the %s to generation %d was carried out but the audit log has no accepted record of its approval (nonce %s)",
				point, m.Action, m.Generation, m.Nonce)
		}
	}
}
