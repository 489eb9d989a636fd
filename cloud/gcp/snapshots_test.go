package gcp

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/cloudtest"
	"github.com/failoverd/failoverd/cloud/gcp/gcpfake"
)

func snapshotHarness(mod func(*gcpfake.Server)) cloudtest.Harness {
	var mu sync.Mutex
	fakes := map[cloud.Provider]*gcpfake.Server{}
	return cloudtest.Harness{
		New: func(t *testing.T) cloud.Provider {
			p, srv := start(t, nil)
			if mod != nil {
				mod(srv)
			}
			mu.Lock()
			fakes[p] = srv
			mu.Unlock()
			return p
		},
		Zones: []string{zoneA, zoneB},
		AddUnownedSnapshot: func(t *testing.T, p cloud.Provider, name, validator string) {
			mu.Lock()
			srv := fakes[p]
			mu.Unlock()
			srv.AddSnapshot(name, map[string]string{cloud.LabelValidator: cloud.LabelValue(validator), LabelRole: RoleChainDataSnapshot, "chain": "hoodi"}, time.Now())
		},
	}
}

func TestSnapshotConformance(t *testing.T) {
	cloudtest.RunSnapshots(t, snapshotHarness(nil))
}

// Slow operations and an upload phase: SnapshotData may return before the
// snapshot is READY; the suite polls.
func TestSnapshotConformanceSlow(t *testing.T) {
	cloudtest.RunSnapshots(t, snapshotHarness(func(s *gcpfake.Server) {
		s.SetOperationDelay(100 * time.Millisecond)
		s.SetSnapshotUploadTime(300 * time.Millisecond)
	}))
}

// TestSnapshotFoundByProvisioning: a snapshot taken by SnapshotData with the
// provider's SnapshotLabels as labels is what a later incident of the same
// validator creates its data disk from.
func TestSnapshotFoundByProvisioning(t *testing.T) {
	sel := map[string]string{"chain": "hoodi"}
	p, srv := start(t, func(o *Options) { o.SnapshotLabels = sel })
	srv.AddSnapshot("older-matching", map[string]string{"chain": "hoodi", cloud.LabelValidator: "lighthouse-vc-0"}, time.Now().Add(-48*time.Hour))
	first := cloudtest.Spec("inc-keeper-1", "europe-west4-b")
	if _, err := p.Ensure(ctxT(t), first); err != nil {
		t.Fatal(err)
	}
	snap, err := p.SnapshotData(ctxT(t), first.Name, "warm-2026-01-01", sel)
	if err != nil {
		t.Fatal(err)
	}
	if !snap.Ready || snap.Location != "europe-west4" || snap.SizeGB != 2000 || snap.Validator != "lighthouse-vc-0" {
		t.Errorf("snapshot = %+v", snap)
	}
	got := srv.Snapshot("warm-2026-01-01")
	if got == nil || !strings.HasSuffix(got.GetSourceDisk(), "/zones/europe-west4-b/disks/"+DataDiskName(first.Name)) {
		t.Fatalf("fake snapshot = %v, want it from the data disk", got)
	}
	if l := got.GetLabels(); l[LabelRole] != RoleChainDataSnapshot || l[cloud.LabelManagedBy] != cloud.ManagedByValue || l["chain"] != "hoodi" {
		t.Errorf("snapshot labels = %v", l)
	}
	if err := p.Delete(ctxT(t), first.Name); err != nil {
		t.Fatal(err)
	}
	second := cloudtest.Spec("inc-keeper-2", zoneA)
	s, err := p.Ensure(ctxT(t), second)
	if err != nil {
		t.Fatal(err)
	}
	if s.Labels[LabelSnapshot] != "warm-2026-01-01" {
		t.Errorf("label %s = %q, want warm-2026-01-01", LabelSnapshot, s.Labels[LabelSnapshot])
	}
	d := srv.Disk(zoneA, DataDiskName(second.Name))
	if d == nil || !strings.HasSuffix(d.GetSourceSnapshot(), "/global/snapshots/warm-2026-01-01") {
		t.Errorf("data disk = %v, want it from warm-2026-01-01", d)
	}
}

func TestSnapshotRequestIDDedupe(t *testing.T) {
	p, srv := start(t, nil)
	spec := cloudtest.Spec("inc-snap-lost", zoneA)
	if _, err := p.Ensure(ctxT(t), spec); err != nil {
		t.Fatal(err)
	}
	// The insert takes effect but its answer is lost; the retry carries the
	// same requestId and finds the snapshot: one snapshot, no error.
	srv.FailAfter("POST", "/global/snapshots", 503, "backendError", 1)
	if _, err := p.SnapshotData(ctxT(t), spec.Name, "warm-lost", nil); !errors.Is(err, cloud.ErrTransient) {
		t.Fatalf("first SnapshotData = %v, want ErrTransient (answer lost)", err)
	}
	snap, err := p.SnapshotData(ctxT(t), spec.Name, "warm-lost", nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := srv.Created("snapshot"); n != 1 {
		t.Errorf("%d snapshots created, want 1", n)
	}
	if !snap.Ready {
		t.Errorf("snapshot not ready: %+v", snap)
	}
}

func TestSnapshotFailedAndTimeout(t *testing.T) {
	t.Run("Failed", func(t *testing.T) {
		p, srv := start(t, nil)
		spec := cloudtest.Spec("inc-snap-failed", zoneA)
		if _, err := p.Ensure(ctxT(t), spec); err != nil {
			t.Fatal(err)
		}
		if _, err := p.SnapshotData(ctxT(t), spec.Name, "warm-failed", nil); err != nil {
			t.Fatal(err)
		}
		srv.SetSnapshotStatus("warm-failed", "FAILED")
		if _, err := p.SnapshotData(ctxT(t), spec.Name, "warm-failed", nil); !errors.Is(err, cloud.ErrPermanent) {
			t.Errorf("SnapshotData over a FAILED snapshot: %v, want ErrPermanent", err)
		}
		l, err := p.Snapshots(ctxT(t), spec.Validator)
		if err != nil || len(l) != 1 || l[0].Ready {
			t.Errorf("Snapshots = %+v, %v; want the FAILED one listed, not ready", l, err)
		}
		if err := p.DeleteSnapshot(ctxT(t), "warm-failed"); err != nil || srv.Snapshots() != 0 {
			t.Errorf("DeleteSnapshot: %v, %d left", err, srv.Snapshots())
		}
	})
	t.Run("OperationOutlivesTimeout", func(t *testing.T) {
		p, srv := start(t, func(o *Options) { o.OperationTimeout = 200 * time.Millisecond })
		spec := cloudtest.Spec("inc-snap-slow", zoneA)
		if _, err := p.Ensure(ctxT(t), spec); err != nil {
			t.Fatal(err)
		}
		srv.SetOperationDelay(time.Hour)
		srv.SetWaitMax(50 * time.Millisecond)
		snap, err := p.SnapshotData(ctxT(t), spec.Name, "warm-slow", nil)
		if err != nil {
			t.Fatalf("SnapshotData with a slow operation: %v, want the snapshot not ready", err)
		}
		if snap.Ready || snap.Name != "warm-slow" {
			t.Errorf("snapshot = %+v, want warm-slow not ready", snap)
		}
	})
	t.Run("UnownedName", func(t *testing.T) {
		p, srv := start(t, nil)
		spec := cloudtest.Spec("inc-snap-taken", zoneA)
		if _, err := p.Ensure(ctxT(t), spec); err != nil {
			t.Fatal(err)
		}
		srv.AddSnapshot("warm-taken", map[string]string{"owner": "operator"}, time.Now())
		if _, err := p.SnapshotData(ctxT(t), spec.Name, "warm-taken", nil); !errors.Is(err, cloud.ErrPermanent) {
			t.Errorf("SnapshotData over an unowned snapshot name: %v, want ErrPermanent", err)
		}
	})
}
