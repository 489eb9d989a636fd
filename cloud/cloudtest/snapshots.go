package cloudtest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/failoverd/failoverd/cloud"
)

// Snapshot labels every provider writes on SnapshotData's snapshots.
const (
	labelRole             = "failoverd-role"
	roleChainDataSnapshot = "chain-data-snapshot"
)

// readyTimeout bounds how long RunSnapshots waits for a snapshot to become
// Ready.
const readyTimeout = 30 * time.Second

// RunSnapshots runs the snapshot conformance suite against the
// cloud.Snapshotter the providers of h are. The keeper relies on exactly
// these behaviours:
//
//   - SnapshotData of an existing standby returns the snapshot (Name, ID,
//     Provider, Validator, CreatedAt, the caller's labels plus managed-by,
//     failoverd-validator and failoverd-role=chain-data-snapshot); it is
//     listed by Snapshots(validator) and becomes Ready within a bound.
//   - SnapshotData is idempotent by snapshot name, also after the standby is
//     gone: the same snapshot (same ID) comes back, and one is listed.
//   - Snapshots lists newest first, and only the validator's own.
//   - DeleteSnapshot removes it; twice, or of a name never used, is nil.
//   - Unowned snapshots are never listed, and DeleteSnapshot of one answers
//     ErrPermanent and leaves it (checked when Harness.AddUnownedSnapshot
//     is set).
//   - SnapshotData of an unknown standby wraps cloud.ErrNotFound.
//   - Every call with a cancelled context wraps context.Canceled.
func RunSnapshots(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil || len(h.Zones) == 0 {
		t.Fatal("cloudtest: Harness.New and Harness.Zones are required")
	}
	zone := h.Zones[0]
	extra := map[string]string{"failoverd-suite": "cloudtest", "chain": "hoodi"}
	newSnap := func(t *testing.T) (cloud.Provider, cloud.Snapshotter) {
		p := h.New(t)
		s, ok := p.(cloud.Snapshotter)
		if !ok {
			t.Fatalf("%s does not implement cloud.Snapshotter", p.Name())
		}
		return p, s
	}

	t.Run("SnapshotListedAndReady", func(t *testing.T) {
		p, s := newSnap(t)
		spec := Spec("inc-snap-ready", zone)
		ensure(t, p, spec)
		got := snapshotData(t, s, spec.Name, "cloudtest-ready-1", extra)
		checkSnapshot(t, p, spec, got, "cloudtest-ready-1", extra)
		ready := waitReady(t, s, spec.Validator, got.Name)
		if ready.ID != got.ID {
			t.Errorf("listed ID %q, SnapshotData returned %q", ready.ID, got.ID)
		}
		checkSnapshot(t, p, spec, ready, "cloudtest-ready-1", extra)
		if ready.SizeGB <= 0 {
			t.Errorf("ready snapshot SizeGB = %d, want > 0", ready.SizeGB)
		}
	})

	t.Run("IdempotentByName", func(t *testing.T) {
		p, s := newSnap(t)
		spec := Spec("inc-snap-twice", zone)
		ensure(t, p, spec)
		first := snapshotData(t, s, spec.Name, "cloudtest-twice-1", extra)
		second := snapshotData(t, s, spec.Name, "cloudtest-twice-1", extra)
		if second.ID != first.ID || second.Name != first.Name || !second.CreatedAt.Equal(first.CreatedAt) {
			t.Errorf("second SnapshotData = %s/%s@%v, want the first %s/%s@%v", second.Name, second.ID, second.CreatedAt, first.Name, first.ID, first.CreatedAt)
		}
		if l := snapshots(t, s, spec.Validator); len(l) != 1 || l[0].ID != first.ID {
			t.Fatalf("Snapshots after two SnapshotData = %v, want exactly [%s]", snapNames(l), first.Name)
		}
		// The keeper may crash after the snapshot and delete the VM before
		// it runs again: the name still answers with the same snapshot.
		if err := p.Delete(callCtx(t), spec.Name); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		third := snapshotData(t, s, spec.Name, "cloudtest-twice-1", extra)
		if third.ID != first.ID {
			t.Errorf("SnapshotData after the standby is gone = %s, want the existing %s", third.ID, first.ID)
		}
	})

	t.Run("NewestFirst", func(t *testing.T) {
		p, s := newSnap(t)
		spec := Spec("inc-snap-order", zone)
		ensure(t, p, spec)
		names := []string{"cloudtest-order-1", "cloudtest-order-2", "cloudtest-order-3"}
		for _, n := range names {
			snapshotData(t, s, spec.Name, n, extra)
			time.Sleep(20 * time.Millisecond) // distinct creation times on every clock
		}
		l := snapshots(t, s, spec.Validator)
		want := []string{names[2], names[1], names[0]}
		if got := snapNames(l); !slices.Equal(got, want) {
			t.Fatalf("Snapshots = %v, want newest first %v", got, want)
		}
		for i := 1; i < len(l); i++ {
			if l[i].CreatedAt.After(l[i-1].CreatedAt) {
				t.Errorf("Snapshots[%d] (%v) is newer than Snapshots[%d] (%v)", i, l[i].CreatedAt, i-1, l[i-1].CreatedAt)
			}
		}
	})

	t.Run("PerValidator", func(t *testing.T) {
		p, s := newSnap(t)
		a, b := Spec("inc-snap-val-a", zone), Spec("inc-snap-val-b", zone)
		b.Validator = "Lighthouse VC #1" // made a label value by the provider
		ensure(t, p, a)
		ensure(t, p, b)
		sa := snapshotData(t, s, a.Name, "cloudtest-val-a", extra)
		sb := snapshotData(t, s, b.Name, "cloudtest-val-b", extra)
		if sa.Validator != cloud.LabelValue(a.Validator) || sb.Validator != cloud.LabelValue(b.Validator) {
			t.Errorf("Validator = %q / %q, want %q / %q", sa.Validator, sb.Validator, cloud.LabelValue(a.Validator), cloud.LabelValue(b.Validator))
		}
		if got := snapNames(snapshots(t, s, a.Validator)); !slices.Equal(got, []string{"cloudtest-val-a"}) {
			t.Errorf("Snapshots(%q) = %v, want [cloudtest-val-a]", a.Validator, got)
		}
		if got := snapNames(snapshots(t, s, b.Validator)); !slices.Equal(got, []string{"cloudtest-val-b"}) {
			t.Errorf("Snapshots(%q) = %v, want [cloudtest-val-b]", b.Validator, got)
		}
		if l := snapshots(t, s, "nobody"); len(l) != 0 {
			t.Errorf("Snapshots(nobody) = %v, want none", snapNames(l))
		}
	})

	t.Run("Delete", func(t *testing.T) {
		p, s := newSnap(t)
		spec := Spec("inc-snap-delete", zone)
		ensure(t, p, spec)
		keep := snapshotData(t, s, spec.Name, "cloudtest-keep-1", extra)
		drop := snapshotData(t, s, spec.Name, "cloudtest-drop-1", extra)
		waitReady(t, s, spec.Validator, drop.Name)
		for i := range 2 {
			if err := s.DeleteSnapshot(callCtx(t), drop.Name); err != nil {
				t.Fatalf("DeleteSnapshot #%d: %v", i+1, err)
			}
		}
		if err := s.DeleteSnapshot(callCtx(t), "cloudtest-never-taken"); err != nil {
			t.Errorf("DeleteSnapshot of a name never used: %v, want nil", err)
		}
		if got := snapNames(snapshots(t, s, spec.Validator)); !slices.Equal(got, []string{keep.Name}) {
			t.Errorf("Snapshots after DeleteSnapshot = %v, want [%s]", got, keep.Name)
		}
	})

	t.Run("UnownedIsUntouchable", func(t *testing.T) {
		if h.AddUnownedSnapshot == nil {
			t.Skip("Harness.AddUnownedSnapshot not set")
		}
		p, s := newSnap(t)
		spec := Spec("inc-snap-unowned", zone)
		ensure(t, p, spec)
		mine := snapshotData(t, s, spec.Name, "cloudtest-mine-1", extra)
		h.AddUnownedSnapshot(t, p, "cloudtest-foreign-1", spec.Validator)
		if got := snapNames(snapshots(t, s, spec.Validator)); !slices.Equal(got, []string{mine.Name}) {
			t.Errorf("Snapshots = %v, want only [%s] (never an unowned one)", got, mine.Name)
		}
		for i := range 2 { // the second answer proves the first deleted nothing
			if err := s.DeleteSnapshot(callCtx(t), "cloudtest-foreign-1"); !errors.Is(err, cloud.ErrPermanent) {
				t.Errorf("DeleteSnapshot #%d of an unowned snapshot: %v, want ErrPermanent", i+1, err)
			}
		}
	})

	t.Run("UnknownStandby", func(t *testing.T) {
		_, s := newSnap(t)
		_, err := s.SnapshotData(callCtx(t), cloud.NameFor("inc-never-created"), "cloudtest-orphan-1", extra)
		if !errors.Is(err, cloud.ErrNotFound) {
			t.Errorf("SnapshotData of an unknown standby: %v, want ErrNotFound", err)
		}
		if l := snapshots(t, s, Spec("x", zone).Validator); len(l) != 0 {
			t.Errorf("Snapshots = %v after a failed SnapshotData, want none", snapNames(l))
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		p, s := newSnap(t)
		spec := Spec("inc-snap-cancel", zone)
		ensure(t, p, spec)
		existing := snapshotData(t, s, spec.Name, "cloudtest-cancel-1", extra)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		calls := map[string]func() error{
			"SnapshotData":   func() error { _, err := s.SnapshotData(ctx, spec.Name, "cloudtest-cancel-2", extra); return err },
			"Snapshots":      func() error { _, err := s.Snapshots(ctx, spec.Validator); return err },
			"DeleteSnapshot": func() error { return s.DeleteSnapshot(ctx, existing.Name) },
		}
		for name, call := range calls {
			done := make(chan error, 1)
			go func() { done <- call() }()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("%s with a cancelled context: %v, want an error wrapping context.Canceled", name, err)
				}
			case <-time.After(callTimeout):
				t.Fatalf("%s with a cancelled context did not return within %v", name, callTimeout)
			}
		}
		if got := snapNames(snapshots(t, s, spec.Validator)); !slices.Equal(got, []string{existing.Name}) {
			t.Errorf("Snapshots after cancelled calls = %v, want [%s]", got, existing.Name)
		}
	})
}

func snapshotData(t *testing.T, s cloud.Snapshotter, standby, name string, labels map[string]string) cloud.Snapshot {
	t.Helper()
	got, err := s.SnapshotData(callCtx(t), standby, name, labels)
	if err != nil {
		t.Fatalf("SnapshotData %s of %s: %v", name, standby, err)
	}
	return got
}

func snapshots(t *testing.T, s cloud.Snapshotter, validator string) []cloud.Snapshot {
	t.Helper()
	l, err := s.Snapshots(callCtx(t), validator)
	if err != nil {
		t.Fatalf("Snapshots %s: %v", validator, err)
	}
	return l
}

// waitReady polls Snapshots until name is listed Ready, at most readyTimeout.
func waitReady(t *testing.T, s cloud.Snapshotter, validator, name string) cloud.Snapshot {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	var last []cloud.Snapshot
	for {
		last = snapshots(t, s, validator)
		for _, sn := range last {
			if sn.Name == name && sn.Ready {
				return sn
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("snapshot %s not listed Ready within %v; Snapshots = %v", name, readyTimeout, snapNames(last))
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func checkSnapshot(t *testing.T, p cloud.Provider, spec cloud.StandbySpec, got cloud.Snapshot, name string, extra map[string]string) {
	t.Helper()
	if got.Name != name {
		t.Errorf("Name = %q, want %q", got.Name, name)
	}
	if got.ID == "" {
		t.Error("ID is empty")
	}
	if got.Provider != p.Name() {
		t.Errorf("Provider = %q, want %q", got.Provider, p.Name())
	}
	if got.Validator != cloud.LabelValue(spec.Validator) {
		t.Errorf("Validator = %q, want %q", got.Validator, cloud.LabelValue(spec.Validator))
	}
	if got.CreatedAt.IsZero() {
		t.Error("CreatedAt is zero; retention needs it")
	}
	want := map[string]string{
		cloud.LabelManagedBy: cloud.ManagedByValue,
		cloud.LabelValidator: cloud.LabelValue(spec.Validator),
		labelRole:            roleChainDataSnapshot,
	}
	for k, v := range extra {
		want[k] = v
	}
	for k, v := range want {
		if got.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, got.Labels[k], v, got.Labels)
		}
	}
}

func snapNames(l []cloud.Snapshot) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = s.Name
	}
	return out
}
