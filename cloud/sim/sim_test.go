package sim_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/cloudtest"
	"github.com/failoverd/failoverd/cloud/sim"
)

var (
	_ cloud.Provider     = (*sim.Cloud)(nil)
	_ cloud.SyncReporter = (*sim.Cloud)(nil)
)

func TestConformance(t *testing.T) {
	addUnowned := func(t *testing.T, p cloud.Provider, name, zone string) {
		p.(*sim.Cloud).AddUnowned(name, zone, map[string]string{"owner": "operator"})
	}
	for _, tc := range []struct {
		name string
		opts func(t *testing.T) sim.Options
	}{
		{"memory", func(t *testing.T) sim.Options { return sim.Options{} }},
		{"persistent", func(t *testing.T) sim.Options {
			return sim.Options{StatePath: filepath.Join(t.TempDir(), "sim.json"), BootTime: time.Minute, SyncTime: time.Hour}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cloudtest.Run(t, cloudtest.Harness{
				New: func(t *testing.T) cloud.Provider {
					c, err := sim.New(tc.opts(t))
					if err != nil {
						t.Fatalf("sim.New: %v", err)
					}
					return c
				},
				Zones:      []string{"sim-a", "sim-b"},
				AddUnowned: addUnowned,
			})
		})
	}
}

// clock is a fake clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newClock() *clock { return &clock{t: epoch} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newSim(t *testing.T, opts sim.Options) *sim.Cloud {
	t.Helper()
	c, err := sim.New(opts)
	if err != nil {
		t.Fatalf("sim.New: %v", err)
	}
	return c
}

func mustEnsure(t *testing.T, c *sim.Cloud, spec cloud.StandbySpec) cloud.Standby {
	t.Helper()
	s, err := c.Ensure(t.Context(), spec)
	if err != nil {
		t.Fatalf("Ensure %s: %v", spec.Name, err)
	}
	return s
}

func TestSyncModel(t *testing.T) {
	const (
		boot  = 2 * time.Minute
		syncT = 10 * time.Minute
	)
	clk := newClock()
	c := newSim(t, sim.Options{Now: clk.Now, BootTime: boot, SyncTime: syncT, Peers: 20, SyncDistance: 1000})
	s := mustEnsure(t, c, cloudtest.Spec("inc-model", "sim-a"))
	if !s.CreatedAt.Equal(epoch) {
		t.Fatalf("CreatedAt = %v, want the clock's %v", s.CreatedAt, epoch)
	}

	for _, tc := range []struct {
		name  string
		at    time.Duration // since creation
		state string
		want  cloud.SyncStatus
		ready bool
	}{
		{"created", 0, cloud.StatePending, cloud.SyncStatus{}, false},
		{"just before boot", boot - time.Nanosecond, cloud.StatePending, cloud.SyncStatus{}, false},
		{"booted", boot, cloud.StateRunning, cloud.SyncStatus{SyncDistance: 1000, Health: 206, DiskFreeBytes: 1 << 40}, false},
		{"a quarter synced", boot + syncT/4, cloud.StateRunning, cloud.SyncStatus{Peers: 5, SyncDistance: 750, Health: 206, ExecutionPeers: 5, DiskFreeBytes: 1 << 40}, false},
		{"just before execution", boot + syncT*6/10 - time.Nanosecond, cloud.StateRunning, cloud.SyncStatus{Peers: 11, SyncDistance: 401, Health: 206, ExecutionPeers: 11, DiskFreeBytes: 1 << 40}, false},
		{"execution synced", boot + syncT*6/10, cloud.StateRunning, cloud.SyncStatus{ExecutionSynced: true, Peers: 12, SyncDistance: 400, Health: 206, ExecutionPeers: 12, DiskFreeBytes: 1 << 40}, false},
		{"just before consensus", boot + syncT - time.Nanosecond, cloud.StateRunning, cloud.SyncStatus{ExecutionSynced: true, Peers: 19, SyncDistance: 1, Health: 206, ExecutionPeers: 19, DiskFreeBytes: 1 << 40}, false},
		{"synced", boot + syncT, cloud.StateRunning, cloud.SyncStatus{ExecutionSynced: true, ConsensusSynced: true, Peers: 20, Health: 200, ExecutionPeers: 20, DiskFreeBytes: 1 << 40}, true},
		{"long after", boot + 100*syncT, cloud.StateRunning, cloud.SyncStatus{ExecutionSynced: true, ConsensusSynced: true, Peers: 20, Health: 200, ExecutionPeers: 20, DiskFreeBytes: 1 << 40}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk.Set(epoch.Add(tc.at))
			got, err := c.Get(t.Context(), s.Name)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if got.State != tc.state {
				t.Errorf("State = %q, want %q", got.State, tc.state)
			}
			st, err := c.SyncStatus(t.Context(), got)
			if err != nil {
				t.Fatalf("SyncStatus: %v", err)
			}
			if st != tc.want {
				t.Errorf("SyncStatus = %+v, want %+v", st, tc.want)
			}
			if st.Ready() != tc.ready {
				t.Errorf("Ready() = %v, want %v", st.Ready(), tc.ready)
			}
			// Only the clock matters: asking again at the same instant
			// gives the same answer.
			if again, _ := c.SyncStatus(t.Context(), got); again != st {
				t.Errorf("second SyncStatus = %+v, want %+v", again, st)
			}
		})
	}
}

func TestZeroTimesAreInstant(t *testing.T) {
	c := newSim(t, sim.Options{Now: newClock().Now})
	s := mustEnsure(t, c, cloudtest.Spec("inc-instant", "sim-a"))
	if s.State != cloud.StateRunning {
		t.Errorf("State = %q, want %q", s.State, cloud.StateRunning)
	}
	st, err := c.SyncStatus(t.Context(), s)
	if err != nil {
		t.Fatalf("SyncStatus: %v", err)
	}
	want := cloud.SyncStatus{ExecutionSynced: true, ConsensusSynced: true, Health: 200, Peers: sim.DefaultPeers, ExecutionPeers: sim.DefaultPeers, DiskFreeBytes: 1 << 40}
	if st != want || !st.Ready() {
		t.Errorf("SyncStatus = %+v (ready %v), want %+v", st, st.Ready(), want)
	}
}

func TestSlowBoot(t *testing.T) {
	const boot, extra = time.Minute, 5 * time.Minute
	for _, tc := range []struct {
		name   string
		before bool // SlowBoot before Ensure creates the standby
	}{
		{"before create", true},
		{"while pending", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			c := newSim(t, sim.Options{Now: clk.Now, BootTime: boot, SyncTime: time.Hour})
			spec := cloudtest.Spec("inc-slow", "sim-a")
			if tc.before {
				c.SlowBoot(spec.Name, extra)
			}
			mustEnsure(t, c, spec)
			if !tc.before {
				c.SlowBoot(spec.Name, extra)
			}
			for _, step := range []struct {
				at    time.Duration
				state string
			}{
				{boot, cloud.StatePending},
				{boot + extra - time.Nanosecond, cloud.StatePending},
				{boot + extra, cloud.StateRunning},
			} {
				clk.Set(epoch.Add(step.at))
				s, err := c.Get(t.Context(), spec.Name)
				if err != nil {
					t.Fatalf("Get: %v", err)
				}
				if s.State != step.state {
					t.Errorf("at +%v State = %q, want %q", step.at, s.State, step.state)
				}
			}
		})
	}
	t.Run("other standbys unaffected", func(t *testing.T) {
		clk := newClock()
		c := newSim(t, sim.Options{Now: clk.Now, BootTime: boot})
		c.SlowBoot(cloud.NameFor("inc-slow"), extra)
		s := mustEnsure(t, c, cloudtest.Spec("inc-fast", "sim-a"))
		clk.Advance(boot)
		if s, _ = c.Get(t.Context(), s.Name); s.State != cloud.StateRunning {
			t.Errorf("State = %q, want %q", s.State, cloud.StateRunning)
		}
	})
}

func TestCapacity(t *testing.T) {
	ctx := t.Context()
	c := newSim(t, sim.Options{NoCapacityZones: []string{"sim-a"}})
	spec := cloudtest.Spec("inc-cap", "sim-a")

	_, err := c.Ensure(ctx, spec)
	if !errors.Is(err, cloud.ErrCapacity) {
		t.Fatalf("Ensure in a stocked-out zone: %v, want ErrCapacity", err)
	}
	var ce *cloud.Error
	if !errors.As(err, &ce) || ce.Provider != "sim" || ce.Op != "ensure" || ce.Zone != "sim-a" {
		t.Fatalf("error = %#v, want *cloud.Error{Provider: sim, Op: ensure, Zone: sim-a}", err)
	}
	if !cloud.Retryable(err) {
		t.Error("capacity error is not retryable")
	}
	if c.Created() != 0 || c.Live() != 0 {
		t.Fatalf("Created/Live = %d/%d after a stockout, want 0/0", c.Created(), c.Live())
	}

	// The engine's next zone works.
	spec.Zone = "sim-b"
	if s := mustEnsure(t, c, spec); s.Zone != "sim-b" {
		t.Fatalf("Zone = %q, want sim-b", s.Zone)
	}

	// A stockout in the standby's own zone does not hide it from Ensure.
	c.SetNoCapacity("sim-b", true)
	if s := mustEnsure(t, c, spec); s.Zone != "sim-b" {
		t.Fatalf("Ensure of existing standby in stocked-out zone: Zone %q, want sim-b", s.Zone)
	}

	// Capacity comes back.
	c.SetNoCapacity("sim-a", false)
	other := cloudtest.Spec("inc-cap-2", "sim-a")
	if s := mustEnsure(t, c, other); s.Zone != "sim-a" {
		t.Fatalf("Zone = %q, want sim-a", s.Zone)
	}
	other = cloudtest.Spec("inc-cap-3", "sim-b")
	if _, err := c.Ensure(ctx, other); !errors.Is(err, cloud.ErrCapacity) {
		t.Fatalf("Ensure in sim-b after SetNoCapacity(sim-b, true): %v, want ErrCapacity", err)
	}
}

func TestDefaultZone(t *testing.T) {
	c := newSim(t, sim.Options{})
	if s := mustEnsure(t, c, cloudtest.Spec("inc-nozone", "")); s.Zone != sim.DefaultZone {
		t.Errorf("Zone = %q, want %q", s.Zone, sim.DefaultZone)
	}
}

func TestInvalidName(t *testing.T) {
	c := newSim(t, sim.Options{})
	for _, name := range []string{"", "Fo-Upper", "9starts-with-digit", "trailing-", strings.Repeat("a", 64)} {
		spec := cloudtest.Spec("inc-bad", "sim-a")
		spec.Name = name
		if _, err := c.Ensure(t.Context(), spec); !errors.Is(err, cloud.ErrPermanent) {
			t.Errorf("Ensure %q: %v, want ErrPermanent", name, err)
		}
	}
	if c.Created() != 0 {
		t.Errorf("Created = %d, want 0", c.Created())
	}
}

func TestFail(t *testing.T) {
	errBoom := &cloud.Error{Provider: "sim", Op: "x", Kind: cloud.ErrTransient}
	spec := cloudtest.Spec("inc-fail", "sim-a")
	calls := map[string]func(c *sim.Cloud) error{
		sim.OpEnsure: func(c *sim.Cloud) error { _, err := c.Ensure(context.Background(), spec); return err },
		sim.OpGet:    func(c *sim.Cloud) error { _, err := c.Get(context.Background(), spec.Name); return err },
		sim.OpList:   func(c *sim.Cloud) error { _, err := c.List(context.Background()); return err },
		sim.OpDelete: func(c *sim.Cloud) error { return c.Delete(context.Background(), spec.Name) },
		sim.OpSync: func(c *sim.Cloud) error {
			_, err := c.SyncStatus(context.Background(), cloud.Standby{Name: spec.Name})
			return err
		},
	}
	for op, call := range calls {
		t.Run(op, func(t *testing.T) {
			c := newSim(t, sim.Options{})
			if op != sim.OpEnsure {
				mustEnsure(t, c, spec)
			}
			c.Fail(op, errBoom, 2)
			// Other ops are not affected.
			for other, otherCall := range calls {
				if other == op || other == sim.OpDelete || other == sim.OpEnsure {
					continue
				}
				if op == sim.OpEnsure && (other == sim.OpGet || other == sim.OpSync) {
					continue // nothing to find yet
				}
				if err := otherCall(c); err != nil {
					t.Errorf("%s while %s is failing: %v", other, op, err)
				}
			}
			for i := range 2 {
				if err := call(c); !errors.Is(err, cloud.ErrTransient) {
					t.Errorf("call #%d: %v, want the injected ErrTransient", i+1, err)
				}
			}
			if op == sim.OpEnsure && c.Created() != 0 {
				t.Errorf("a failed Ensure created %d standbys", c.Created())
			}
			if op == sim.OpDelete && c.Live() != 1 {
				t.Errorf("a failed Delete left Live = %d, want 1", c.Live())
			}
			if err := call(c); err != nil {
				t.Errorf("call #3: %v, want success once the failures are used up", err)
			}
		})
	}
}

func TestFailQueues(t *testing.T) {
	c := newSim(t, sim.Options{})
	c.Fail(sim.OpList, cloud.ErrTransient, 1)
	c.Fail(sim.OpList, cloud.ErrPermanent, 1)
	for i, want := range []error{cloud.ErrTransient, cloud.ErrPermanent, nil} {
		_, err := c.List(t.Context())
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Errorf("List #%d: %v, want %v", i+1, err, want)
		}
	}
}

func TestFailUnknownOpPanics(t *testing.T) {
	c := newSim(t, sim.Options{})
	defer func() {
		if recover() == nil {
			t.Error("Fail with an unknown op did not panic")
		}
	}()
	c.Fail("create", cloud.ErrTransient, 1)
}

func TestFailAfter(t *testing.T) {
	ctx := t.Context()
	spec := cloudtest.Spec("inc-lost-answer", "sim-a")

	t.Run("ensure", func(t *testing.T) {
		c := newSim(t, sim.Options{})
		c.FailAfter(sim.OpEnsure, cloud.ErrTransient, 1)
		if _, err := c.Ensure(ctx, spec); !errors.Is(err, cloud.ErrTransient) {
			t.Fatalf("Ensure: %v, want ErrTransient", err)
		}
		if c.Created() != 1 || c.Live() != 1 {
			t.Fatalf("Created/Live = %d/%d, want 1/1: the call took effect", c.Created(), c.Live())
		}
		mustEnsure(t, c, spec) // the retry finds it
		if c.Created() != 1 {
			t.Errorf("the retry created another standby: Created = %d", c.Created())
		}
	})
	t.Run("delete", func(t *testing.T) {
		c := newSim(t, sim.Options{})
		mustEnsure(t, c, spec)
		c.FailAfter(sim.OpDelete, cloud.ErrTransient, 1)
		if err := c.Delete(ctx, spec.Name); !errors.Is(err, cloud.ErrTransient) {
			t.Fatalf("Delete: %v, want ErrTransient", err)
		}
		if c.Live() != 0 {
			t.Fatalf("Live = %d, want 0: the call took effect", c.Live())
		}
		if err := c.Delete(ctx, spec.Name); err != nil {
			t.Errorf("retried Delete: %v", err)
		}
	})
}

func TestLose(t *testing.T) {
	ctx := t.Context()
	c := newSim(t, sim.Options{})
	a, b := cloudtest.Spec("inc-lose-a", "sim-a"), cloudtest.Spec("inc-lose-b", "sim-a")
	mustEnsure(t, c, a)
	sb := mustEnsure(t, c, b)

	c.Lose(a.Name)
	if _, err := c.Get(ctx, a.Name); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("Get of a lost standby: %v, want ErrNotFound", err)
	}
	if _, err := c.SyncStatus(ctx, cloud.Standby{Name: a.Name}); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("SyncStatus of a lost standby: %v, want ErrNotFound", err)
	}
	if l, _ := c.List(ctx); len(l) != 1 || l[0].Name != sb.Name {
		t.Errorf("List = %v, want only %s", l, sb.Name)
	}
	if c.Live() != 1 {
		t.Errorf("Live = %d, want 1", c.Live())
	}
	if err := c.Delete(ctx, a.Name); err != nil {
		t.Errorf("Delete of a lost standby: %v, want nil", err)
	}
	c.Lose("fo-never-existed") // no-op
	mustEnsure(t, c, a)
	if c.Created() != 3 || c.Live() != 2 {
		t.Errorf("Created/Live = %d/%d after re-Ensure, want 3/2", c.Created(), c.Live())
	}
}

func TestSyncStatusNotFound(t *testing.T) {
	ctx := t.Context()
	c := newSim(t, sim.Options{})
	spec := cloudtest.Spec("inc-sync-gone", "sim-a")
	if _, err := c.SyncStatus(ctx, cloud.Standby{Name: spec.Name}); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("SyncStatus of unknown standby: %v, want ErrNotFound", err)
	}
	s := mustEnsure(t, c, spec)
	if err := c.Delete(ctx, s.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SyncStatus(ctx, s); !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("SyncStatus of deleted standby: %v, want ErrNotFound", err)
	}
}

func TestLabelsAreCopies(t *testing.T) {
	c := newSim(t, sim.Options{})
	spec := cloudtest.Spec("inc-labels", "sim-a")
	s := mustEnsure(t, c, spec)
	s.Labels[cloud.LabelManagedBy] = "someone-else"
	spec.Labels["failoverd-suite"] = "changed"
	got, err := c.Get(t.Context(), s.Name)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Labels[cloud.LabelManagedBy] != cloud.ManagedByValue || got.Labels["failoverd-suite"] != "cloudtest" {
		t.Errorf("Labels = %v: the caller's maps leaked into the cloud", got.Labels)
	}
}

func TestPersistence(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "state", "sim.json")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	opts := sim.Options{Now: clk.Now, BootTime: time.Minute, StatePath: path}
	c1 := newSim(t, opts)
	keep, drop, lost := cloudtest.Spec("inc-keep", "sim-b"), cloudtest.Spec("inc-drop", "sim-a"), cloudtest.Spec("inc-lost", "sim-a")
	c1.SlowBoot(keep.Name, time.Hour)
	sKeep := mustEnsure(t, c1, keep)
	clk.Advance(time.Second)
	mustEnsure(t, c1, drop)
	mustEnsure(t, c1, lost)
	if err := c1.Delete(ctx, drop.Name); err != nil {
		t.Fatal(err)
	}
	c1.Lose(lost.Name)
	c1.AddUnowned("operator-vm", "sim-a", nil)

	// A restarted failoverd: a fresh Cloud on the same file.
	clk.Advance(2 * time.Minute)
	c2 := newSim(t, opts)
	got, err := c2.Get(ctx, keep.Name)
	if err != nil {
		t.Fatalf("Get after restart: %v", err)
	}
	if got.Zone != sKeep.Zone || !got.CreatedAt.Equal(sKeep.CreatedAt) || got.Labels[cloud.LabelIncident] != sKeep.Labels[cloud.LabelIncident] {
		t.Errorf("after restart got %+v, want %+v", got, sKeep)
	}
	if got.State != cloud.StatePending {
		t.Errorf("State = %q, want %q: the slow boot must survive a restart", got.State, cloud.StatePending)
	}
	for _, name := range []string{drop.Name, lost.Name} {
		if _, err := c2.Get(ctx, name); !errors.Is(err, cloud.ErrNotFound) {
			t.Errorf("Get %s after restart: %v, want ErrNotFound", name, err)
		}
	}
	if l, _ := c2.List(ctx); len(l) != 1 {
		t.Errorf("List after restart = %v, want one standby", l)
	}
	if _, err := c2.Ensure(ctx, cloudtest.Spec("x", "sim-a")); err != nil {
		t.Fatal(err)
	}
	spec := keep
	spec.Name = "operator-vm"
	if _, err := c2.Ensure(ctx, spec); !errors.Is(err, cloud.ErrPermanent) {
		t.Errorf("Ensure over the persisted unowned instance: %v, want ErrPermanent", err)
	}
	mustEnsure(t, c2, keep)
	if c2.Created() != 1 || c2.Live() != 2 {
		t.Errorf("Created/Live = %d/%d, want 1/2: re-Ensure after restart must not create", c2.Created(), c2.Live())
	}

	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "sim.json" {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("state dir holds %v, want only sim.json (no temp files left)", names)
	}
}

func TestPersistenceErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name    string
		content string
	}{
		{"not json", "{"},
		{"unknown version", `{"version": 99, "instances": []}`},
		{"nameless instance", `{"version": 1, "instances": [{"zone": "sim-a"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := sim.New(sim.Options{StatePath: path}); err == nil {
				t.Error("New accepted a bad state file")
			}
		})
	}

	t.Run("unwritable", func(t *testing.T) {
		c := newSim(t, sim.Options{StatePath: filepath.Join(dir, "missing-dir", "sim.json")})
		spec := cloudtest.Spec("inc-unwritable", "sim-a")
		if _, err := c.Ensure(t.Context(), spec); !errors.Is(err, cloud.ErrTransient) {
			t.Fatalf("Ensure with an unwritable state file: %v, want ErrTransient", err)
		}
		if _, err := c.Get(t.Context(), spec.Name); !errors.Is(err, cloud.ErrNotFound) {
			t.Errorf("Get after a failed save: %v, want ErrNotFound (memory and disk agree)", err)
		}
		if c.Created() != 0 {
			t.Errorf("Created = %d, want 0", c.Created())
		}
	})
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	c := newSim(t, sim.Options{Registerer: reg})
	ctx := t.Context()
	for _, id := range []string{"inc-m-1", "inc-m-2", "inc-m-3"} {
		mustEnsure(t, c, cloudtest.Spec(id, "sim-a"))
	}
	mustEnsure(t, c, cloudtest.Spec("inc-m-1", "sim-a"))
	if err := c.Delete(ctx, cloud.NameFor("inc-m-1")); err != nil {
		t.Fatal(err)
	}
	c.Lose(cloud.NameFor("inc-m-2"))
	c.AddUnowned("operator-vm", "sim-a", nil)

	const want = `
# HELP failoverd_sim_instances Standby instances that currently exist in the simulated cloud.
# TYPE failoverd_sim_instances gauge
failoverd_sim_instances 1
# HELP failoverd_sim_instances_created_total Standby instances the simulated cloud created.
# TYPE failoverd_sim_instances_created_total counter
failoverd_sim_instances_created_total 3
# HELP failoverd_sim_instances_deleted_total Standby instances the simulated cloud deleted on request.
# TYPE failoverd_sim_instances_deleted_total counter
failoverd_sim_instances_deleted_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v %v", problems, err)
	}

	if _, err := sim.New(sim.Options{Registerer: reg}); err == nil {
		t.Error("a second Cloud on the same registry registered its metrics twice")
	}
}

func TestConcurrentUse(t *testing.T) {
	// Run under -race: every method, including the fault injectors, from
	// many goroutines at once.
	clk := newClock()
	c := newSim(t, sim.Options{Now: clk.Now, BootTime: time.Second, SyncTime: time.Minute, StatePath: filepath.Join(t.TempDir(), "s.json")})
	ctx := t.Context()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			spec := cloudtest.Spec("inc-conc", "sim-a")
			for range 20 {
				clk.Advance(time.Second)
				s, err := c.Ensure(ctx, spec)
				if err == nil {
					_, _ = c.SyncStatus(ctx, s)
				}
				_, _ = c.Get(ctx, spec.Name)
				_, _ = c.List(ctx)
				c.Fail(sim.OpGet, cloud.ErrTransient, 1)
				c.SetNoCapacity("sim-b", i%2 == 0)
				c.SlowBoot(spec.Name, time.Second)
				if i == 0 {
					_ = c.Delete(ctx, spec.Name)
				}
				_ = c.Live()
				_ = c.Created()
			}
		})
	}
	wg.Wait()
	if c.Live() > 1 {
		t.Errorf("Live = %d, want at most 1 standby for one name", c.Live())
	}
}
