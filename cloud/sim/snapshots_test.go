package sim_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/cloudtest"
	"github.com/failoverd/failoverd/cloud/sim"
)

func TestSnapshotConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts func(t *testing.T) sim.Options
	}{
		{"memory", func(t *testing.T) sim.Options { return sim.Options{} }},
		{"persistent-slow", func(t *testing.T) sim.Options {
			return sim.Options{StatePath: filepath.Join(t.TempDir(), "sim.json"), SnapshotTime: 200 * time.Millisecond}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cloudtest.RunSnapshots(t, cloudtest.Harness{
				New: func(t *testing.T) cloud.Provider {
					c, err := sim.New(tc.opts(t))
					if err != nil {
						t.Fatalf("sim.New: %v", err)
					}
					return c
				},
				Zones: []string{"sim-a", "sim-b"},
				AddUnownedSnapshot: func(t *testing.T, p cloud.Provider, name, validator string) {
					p.(*sim.Cloud).AddUnownedSnapshot(name, validator, map[string]string{"owner": "operator"})
				},
			})
		})
	}
}

// TestEnsurePrefersNewestReadySnapshot: Ensure labels the standby with the
// newest ready snapshot of its validator, so the keeper's tests can see
// which one provisioning would restore.
func TestEnsurePrefersNewestReadySnapshot(t *testing.T) {
	clk := newClock()
	path := filepath.Join(t.TempDir(), "sim.json")
	c := newSim(t, sim.Options{Now: clk.Now, SnapshotTime: time.Hour, StatePath: path})
	ctx := t.Context()

	none := mustEnsure(t, c, cloudtest.Spec("inc-a", "sim-a"))
	if got := none.Labels[sim.LabelSnapshot]; got != "none" {
		t.Fatalf("label %s = %q, want none", sim.LabelSnapshot, got)
	}
	if _, err := c.SnapshotData(ctx, none.Name, "warm-1", nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(30 * time.Minute)
	if _, err := c.SnapshotData(ctx, none.Name, "warm-2", nil); err != nil {
		t.Fatal(err)
	}
	other := cloudtest.Spec("inc-other", "sim-a")
	other.Validator = "someone-else"
	mustEnsure(t, c, other)
	clk.Advance(2 * time.Hour)
	if _, err := c.SnapshotData(ctx, cloud.NameFor("inc-other"), "warm-other", nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Hour + 5*time.Minute)
	if _, err := c.SnapshotData(ctx, none.Name, "warm-3", nil); err != nil { // not ready yet
		t.Fatal(err)
	}

	s := mustEnsure(t, c, cloudtest.Spec("inc-b", "sim-a"))
	if got := s.Labels[sim.LabelSnapshot]; got != "warm-2" {
		t.Errorf("label %s = %q, want warm-2 (the newest ready of the validator)", sim.LabelSnapshot, got)
	}
	// The snapshots survive a restart.
	c2 := newSim(t, sim.Options{Now: clk.Now, SnapshotTime: time.Hour, StatePath: path})
	l, err := c2.Snapshots(ctx, "lighthouse-vc-0")
	if err != nil || len(l) != 3 || l[0].Name != "warm-3" || l[0].Ready || !l[1].Ready {
		t.Fatalf("Snapshots after restart = %+v, %v", l, err)
	}
	clk.Advance(time.Hour)
	if err := c2.DeleteSnapshot(ctx, "warm-2"); err != nil {
		t.Fatal(err)
	}
	s = mustEnsure(t, c2, cloudtest.Spec("inc-c", "sim-a"))
	if got := s.Labels[sim.LabelSnapshot]; got != "warm-3" {
		t.Errorf("label %s = %q, want warm-3", sim.LabelSnapshot, got)
	}
}

func TestSnapshotFailureInjection(t *testing.T) {
	c := newSim(t, sim.Options{})
	s := mustEnsure(t, c, cloudtest.Spec("inc-inject", "sim-a"))
	boom := errors.New("boom")
	c.Fail(sim.OpSnapshot, boom, 1)
	if _, err := c.SnapshotData(t.Context(), s.Name, "warm-x", nil); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	c.FailAfter(sim.OpSnapshot, boom, 1)
	if _, err := c.SnapshotData(t.Context(), s.Name, "warm-x", nil); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if l, _ := c.Snapshots(t.Context(), "lighthouse-vc-0"); len(l) != 1 {
		t.Fatalf("FailAfter: %d snapshots, want the one taken", len(l))
	}
	c.Fail(sim.OpDeleteSnapshot, boom, 1)
	if err := c.DeleteSnapshot(t.Context(), "warm-x"); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	c.Fail(sim.OpSnapshots, boom, 1)
	if _, err := c.Snapshots(t.Context(), "lighthouse-vc-0"); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
}
