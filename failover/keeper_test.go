package failover_test

import (
	"strings"
	"testing"
	"time"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/sim"
	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/config"
)

func keeperHarness(t *testing.T) *harness {
	return newHarness(t, func(c *config.Config) {
		c.Fleet[0].Snapshots = config.Snapshots{Every: 24 * time.Hour, Retain: 2}
	})
}

// keep runs keeper passes until the latest run of eth-1 has finished (the
// simulated node syncs in 5m30s; the clock moves a poll at a time).
func (h *harness) keep() failover.SnapshotRun {
	h.t.Helper()
	for range 200 {
		if err := h.eng.KeepSnapshots(h.ctx); err != nil {
			h.t.Fatal(err)
		}
		runs, err := h.store.ListSnapshotRuns(h.ctx, "eth-1")
		if err != nil {
			h.t.Fatal(err)
		}
		if n := len(runs); n > 0 && runs[n-1].State.Finished() {
			return runs[n-1]
		}
		h.clk.Advance(15 * time.Second)
	}
	h.t.Fatal("the run never finished")
	return failover.SnapshotRun{}
}

func TestKeeperRunAndRetention(t *testing.T) {
	h := keeperHarness(t)
	var names []string
	for i := 1; i <= 3; i++ {
		run := h.keep()
		if run.State != failover.RunDone || !run.SnapshotReady {
			t.Fatalf("run %d: %s (%s)", i, run.State, run.Reason)
		}
		if run.Standby == nil || run.Standby.State != cloud.StateDeleted || run.Standby.CostUSD <= 0 {
			t.Fatalf("run %d left its node or did not cost it: %+v", i, run.Standby)
		}
		var path []string
		for _, e := range run.History {
			path = append(path, e.Cause)
		}
		got := strings.Join(path, " | ")
		for _, step := range []string{"provisioning -> syncing", "syncing -> stopping", "stopping -> snapshotting", "snapshotting -> cleanup", "cleanup -> done"} {
			if !strings.Contains(got, step) {
				t.Fatalf("run %d history lacks %q: %s", i, step, got)
			}
		}
		names = append(names, run.Snapshot)
		if h.cloud.Live() != 0 {
			t.Fatalf("run %d: %d nodes still live", i, h.cloud.Live())
		}
		// Not due again until a day after the run began.
		h.clk.Advance(time.Hour)
		if err := h.eng.KeepSnapshots(h.ctx); err != nil {
			t.Fatal(err)
		}
		if runs, _ := h.store.ListSnapshotRuns(h.ctx, "eth-1"); len(runs) != i {
			t.Fatalf("a run started before it was due: %d runs", len(runs))
		}
		h.clk.Advance(24 * time.Hour)
	}
	snaps, err := h.cloud.Snapshots(h.ctx, "eth-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 2 || snaps[0].Name != names[2] || snaps[1].Name != names[1] {
		t.Fatalf("retention 2 kept %v, want the newest two of %v", snaps, names)
	}
	last, _ := h.store.ListSnapshotRuns(h.ctx, "eth-1")
	if p := last[2].Pruned; len(p) != 1 || p[0] != names[0] {
		t.Fatalf("third run pruned %v, want [%s]", p, names[0])
	}

	// A real outage now starts from the newest warm snapshot.
	h.fire("eth-1", "fp1", h.clk.Now().Add(-time.Hour))
	h.reconcile("eth-1")
	inc := h.wantState("eth-1", failover.StateSyncing)
	sb, err := h.cloud.Get(h.ctx, inc.Standby.Name)
	if err != nil || sb.Labels[sim.LabelSnapshot] != names[2] {
		t.Fatalf("the outage's standby did not start from %s: %v %v", names[2], sb.Labels, err)
	}
}

// TestKeeperGivesWayToOutages: no run starts while an incident is open, and
// a run in progress aborts (deleting its node) when one opens.
func TestKeeperGivesWayToOutages(t *testing.T) {
	h := keeperHarness(t)
	h.fire("eth-1", "fp1", start.Add(-time.Hour))
	h.reconcile("eth-1")
	if err := h.eng.KeepSnapshots(h.ctx); err != nil {
		t.Fatal(err)
	}
	if runs, _ := h.store.ListSnapshotRuns(h.ctx, "eth-1"); len(runs) != 0 {
		t.Fatalf("a run started during an incident: %+v", runs)
	}
	inc := h.incident("eth-1")
	if _, err := h.eng.Teardown(h.ctx, inc.ID, "tester"); err != nil {
		t.Fatal(err)
	}
	h.reconcile("eth-1")
	h.wantState("eth-1", failover.StateClosed)

	if err := h.eng.KeepSnapshots(h.ctx); err != nil {
		t.Fatal(err)
	}
	runs, _ := h.store.ListSnapshotRuns(h.ctx, "eth-1")
	if len(runs) != 1 || runs[0].State != failover.RunSyncing || h.cloud.Live() != 1 {
		t.Fatalf("run after the incident: %+v, %d live", runs, h.cloud.Live())
	}
	// The GC does not take a running keeper's node for an orphan.
	h.clk.Advance(h.cfg.Cloud.GC.GracePeriod + time.Minute)
	if res, err := h.eng.CollectGarbage(h.ctx); err != nil || len(res.Orphans) != 0 {
		t.Fatalf("GC: %+v %v", res, err)
	}
	// A new outage opens: the run gives way.
	h.fire("eth-1", "fp2", h.clk.Now())
	h.reconcile("eth-1")
	if err := h.eng.KeepSnapshots(h.ctx); err != nil {
		t.Fatal(err)
	}
	runs, _ = h.store.ListSnapshotRuns(h.ctx, "eth-1")
	if runs[0].State != failover.RunAborted || runs[0].Standby.State != cloud.StateDeleted {
		t.Fatalf("run did not give way: %s %+v", runs[0].State, runs[0].Standby)
	}
	if _, err := h.cloud.Get(h.ctx, runs[0].Standby.Name); err == nil {
		t.Fatal("the aborted run's node is still there")
	}
	if h.incident("eth-1").State == failover.StateClosed {
		t.Fatal("the outage was not handled")
	}
}

// TestKeeperSpendsTheBudget: the keeper's node-hours count against the
// monthly budget, and no run starts once it is spent.
func TestKeeperSpendsTheBudget(t *testing.T) {
	h := newHarness(t, func(c *config.Config) {
		c.Fleet[0].Snapshots = config.Snapshots{Every: time.Hour, Retain: 1}
		c.Caps.MonthlyStandbyHours = 1
	})
	h.keep()
	h.clk.Advance(time.Hour)
	if err := h.eng.KeepSnapshots(h.ctx); err != nil { // the second run starts its node
		t.Fatal(err)
	}
	h.clk.Advance(2 * time.Hour) // the node lives two hours before the keeper looks again
	h.keep()
	h.clk.Advance(time.Hour)
	if err := h.eng.KeepSnapshots(h.ctx); err != nil {
		t.Fatal(err)
	}
	runs, _ := h.store.ListSnapshotRuns(h.ctx, "eth-1")
	if len(runs) != 2 {
		t.Fatalf("%d runs, want 2: the third must wait for the budget", len(runs))
	}
	used := failover.StandbyHours([]failover.Incident{{Standby: runs[0].Standby}, {Standby: runs[1].Standby}}, h.clk.Now())
	if used < 1 {
		t.Fatalf("keeper hours %.2f", used)
	}
}
