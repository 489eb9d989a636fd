package failover_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/sim"
	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/config"
	"github.com/failoverd/failoverd/failover/store/bolt"
)

// clock is a fake clock shared by the engine and the simulated cloud.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// notes records what the engine would have told people.
type notes struct {
	mu    sync.Mutex
	seen  []failover.State
	fails int
}

func (n *notes) Notify(_ context.Context, inc failover.Incident) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.seen = append(n.seen, inc.State)
	if n.fails > 0 {
		n.fails--
		return errors.New("alertmanager down")
	}
	return nil
}

type harness struct {
	t     *testing.T
	ctx   context.Context
	clk   *clock
	cfg   *config.Config
	store *bolt.Store
	cloud *sim.Cloud
	eng   *failover.Engine
	notes *notes
}

var start = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)

func newHarness(t *testing.T, tweak func(*config.Config)) *harness {
	t.Helper()
	cfg := config.Default()
	cfg.Engine.ConfirmFor = time.Minute
	cfg.Engine.KeepWarm = 10 * time.Minute
	cfg.Engine.PollInterval = 15 * time.Second
	cfg.Engine.MaxAttempts = 3
	cfg.Cloud.Sim.Zones = []string{"sim-a", "sim-b"}
	for i := 1; i <= 3; i++ {
		cfg.Fleet = append(cfg.Fleet, config.Validator{Name: fmt.Sprintf("eth-%d", i), Chain: "ethereum", Network: "hoodi", Site: "basement"})
	}
	if tweak != nil {
		tweak(&cfg)
	}
	clk := &clock{t: start}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "failoverd.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	c, err := sim.New(sim.Options{Now: clk.Now, BootTime: 30 * time.Second, SyncTime: 5 * time.Minute, Peers: 20,
		NoCapacityZones: cfg.Cloud.Sim.NoCapacityZones})
	if err != nil {
		t.Fatal(err)
	}
	n := &notes{}
	eng, err := failover.New(failover.Options{Config: &cfg, Store: st, Provider: c, Sync: c, Notifier: n, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, ctx: context.Background(), clk: clk, cfg: &cfg, store: st, cloud: c, eng: eng, notes: n}
}

func (h *harness) fire(validator, fp string, startsAt time.Time) {
	h.t.Helper()
	h.observe(failover.Observation{Validator: validator, Site: "basement", AlertName: "ValidatorClientDown",
		Fingerprint: fp, Status: failover.AlertFiring, StartsAt: startsAt})
}

func (h *harness) resolve(validator, fp string, startsAt, endsAt time.Time) {
	h.t.Helper()
	h.observe(failover.Observation{Validator: validator, Site: "basement", AlertName: "ValidatorClientDown",
		Fingerprint: fp, Status: failover.AlertResolved, StartsAt: startsAt, EndsAt: endsAt})
}

func (h *harness) observe(o failover.Observation) {
	h.t.Helper()
	if _, err := h.eng.Observe(h.ctx, []failover.Observation{o}, nil); err != nil {
		h.t.Fatal(err)
	}
}

// reconcile runs one pass and checks the invariants that must hold after any.
func (h *harness) reconcile(validator string) time.Duration {
	h.t.Helper()
	after, err := h.eng.Reconcile(h.ctx, validator)
	if err != nil {
		h.t.Fatalf("reconcile %s: %v", validator, err)
	}
	h.checkInvariants()
	return after
}

func (h *harness) checkInvariants() {
	h.t.Helper()
	open, err := h.store.ListIncidents(h.ctx, failover.ListOptions{OpenOnly: true})
	if err != nil {
		h.t.Fatal(err)
	}
	perValidator := map[string]int{}
	for _, inc := range open {
		perValidator[inc.Validator]++
		if perValidator[inc.Validator] > 1 {
			h.t.Fatalf("two open incidents for %s", inc.Validator)
		}
		if inc.Reason == "" {
			h.t.Fatalf("open incident %s (%s) has no reason", inc.ID, inc.State)
		}
	}
	if live := h.cloud.Live(); live > h.cfg.Caps.MaxConcurrentStandbys {
		h.t.Fatalf("%d standbys live, cap is %d", live, h.cfg.Caps.MaxConcurrentStandbys)
	}
}

func (h *harness) incident(validator string) failover.Incident {
	h.t.Helper()
	incs, err := h.store.ListIncidents(h.ctx, failover.ListOptions{Validator: validator})
	if err != nil || len(incs) == 0 {
		h.t.Fatalf("no incident for %s: %v", validator, err)
	}
	return incs[len(incs)-1]
}

func (h *harness) wantState(validator string, want failover.State) failover.Incident {
	h.t.Helper()
	inc := h.incident(validator)
	if inc.State != want {
		h.t.Fatalf("%s is %s (%s), want %s", inc.ID, inc.State, inc.Reason, want)
	}
	return inc
}

func TestLifecycleFiringToReadyToClosed(t *testing.T) {
	h := newHarness(t, nil)
	h.fire("eth-1", "fp1", start)
	after := h.reconcile("eth-1")
	h.wantState("eth-1", failover.StateConfirming)
	if after != time.Minute {
		t.Fatalf("requeue after %s, want the rest of the hold-down (1m)", after)
	}
	if h.cloud.Created() != 0 {
		t.Fatal("a standby was created during the hold-down")
	}
	h.clk.Advance(time.Minute)
	h.reconcile("eth-1")
	inc := h.wantState("eth-1", failover.StateSyncing)
	if inc.Standby == nil || inc.Standby.Name != cloud.NameFor(inc.ID) || inc.Standby.Zone != "sim-a" || inc.Intent != nil {
		t.Fatalf("standby %+v intent %+v", inc.Standby, inc.Intent)
	}
	h.clk.Advance(2 * time.Minute)
	h.reconcile("eth-1")
	inc = h.wantState("eth-1", failover.StateSyncing)
	if inc.Standby.Sync == nil || inc.Standby.Sync.ExecutionSynced == inc.Standby.Sync.ConsensusSynced && inc.Standby.Sync.ConsensusSynced {
		t.Fatalf("mid-sync report %+v", inc.Standby.Sync)
	}
	h.clk.Advance(4 * time.Minute)
	h.reconcile("eth-1")
	h.wantState("eth-1", failover.StateReady)
	if got := h.notes.seen; len(got) != 1 || got[0] != failover.StateReady {
		t.Fatalf("notifications %v, want [ready]", got)
	}

	h.resolve("eth-1", "fp1", start, h.clk.Now())
	h.reconcile("eth-1")
	inc = h.wantState("eth-1", failover.StateRecovering)
	if h.cloud.Live() != 1 {
		t.Fatal("standby deleted before the keep-warm time")
	}
	if len(h.notes.seen) != 2 {
		t.Fatalf("leaving ready must clear the page: %v", h.notes.seen)
	}
	h.clk.Advance(10 * time.Minute)
	h.reconcile("eth-1")
	inc = h.wantState("eth-1", failover.StateClosed)
	if h.cloud.Live() != 0 || inc.Standby.State != cloud.StateDeleted || inc.Standby.DeletedAt == nil {
		t.Fatalf("standby not deleted: live=%d %+v", h.cloud.Live(), inc.Standby)
	}
	var path []string
	for _, e := range inc.History {
		if e.To != "" {
			path = append(path, string(e.To))
		}
	}
	if got := strings.Join(path, ","); got != "confirming,provisioning,syncing,ready,recovering,closed" {
		t.Fatalf("history %s", got)
	}
	v, _ := h.store.GetValidator(h.ctx, "eth-1")
	if v.OpenIncident != "" {
		t.Fatalf("validator still claimed by %s", v.OpenIncident)
	}
	if h.cloud.Created() != 1 {
		t.Fatalf("created %d standbys", h.cloud.Created())
	}
}

func TestResolveDuringHoldDownCreatesNothing(t *testing.T) {
	h := newHarness(t, nil)
	h.fire("eth-1", "fp1", start)
	h.reconcile("eth-1")
	h.clk.Advance(30 * time.Second)
	h.resolve("eth-1", "fp1", start, h.clk.Now())
	h.reconcile("eth-1")
	h.wantState("eth-1", failover.StateClosed)
	if h.cloud.Created() != 0 {
		t.Fatal("a standby was created for a flap")
	}
}

// TestDuplicatesAndReordering: HA peers deliver everything twice, and the
// resolve may overtake the firing; none of it makes a second incident.
func TestDuplicatesAndReordering(t *testing.T) {
	h := newHarness(t, nil)
	res, err := h.eng.Observe(h.ctx, []failover.Observation{
		{Validator: "eth-1", Fingerprint: "fp1", Status: failover.AlertFiring, StartsAt: start},
		{Validator: "eth-1", Fingerprint: "fp1", Status: failover.AlertFiring, StartsAt: start},
	}, nil)
	if err != nil || res.New != 2 {
		t.Fatalf("first delivery: %+v %v", res, err)
	}
	res, err = h.eng.Observe(h.ctx, []failover.Observation{
		{Validator: "eth-1", Fingerprint: "fp1", Status: failover.AlertFiring, StartsAt: start},
	}, nil)
	if err != nil || res.Duplicates != 1 || res.New != 0 {
		t.Fatalf("peer copy: %+v %v", res, err)
	}
	// Concurrent peers.
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.eng.Observe(h.ctx, []failover.Observation{{Validator: "eth-2", Fingerprint: "fp2", Status: failover.AlertFiring, StartsAt: start}}, nil)
			h.eng.Reconcile(h.ctx, "eth-2")
		}()
	}
	wg.Wait()
	incs, _ := h.store.ListIncidents(h.ctx, failover.ListOptions{Validator: "eth-2"})
	if len(incs) != 1 {
		t.Fatalf("%d incidents for one outage", len(incs))
	}
	// Resolve overtakes its firing: no incident at all.
	h.resolve("eth-3", "fp3", start, start.Add(time.Minute))
	h.fire("eth-3", "fp3", start)
	h.reconcile("eth-3")
	if incs, _ := h.store.ListIncidents(h.ctx, failover.ListOptions{Validator: "eth-3"}); len(incs) != 0 {
		t.Fatalf("a late firing opened %s", incs[0].ID)
	}
}

func TestFlapReusesWarmStandby(t *testing.T) {
	h := newHarness(t, nil)
	h.fire("eth-1", "fp1", start)
	h.clk.Advance(time.Minute)
	h.reconcile("eth-1")
	h.resolve("eth-1", "fp1", start, h.clk.Now())
	h.reconcile("eth-1")
	h.wantState("eth-1", failover.StateRecovering)
	h.clk.Advance(time.Minute)
	h.fire("eth-1", "fp1", h.clk.Now())
	h.reconcile("eth-1")
	inc := h.wantState("eth-1", failover.StateSyncing)
	if h.cloud.Created() != 1 || inc.ID != "eth-1-1" {
		t.Fatalf("flap made %d standbys, incident %s", h.cloud.Created(), inc.ID)
	}
}

func TestZoneFallbackThenFailure(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Cloud.Sim.NoCapacityZones = []string{"sim-a"} })
	h.fire("eth-1", "fp1", start.Add(-time.Hour))
	h.reconcile("eth-1")
	inc := h.wantState("eth-1", failover.StateSyncing)
	if inc.Standby.Zone != "sim-b" {
		t.Fatalf("zone %s", inc.Standby.Zone)
	}
	found := false
	for _, e := range inc.History {
		found = found || strings.Contains(e.Cause, "zone sim/sim-a") && strings.Contains(e.Cause, "trying sim/sim-b")
	}
	if !found {
		t.Fatalf("the capacity error is not in the history: %+v", inc.History)
	}

	h.cloud.SetNoCapacity("sim-b", true)
	h.fire("eth-2", "fp2", start.Add(-time.Hour))
	for i := 0; i < 10; i++ {
		h.reconcile("eth-2")
		if h.incident("eth-2").State == failover.StateFailed {
			break
		}
		h.clk.Advance(h.cfg.Engine.BackoffMax)
	}
	inc = h.wantState("eth-2", failover.StateFailed)
	if !strings.Contains(inc.Reason, "3 times") || !strings.Contains(inc.Reason, "a person must decide") {
		t.Fatalf("reason %q", inc.Reason)
	}
	if h.notes.seen[len(h.notes.seen)-1] != failover.StateFailed {
		t.Fatal("failure not notified")
	}
}

func TestPermanentCloudErrorFailsAtOnce(t *testing.T) {
	h := newHarness(t, nil)
	h.cloud.Fail(sim.OpEnsure, &cloud.Error{Provider: "sim", Op: "ensure", Kind: cloud.ErrPermanent}, 1)
	h.fire("eth-1", "fp1", start.Add(-time.Hour))
	h.reconcile("eth-1")
	inc := h.wantState("eth-1", failover.StateFailed)
	if !strings.Contains(inc.Reason, "refused") {
		t.Fatalf("reason %q", inc.Reason)
	}
	// Resolving does not move a failed incident: a person decides.
	h.resolve("eth-1", "fp1", start.Add(-time.Hour), h.clk.Now())
	h.reconcile("eth-1")
	h.wantState("eth-1", failover.StateFailed)
	if _, err := h.eng.Teardown(h.ctx, inc.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	h.reconcile("eth-1")
	inc = h.wantState("eth-1", failover.StateClosed)
	if inc.TornDownBy != "alice" {
		t.Fatalf("torn down by %q", inc.TornDownBy)
	}
}

func TestTransientErrorsBackOff(t *testing.T) {
	h := newHarness(t, nil)
	h.cloud.Fail(sim.OpEnsure, &cloud.Error{Provider: "sim", Op: "ensure", Kind: cloud.ErrTransient}, 2)
	h.fire("eth-1", "fp1", start.Add(-time.Hour))
	after := h.reconcile("eth-1")
	inc := h.wantState("eth-1", failover.StateProvisioning)
	if inc.Attempts != 1 || after <= 0 || after > h.cfg.Engine.BackoffBase {
		t.Fatalf("attempts %d, requeue %s", inc.Attempts, after)
	}
	// Before the backoff ends nothing is called.
	h.reconcile("eth-1")
	if h.incident("eth-1").Attempts != 1 {
		t.Fatal("retried inside the backoff")
	}
	h.clk.Advance(time.Second)
	after = h.reconcile("eth-1")
	if h.incident("eth-1").Attempts != 2 || after > 2*h.cfg.Engine.BackoffBase || after < h.cfg.Engine.BackoffBase {
		t.Fatalf("second backoff %s", after)
	}
	h.clk.Advance(2 * time.Second)
	h.reconcile("eth-1")
	h.wantState("eth-1", failover.StateSyncing)
}

// TestLostAnswerDoesNotDuplicate: the cloud creates the standby but the answer
// is lost; the retry finds it instead of making a second one.
func TestLostAnswerDoesNotDuplicate(t *testing.T) {
	h := newHarness(t, nil)
	h.cloud.FailAfter(sim.OpEnsure, &cloud.Error{Provider: "sim", Op: "ensure", Kind: cloud.ErrTransient}, 1)
	h.fire("eth-1", "fp1", start.Add(-time.Hour))
	h.reconcile("eth-1")
	inc := h.wantState("eth-1", failover.StateProvisioning)
	if inc.Intent == nil || inc.Intent.Action != "ensure-standby" {
		t.Fatalf("intent not recorded: %+v", inc.Intent)
	}
	h.clk.Advance(time.Minute)
	h.reconcile("eth-1")
	h.wantState("eth-1", failover.StateSyncing)
	if h.cloud.Created() != 1 {
		t.Fatalf("created %d", h.cloud.Created())
	}
}

// TestCrashAfterClaim: the validator was claimed but the process died before
// the incident was written; the next pass writes it, once.
func TestCrashAfterClaim(t *testing.T) {
	h := newHarness(t, nil)
	h.fire("eth-1", "fp1", start)
	v, _ := h.store.GetValidator(h.ctx, "eth-1")
	v.Seq, v.OpenIncident = 1, "eth-1-1"
	if err := h.store.PutValidator(h.ctx, &v); err != nil {
		t.Fatal(err)
	}
	h.reconcile("eth-1")
	inc := h.wantState("eth-1", failover.StateConfirming)
	if inc.ID != "eth-1-1" {
		t.Fatalf("incident %s", inc.ID)
	}
	if incs, _ := h.store.ListIncidents(h.ctx, failover.ListOptions{}); len(incs) != 1 {
		t.Fatalf("%d incidents", len(incs))
	}
}

func TestStandbyLostIsRecreated(t *testing.T) {
	h := newHarness(t, nil)
	h.fire("eth-1", "fp1", start.Add(-time.Hour))
	h.reconcile("eth-1")
	inc := h.wantState("eth-1", failover.StateSyncing)
	h.cloud.Lose(inc.Standby.Name)
	h.clk.Advance(15 * time.Second)
	h.reconcile("eth-1")
	inc = h.wantState("eth-1", failover.StateSyncing)
	if h.cloud.Created() != 2 || h.cloud.Live() != 1 {
		t.Fatalf("created %d live %d", h.cloud.Created(), h.cloud.Live())
	}
}

func TestConcurrentStandbyCap(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Caps.MaxConcurrentStandbys = 2 })
	for _, v := range []string{"eth-1", "eth-2", "eth-3"} {
		h.fire(v, "fp-"+v, start.Add(-time.Hour))
	}
	var wg sync.WaitGroup
	for _, v := range []string{"eth-1", "eth-2", "eth-3"} {
		wg.Add(1)
		go func() { defer wg.Done(); h.eng.Reconcile(h.ctx, v) }()
	}
	wg.Wait()
	h.checkInvariants()
	var waiting []failover.Incident
	for _, v := range []string{"eth-1", "eth-2", "eth-3"} {
		if inc := h.incident(v); inc.State == failover.StateProvisioning {
			waiting = append(waiting, inc)
		}
	}
	if len(waiting) != 1 || !strings.Contains(waiting[0].Reason, "2 of 2 standbys in use") {
		t.Fatalf("waiting %+v", waiting)
	}
	// One incident ends: the waiting one gets its standby.
	other := "eth-1"
	if waiting[0].Validator == other {
		other = "eth-2"
	}
	if _, err := h.eng.Teardown(h.ctx, h.incident(other).ID, "bob"); err != nil {
		t.Fatal(err)
	}
	h.reconcile(other)
	h.reconcile(waiting[0].Validator)
	h.wantState(waiting[0].Validator, failover.StateSyncing)
}

func TestMonthlyBudget(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Caps.MonthlyStandbyHours = 10 })
	h.fire("eth-1", "fp1", start.Add(-time.Hour))
	h.reconcile("eth-1")
	h.wantState("eth-1", failover.StateSyncing)
	h.clk.Advance(11 * time.Hour)
	h.fire("eth-2", "fp2", h.clk.Now().Add(-time.Hour))
	h.reconcile("eth-2")
	inc := h.wantState("eth-2", failover.StateFailed)
	if !strings.Contains(inc.Reason, "budget") {
		t.Fatalf("reason %q", inc.Reason)
	}
	if got := failover.StandbyHours([]failover.Incident{h.incident("eth-1")}, h.clk.Now()); got < 10.9 || got > 11.1 {
		t.Fatalf("standby hours %.2f", got)
	}
}

// TestTeardownIsFinal: a person's teardown deletes the standby at once, and
// the alert that keeps firing does not open a new incident; a new outage does.
func TestTeardownIsFinal(t *testing.T) {
	h := newHarness(t, nil)
	h.fire("eth-1", "fp1", start.Add(-time.Hour))
	h.reconcile("eth-1")
	inc := h.wantState("eth-1", failover.StateSyncing)
	if _, err := h.eng.Teardown(h.ctx, inc.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	h.reconcile("eth-1")
	h.wantState("eth-1", failover.StateClosed)
	if h.cloud.Live() != 0 {
		t.Fatal("standby kept after teardown")
	}
	h.clk.Advance(time.Hour)
	h.fire("eth-1", "fp1", start.Add(-time.Hour)) // the same alert, repeated
	h.reconcile("eth-1")
	if incs, _ := h.store.ListIncidents(h.ctx, failover.ListOptions{Validator: "eth-1"}); len(incs) != 1 {
		t.Fatalf("teardown re-opened: %d incidents", len(incs))
	}
	// Teardown twice is harmless.
	if got, err := h.eng.Teardown(h.ctx, inc.ID, "carol"); err != nil || got.State != failover.StateClosed {
		t.Fatalf("second teardown: %v %v", got.State, err)
	}
	h.fire("eth-1", "fp1", h.clk.Now()) // a new instance: a new outage
	h.reconcile("eth-1")
	if got := h.incident("eth-1"); got.ID != "eth-1-2" || got.State == failover.StateClosed {
		t.Fatalf("new outage: %s %s", got.ID, got.State)
	}
	if _, err := h.eng.Teardown(h.ctx, "nope-1", "carol"); !errors.Is(err, failover.ErrNotFound) {
		t.Fatalf("teardown of unknown: %v", err)
	}
}

func TestUnknownValidatorOpensNothing(t *testing.T) {
	h := newHarness(t, nil)
	h.fire("not-in-fleet", "fp", start)
	h.reconcile("not-in-fleet")
	if incs, _ := h.store.ListIncidents(h.ctx, failover.ListOptions{}); len(incs) != 0 {
		t.Fatalf("opened %v", incs)
	}
}

func TestHeartbeatsDeduplicated(t *testing.T) {
	h := newHarness(t, nil)
	at := h.clk.Now()
	for i, want := range []int{1, 0, 0, 1} {
		hb := failover.Heartbeat{Site: "basement", At: at}
		res, err := h.eng.Observe(h.ctx, nil, []failover.Heartbeat{hb})
		if err != nil || res.Heartbeats != want {
			t.Fatalf("heartbeat %d: %+v %v", i, res, err)
		}
		if i == 2 {
			at = at.Add(h.cfg.Heartbeat.Resolution)
		}
	}
	s, err := h.store.GetSite(h.ctx, "basement")
	if err != nil || s.HeartbeatsSeen != 2 {
		t.Fatalf("site %+v %v", s, err)
	}
}

// TestRunLoop drives the real queue and workers with real time.
func TestRunLoop(t *testing.T) {
	cfg := config.Default()
	cfg.Engine.ConfirmFor = 0
	cfg.Engine.PollInterval = 10 * time.Millisecond
	cfg.Engine.ResyncInterval = 50 * time.Millisecond
	cfg.Fleet = []config.Validator{{Name: "eth-1", Chain: "ethereum", Network: "hoodi", Site: "basement"}}
	st, err := bolt.Open(filepath.Join(t.TempDir(), "f.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, _ := sim.New(sim.Options{BootTime: 20 * time.Millisecond, SyncTime: 50 * time.Millisecond, Peers: 5})
	eng, err := failover.New(failover.Options{Config: &cfg, Store: st, Provider: c, Sync: c})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- eng.Run(ctx) }()
	<-eng.Ready()
	eng.Observe(ctx, []failover.Observation{{Validator: "eth-1", Fingerprint: "f", Status: failover.AlertFiring, StartsAt: time.Now()}}, nil)
	deadline := time.Now().Add(5 * time.Second)
	for {
		incs, _ := st.ListIncidents(ctx, failover.ListOptions{})
		if len(incs) == 1 && incs[0].State == failover.StateReady {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready in time: %+v", incs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestPagesArePostedAgain: the ready page is posted again before it expires,
// and a post that failed is tried again on the next pass.
func TestPagesArePostedAgain(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Cloud.Sim.SyncTime = 0 })
	h.notes.fails = 1 // Alertmanager is down when the standby becomes ready
	h.fire("eth-1", "fp1", start.Add(-time.Hour))
	h.reconcile("eth-1")
	h.clk.Advance(6 * time.Minute)
	h.reconcile("eth-1")
	h.wantState("eth-1", failover.StateReady)
	if len(h.notes.seen) != 1 {
		t.Fatalf("notifications %v", h.notes.seen)
	}
	h.clk.Advance(15 * time.Second)
	h.reconcile("eth-1") // the failed post is retried
	if len(h.notes.seen) != 2 {
		t.Fatalf("failed post not retried: %v", h.notes.seen)
	}
	h.clk.Advance(15 * time.Second)
	h.reconcile("eth-1")
	if len(h.notes.seen) != 2 {
		t.Fatalf("posted again too soon: %v", h.notes.seen)
	}
	h.clk.Advance(failover.RenotifyEvery)
	h.reconcile("eth-1")
	if len(h.notes.seen) != 3 || h.notes.seen[2] != failover.StateReady {
		t.Fatalf("ready page not refreshed: %v", h.notes.seen)
	}
}

// countingStore counts validator reads and writes of a real store.
type countingStore struct {
	failover.Store
	mu          sync.Mutex
	reads, puts int
}

func (c *countingStore) GetValidator(ctx context.Context, name string) (failover.ValidatorRecord, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.Store.GetValidator(ctx, name)
}

func (c *countingStore) PutValidator(ctx context.Context, v *failover.ValidatorRecord) error {
	c.mu.Lock()
	c.puts++
	c.mu.Unlock()
	return c.Store.PutValidator(ctx, v)
}

// TestDuplicatesSkipTheStore: once a delivery is stored, its copies (the HA
// peer, repeats) are recognised without reading or writing the store; news
// about the same alert still goes through.
func TestDuplicatesSkipTheStore(t *testing.T) {
	h := newHarness(t, nil)
	cs := &countingStore{Store: h.store}
	eng, err := failover.New(failover.Options{Config: h.cfg, Store: cs, Provider: h.cloud, Sync: h.cloud, Now: h.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	firing := failover.Observation{Validator: "eth-1", Fingerprint: "fp", Status: failover.AlertFiring, StartsAt: start}
	for i := 0; i < 50; i++ {
		if _, err := eng.Observe(h.ctx, []failover.Observation{firing}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if cs.reads != 1 || cs.puts != 1 {
		t.Fatalf("50 copies cost %d reads and %d writes, want 1 and 1", cs.reads, cs.puts)
	}
	resolved := firing
	resolved.Status, resolved.EndsAt = failover.AlertResolved, start.Add(time.Minute)
	res, err := eng.Observe(h.ctx, []failover.Observation{resolved}, nil)
	if err != nil || res.New != 1 || cs.puts != 2 {
		t.Fatalf("the resolve was not stored: %+v %v, %d writes", res, err, cs.puts)
	}
	// Another replica stored news this engine has not seen: a copy of the
	// old firing is still a duplicate, and the store keeps the resolve.
	v, _ := h.store.GetValidator(h.ctx, "eth-1")
	if v.Alerts["fp"].Status != failover.AlertResolved {
		t.Fatalf("ledger %+v", v.Alerts)
	}
}

// TestCostShown: every write refreshes the standby's hours and estimated
// cost, priced when the standby was requested.
func TestCostShown(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Cloud.Sim.Price = config.Price{HourlyUSD: 1, DiskGBMonthUSD: 0.73, SpotDiscount: 0.5}
		c.Cloud.Sim.DiskGB = 1000
	})
	h.fire("eth-1", "fp1", start.Add(-time.Hour))
	h.reconcile("eth-1")
	inc := h.wantState("eth-1", failover.StateSyncing)
	if got := inc.Standby.HourlyUSD; got != 2 { // 1 $/h machine + 1000 GB × 0.73 $/GB-month / 730 h
		t.Fatalf("hourly %v, want 2", got)
	}
	h.clk.Advance(3 * time.Hour)
	h.reconcile("eth-1")
	inc = h.incident("eth-1")
	if inc.Standby.Hours != 3 || inc.Standby.CostUSD != 6 {
		t.Fatalf("after 3h: %v h, $%v", inc.Standby.Hours, inc.Standby.CostUSD)
	}
	h.resolve("eth-1", "fp1", start.Add(-time.Hour), h.clk.Now())
	h.reconcile("eth-1")
	h.clk.Advance(h.cfg.Engine.KeepWarm)
	h.reconcile("eth-1")
	h.clk.Advance(5 * time.Hour) // a closed incident stops costing
	inc = h.wantState("eth-1", failover.StateClosed)
	want := 3 + h.cfg.Engine.KeepWarm.Hours()
	if d := inc.Standby.Hours - want; d > 0.01 || d < -0.01 {
		t.Fatalf("closed after %v h, recorded %v", want, inc.Standby.Hours)
	}
}

// TestGarbageCollector: an owned standby no incident claims is deleted after
// the grace period; a claimed one never is; an unowned one is never touched;
// dry-run deletes nothing.
func TestGarbageCollector(t *testing.T) {
	h := newHarness(t, func(c *config.Config) { c.Cloud.GC.GracePeriod = 30 * time.Minute })
	h.fire("eth-1", "fp1", start.Add(-time.Hour))
	h.reconcile("eth-1")
	claimed := h.wantState("eth-1", failover.StateSyncing).Standby.Name
	// An orphan: a standby whose incident is gone (say, a crash before a
	// store restore), and a machine failoverd does not own.
	if _, err := h.cloud.Ensure(h.ctx, cloud.StandbySpec{Name: "fo-eth-9-1", IncidentID: "eth-9-1", Validator: "eth-9", Site: "basement", Zone: "sim-a"}); err != nil {
		t.Fatal(err)
	}
	h.cloud.AddUnowned("homemade", "sim-a", map[string]string{"owner": "alice"})

	res, err := h.eng.CollectGarbage(h.ctx)
	if err != nil || len(res.Orphans) != 0 || res.Young != 1 {
		t.Fatalf("inside the grace period: %+v %v", res, err)
	}
	h.clk.Advance(31 * time.Minute)
	h.cfg.Cloud.GC.DryRun = true
	res, err = h.eng.CollectGarbage(h.ctx)
	if err != nil || len(res.Orphans) != 1 || len(res.Deleted) != 0 || h.cloud.Live() != 2 {
		t.Fatalf("dry run: %+v %v, live %d", res, err, h.cloud.Live())
	}
	h.cfg.Cloud.GC.DryRun = false
	res, err = h.eng.CollectGarbage(h.ctx)
	if err != nil || len(res.Deleted) != 1 || res.Deleted[0].Name != "fo-eth-9-1" {
		t.Fatalf("collection: %+v %v", res, err)
	}
	if _, err := h.cloud.Get(h.ctx, claimed); err != nil {
		t.Fatalf("the claimed standby was touched: %v", err)
	}
	if h.cloud.Live() != 1 {
		t.Fatalf("live %d", h.cloud.Live())
	}
	// The unowned machine is still there: sim's List hides it, so look it up
	// the only way it can be seen, by trying to take its name.
	if _, err := h.cloud.Ensure(h.ctx, cloud.StandbySpec{Name: "homemade", IncidentID: "x", Zone: "sim-a"}); !errors.Is(err, cloud.ErrPermanent) {
		t.Fatalf("unowned machine gone or adopted: %v", err)
	}
}

func TestClaimedByName(t *testing.T) {
	standbys := []string{"fo-eth-1-1"}
	for name, want := range map[string]bool{
		"fo-eth-1-1": true, "fo-eth-1-1-data": true, "fo-p2p-fo-eth-1-1": true,
		"fo-eth-1-10": false, "fo-eth-1-10-data": false, "fo-p2p-fo-eth-1-11": false, "fo-eth-1": false,
	} {
		if got := failover.ClaimedByName(name, standbys); got != want {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}

// agentless hides the simulated cloud's own sync model, as a real cloud
// has none, and records the bootstrap each create carried.
type agentless struct {
	*sim.Cloud
	mu       sync.Mutex
	userData [][]byte
}

func (a *agentless) SyncStatus() {} // shadows sim's: agentless is no cloud.SyncReporter

func (a *agentless) Ensure(ctx context.Context, spec cloud.StandbySpec) (cloud.Standby, error) {
	a.mu.Lock()
	a.userData = append(a.userData, spec.UserData)
	a.mu.Unlock()
	return a.Cloud.Ensure(ctx, spec)
}

// agentStub is a standby agent whose answer the test sets.
type agentStub struct {
	mu sync.Mutex
	st cloud.SyncStatus
}

func (s *agentStub) SyncStatus(context.Context, cloud.Standby) (cloud.SyncStatus, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st, nil
}

// TestAgentDecidesReadiness: on a cloud without its own sync model the
// agent's report decides; ready only when every condition holds, and back
// to syncing when one stops holding. The bootstrap reaches the create.
func TestAgentDecidesReadiness(t *testing.T) {
	h := newHarness(t, nil)
	cl := &agentless{Cloud: h.cloud}
	if _, ok := any(cl).(cloud.SyncReporter); ok {
		t.Fatal("agentless still reports sync itself")
	}
	stub := &agentStub{}
	eng, err := failover.New(failover.Options{Config: h.cfg, Store: h.store, Provider: cl, Sync: stub, Now: h.clk.Now,
		Bootstrap: func(_ context.Context, inc failover.Incident, provider string) ([]byte, error) {
			return []byte("#!/bin/bash\n# " + inc.ID + " on " + provider + "\n"), nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	h.eng = eng
	h.fire("eth-1", "fp1", start.Add(-time.Hour))
	h.reconcile("eth-1")
	h.wantState("eth-1", failover.StateSyncing)
	if len(cl.userData) != 1 || string(cl.userData[0]) != "#!/bin/bash\n# eth-1-1 on sim\n" {
		t.Fatalf("bootstrap sent: %q", cl.userData)
	}
	good := cloud.SyncStatus{ExecutionSynced: true, ConsensusSynced: true, Health: 200, Peers: 30, ExecutionPeers: 20}
	for _, tt := range []struct {
		name string
		st   cloud.SyncStatus
		want failover.State
	}{
		{"all but the clock", func() cloud.SyncStatus { s := good; s.ClockOffset = time.Second; return s }(), failover.StateSyncing},
		{"every condition", good, failover.StateReady},
		{"optimistic again", func() cloud.SyncStatus { s := good; s.Optimistic = true; return s }(), failover.StateSyncing},
		{"healthy again", good, failover.StateReady},
		{"two slots behind", func() cloud.SyncStatus { s := good; s.SyncDistance = 2; return s }(), failover.StateSyncing},
	} {
		stub.mu.Lock()
		stub.st = tt.st
		stub.mu.Unlock()
		h.clk.Advance(h.cfg.Engine.PollInterval)
		h.reconcile("eth-1")
		inc := h.wantState("eth-1", tt.want)
		if tt.want == failover.StateSyncing && (inc.Standby.Sync == nil || len(inc.Standby.Sync.NotReady) == 0) {
			t.Fatalf("%s: not-ready conditions not recorded: %+v", tt.name, inc.Standby.Sync)
		}
	}
}

func TestBootstrapErrorFails(t *testing.T) {
	h := newHarness(t, nil)
	eng, err := failover.New(failover.Options{Config: h.cfg, Store: h.store, Provider: h.cloud, Now: h.clk.Now,
		Bootstrap: func(context.Context, failover.Incident, string) ([]byte, error) {
			return nil, errors.New("no image for client nethermind")
		}})
	if err != nil {
		t.Fatal(err)
	}
	h.eng = eng
	h.fire("eth-1", "fp1", start.Add(-time.Hour))
	h.reconcile("eth-1")
	inc := h.wantState("eth-1", failover.StateFailed)
	if !strings.Contains(inc.Reason, "no image for client nethermind") || h.cloud.Created() != 0 {
		t.Fatalf("reason %q, created %d", inc.Reason, h.cloud.Created())
	}
}

// TestUnknownStateIsLeftAlone: an incident in a state this build does not
// know (written by a newer failoverd, say "hibernating") is never moved and
// makes no cloud call: stop on anything unknown.
func TestUnknownStateIsLeftAlone(t *testing.T) {
	h := newHarness(t, nil)
	h.fire("eth-1", "fp1", start.Add(-time.Hour))
	h.reconcile("eth-1")
	inc := h.wantState("eth-1", failover.StateSyncing)
	inc.State = "hibernating"
	if err := h.store.PutIncident(h.ctx, &inc); err != nil {
		t.Fatal(err)
	}
	before := inc.Version
	h.resolve("eth-1", "fp1", start.Add(-time.Hour), h.clk.Now()) // would move a known state on
	h.clk.Advance(time.Hour)
	if after := h.reconcile("eth-1"); after != 0 {
		t.Fatalf("requeued after %s", after)
	}
	got := h.incident("eth-1")
	if got.State != "hibernating" || got.Version != before {
		t.Fatalf("the unknown state was touched: %s (version %s -> %s)", got.State, before, got.Version)
	}
	if h.cloud.Live() != 1 || h.cloud.Created() != 1 {
		t.Fatalf("cloud calls on an unknown state: live %d, created %d", h.cloud.Live(), h.cloud.Created())
	}
}
