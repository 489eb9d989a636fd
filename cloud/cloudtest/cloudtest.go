// Package cloudtest is the conformance suite every cloud.Provider passes: the
// simulated cloud directly, the real ones against local servers that speak
// their wire protocol. The engine relies on exactly these behaviours, so a
// provider that passes can be swapped in without the engine noticing.
//
// Contract decisions the suite pins down:
//
//   - Harness.New returns a provider over an empty cloud: no failoverd-owned
//     standbys exist yet (unowned resources may).
//   - Every returned standby has a non-zero CreatedAt that never changes; the
//     garbage collector's grace period is measured from it.
//   - After Delete, Get returns an error wrapping cloud.ErrNotFound, or a
//     standby whose State is cloud.StateTerminated or cloud.StateDeleted (real
//     clouds keep terminated instances visible for a while). List may likewise
//     still show it, but only in one of those two states.
//   - A call with a cancelled context returns promptly with an error that
//     wraps context.Canceled, so the engine can tell shutdown from a cloud
//     failure, and a cancelled Ensure creates nothing.
//   - Unowned instances (without managed-by=failoverd) are invisible and
//     untouchable: List and Get do not show them, Delete leaves them alone and
//     returns nil, and Ensure over a name one of them holds fails with
//     cloud.ErrPermanent instead of adopting it. Checked only when the harness
//     can plant one (Harness.AddUnowned).
package cloudtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/failoverd/failoverd/cloud"
)

// Harness tells the suite how to get a provider.
type Harness struct {
	// New returns a provider over an empty cloud; called once per subtest.
	New func(t *testing.T) cloud.Provider
	// Zones are zones the provider accepts; at least one.
	Zones []string
	// AddUnowned, when set, plants an instance named name in zone that
	// failoverd does not own (no managed-by=failoverd label), as an operator's
	// own VM would be. Optional: without it the suite cannot check that
	// providers leave unowned instances alone.
	AddUnowned func(t *testing.T, p cloud.Provider, name, zone string)
	// AddUnownedSnapshot, when set, plants a ready snapshot named name that
	// failoverd does not own (no managed-by=failoverd label or tag) but that
	// is labelled as a chain-data snapshot of validator. Optional; used by
	// RunSnapshots to check that unowned snapshots are never listed or
	// deleted.
	AddUnownedSnapshot func(t *testing.T, p cloud.Provider, name, validator string)
}

// callTimeout bounds every provider call, so a provider that hangs fails the
// test instead of stalling the whole run.
const callTimeout = 30 * time.Second

// Spec returns a realistic spec for incidentID, to be created in zone.
func Spec(incidentID, zone string) cloud.StandbySpec {
	return cloud.StandbySpec{
		Name:       cloud.NameFor(incidentID),
		IncidentID: incidentID,
		Validator:  "lighthouse-vc-0",
		Site:       "home-lab",
		Chain:      "ethereum",
		Network:    "hoodi",
		Zone:       zone,
		Placement: cloud.Placement{
			Zones:       []string{zone},
			MachineType: "e2-standard-8",
			DiskGB:      2000,
		},
		Labels: map[string]string{"failoverd-suite": "cloudtest"},
	}
}

// Run runs the conformance suite against the provider h makes.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("cloudtest: Harness.New is nil")
	}
	if len(h.Zones) == 0 {
		t.Fatal("cloudtest: Harness.Zones is empty")
	}
	zone := h.Zones[0]
	// A second zone for the idempotency-across-zones case; with only one zone
	// accepted, a made-up one proves Ensure looks for the name before the zone.
	otherZone := "cloudtest-elsewhere-1"
	if len(h.Zones) > 1 {
		otherZone = h.Zones[1]
	}

	t.Run("EnsureCreates", func(t *testing.T) {
		p := h.New(t)
		spec := Spec("inc-create-1", zone)
		s := ensure(t, p, spec)
		checkStandby(t, p, spec, s, zone)
		if s.State != cloud.StatePending && s.State != cloud.StateRunning {
			t.Errorf("new standby State = %q, want %q or %q", s.State, cloud.StatePending, cloud.StateRunning)
		}
		got := get(t, p, spec.Name)
		sameStandby(t, "Get after Ensure", got, s)
	})

	t.Run("EnsureTwiceIsOne", func(t *testing.T) {
		p := h.New(t)
		spec := Spec("inc-twice-1", zone)
		first := ensure(t, p, spec)
		second := ensure(t, p, spec)
		sameStandby(t, "second Ensure", second, first)
		l := list(t, p)
		if len(l) != 1 || l[0].Name != spec.Name {
			t.Fatalf("List after two Ensure = %v, want exactly [%s]", names(l), spec.Name)
		}
		sameStandby(t, "List entry", l[0], first)
	})

	t.Run("EnsureExistingInOtherZone", func(t *testing.T) {
		p := h.New(t)
		spec := Spec("inc-zone-1", zone)
		first := ensure(t, p, spec)
		moved := spec
		moved.Zone = otherZone
		moved.Placement.Zones = []string{otherZone, zone}
		second := ensure(t, p, moved)
		if second.Zone != zone {
			t.Errorf("Ensure with Zone %q of a standby in %q returned Zone %q, want the original", otherZone, zone, second.Zone)
		}
		sameStandby(t, "Ensure in another zone", second, first)
		if l := list(t, p); len(l) != 1 {
			t.Errorf("List = %v, want exactly one standby", names(l))
		}
	})

	t.Run("ConcurrentEnsure", func(t *testing.T) {
		p := h.New(t)
		spec := Spec("inc-concurrent-1", zone)
		const n = 8
		var (
			wg      sync.WaitGroup
			results [n]cloud.Standby
			errs    [n]error
		)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
				defer cancel()
				results[i], errs[i] = p.Ensure(ctx, spec)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("Ensure #%d: %v", i, err)
			}
		}
		if t.Failed() {
			return
		}
		for i := 1; i < n; i++ {
			sameStandby(t, fmt.Sprintf("Ensure #%d vs #0", i), results[i], results[0])
		}
		l := list(t, p)
		if len(l) != 1 || l[0].Name != spec.Name {
			t.Fatalf("List after %d concurrent Ensure = %v, want exactly [%s]", n, names(l), spec.Name)
		}
	})

	t.Run("GetUnknown", func(t *testing.T) {
		p := h.New(t)
		ctx := callCtx(t)
		s, err := p.Get(ctx, cloud.NameFor("inc-never-created"))
		if !errors.Is(err, cloud.ErrNotFound) {
			t.Fatalf("Get of unknown name = (%+v, %v), want error wrapping ErrNotFound", s, err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		p := h.New(t)
		spec := Spec("inc-delete-1", zone)
		ensure(t, p, spec)
		if err := p.Delete(callCtx(t), spec.Name); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		s, err := p.Get(callCtx(t), spec.Name)
		switch {
		case errors.Is(err, cloud.ErrNotFound):
		case err != nil:
			t.Errorf("Get after Delete: %v, want ErrNotFound or a terminated standby", err)
		case !gone(s.State):
			t.Errorf("Get after Delete: State %q, want ErrNotFound or State %q/%q", s.State, cloud.StateTerminated, cloud.StateDeleted)
		}
		for _, s := range list(t, p) {
			if s.Name == spec.Name && !gone(s.State) {
				t.Errorf("List after Delete still shows %s in State %q", s.Name, s.State)
			}
		}
	})

	t.Run("DeleteIsIdempotent", func(t *testing.T) {
		p := h.New(t)
		spec := Spec("inc-delete-twice-1", zone)
		ensure(t, p, spec)
		for i := range 2 {
			if err := p.Delete(callCtx(t), spec.Name); err != nil {
				t.Fatalf("Delete #%d: %v", i+1, err)
			}
		}
		if err := p.Delete(callCtx(t), cloud.NameFor("inc-never-created")); err != nil {
			t.Fatalf("Delete of unknown name: %v, want nil", err)
		}
	})

	t.Run("ListOwnedOnly", func(t *testing.T) {
		p := h.New(t)
		if l := list(t, p); len(l) != 0 {
			t.Fatalf("List on an empty cloud = %v, want none", names(l))
		}
		a, b := Spec("inc-list-a", zone), Spec("inc-list-b", zone)
		ensure(t, p, a)
		ensure(t, p, b)
		foreign := cloud.NameFor("inc-not-ours")
		if h.AddUnowned != nil {
			h.AddUnowned(t, p, foreign, zone)
		}
		l := list(t, p)
		seen := map[string]int{}
		for _, s := range l {
			seen[s.Name]++
			if got := s.Labels[cloud.LabelManagedBy]; got != cloud.ManagedByValue {
				t.Errorf("List returned %s with %s=%q, want %q", s.Name, cloud.LabelManagedBy, got, cloud.ManagedByValue)
			}
			if s.Provider != p.Name() {
				t.Errorf("List returned %s with Provider %q, want %q", s.Name, s.Provider, p.Name())
			}
		}
		if len(l) != 2 || seen[a.Name] != 1 || seen[b.Name] != 1 {
			t.Errorf("List = %v, want exactly [%s %s]", names(l), a.Name, b.Name)
		}
	})

	t.Run("UnownedIsUntouchable", func(t *testing.T) {
		if h.AddUnowned == nil {
			t.Skip("Harness.AddUnowned not set")
		}
		p := h.New(t)
		spec := Spec("inc-taken-1", zone)
		h.AddUnowned(t, p, spec.Name, zone)
		if s, err := p.Get(callCtx(t), spec.Name); !errors.Is(err, cloud.ErrNotFound) {
			t.Errorf("Get of an unowned instance = (%+v, %v), want ErrNotFound", s, err)
		}
		if s, err := p.Ensure(callCtx(t), spec); !errors.Is(err, cloud.ErrPermanent) {
			t.Fatalf("Ensure over an unowned instance = (%+v, %v), want ErrPermanent", s, err)
		}
		if err := p.Delete(callCtx(t), spec.Name); err != nil {
			t.Errorf("Delete of an unowned instance: %v, want nil (nothing of ours there)", err)
		}
		// Still there: the name is still taken.
		if _, err := p.Ensure(callCtx(t), spec); !errors.Is(err, cloud.ErrPermanent) {
			t.Errorf("Ensure after Delete of an unowned instance: %v, want ErrPermanent (the instance must survive)", err)
		}
		if l := list(t, p); len(l) != 0 {
			t.Errorf("List = %v, want none", names(l))
		}
	})

	t.Run("CancelledContext", func(t *testing.T) {
		p := h.New(t)
		existing := Spec("inc-cancel-existing", zone)
		ensure(t, p, existing)
		fresh := Spec("inc-cancel-new", zone)

		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		calls := []struct {
			name string
			call func() error
		}{
			{"Ensure", func() error { _, err := p.Ensure(ctx, fresh); return err }},
			{"Get", func() error { _, err := p.Get(ctx, existing.Name); return err }},
			{"List", func() error { _, err := p.List(ctx); return err }},
			{"Delete", func() error { return p.Delete(ctx, existing.Name) }},
		}
		if r, ok := p.(cloud.SyncReporter); ok {
			calls = append(calls, struct {
				name string
				call func() error
			}{"SyncStatus", func() error { _, err := r.SyncStatus(ctx, cloud.Standby{Name: existing.Name}); return err }})
		}
		for _, c := range calls {
			done := make(chan error, 1)
			go func() { done <- c.call() }()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("%s with a cancelled context: %v, want an error wrapping context.Canceled", c.name, err)
				}
			case <-time.After(callTimeout):
				t.Fatalf("%s with a cancelled context did not return within %v", c.name, callTimeout)
			}
		}
		if s, err := p.Get(callCtx(t), fresh.Name); !errors.Is(err, cloud.ErrNotFound) {
			t.Errorf("Get after a cancelled Ensure = (%+v, %v), want ErrNotFound (nothing created)", s, err)
		}
		if _, err := p.Get(callCtx(t), existing.Name); err != nil {
			t.Errorf("Get after a cancelled Delete: %v, want the standby still there", err)
		}
	})

	t.Run("TwoIncidentsTwoStandbys", func(t *testing.T) {
		p := h.New(t)
		a, b := Spec("inc-two-a", zone), Spec("inc-two-b", zone)
		b.Validator = "lighthouse-vc-1"
		sa, sb := ensure(t, p, a), ensure(t, p, b)
		if sa.Name == sb.Name {
			t.Fatalf("two incidents share the standby name %q", sa.Name)
		}
		checkStandby(t, p, a, sa, zone)
		checkStandby(t, p, b, sb, zone)
		if l := list(t, p); len(l) != 2 {
			t.Fatalf("List = %v, want two standbys", names(l))
		}
		// Deleting one incident's standby must not touch the other's.
		if err := p.Delete(callCtx(t), a.Name); err != nil {
			t.Fatalf("Delete %s: %v", a.Name, err)
		}
		got := get(t, p, b.Name)
		sameStandby(t, "other standby after Delete", got, sb)
		if l := live(list(t, p)); len(l) != 1 || l[0].Name != b.Name {
			t.Errorf("List after deleting %s = %v, want exactly [%s]", a.Name, names(l), b.Name)
		}
	})
}

func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

func ensure(t *testing.T, p cloud.Provider, spec cloud.StandbySpec) cloud.Standby {
	t.Helper()
	s, err := p.Ensure(callCtx(t), spec)
	if err != nil {
		t.Fatalf("Ensure %s: %v", spec.Name, err)
	}
	return s
}

func get(t *testing.T, p cloud.Provider, name string) cloud.Standby {
	t.Helper()
	s, err := p.Get(callCtx(t), name)
	if err != nil {
		t.Fatalf("Get %s: %v", name, err)
	}
	return s
}

func list(t *testing.T, p cloud.Provider) []cloud.Standby {
	t.Helper()
	l, err := p.List(callCtx(t))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return l
}

// checkStandby checks what every freshly ensured standby must carry.
func checkStandby(t *testing.T, p cloud.Provider, spec cloud.StandbySpec, s cloud.Standby, zone string) {
	t.Helper()
	if s.Name != spec.Name {
		t.Errorf("Name = %q, want %q", s.Name, spec.Name)
	}
	if s.Provider == "" || s.Provider != p.Name() {
		t.Errorf("Provider = %q, want %q (non-empty)", s.Provider, p.Name())
	}
	if s.Zone != zone {
		t.Errorf("Zone = %q, want %q", s.Zone, zone)
	}
	if s.CreatedAt.IsZero() {
		t.Error("CreatedAt is zero; the garbage collector's grace period needs it")
	}
	for k, want := range cloud.OwnershipLabels(spec) {
		if got, ok := s.Labels[k]; !ok || got != want {
			t.Errorf("label %s = %q (present %v), want %q", k, got, ok, want)
		}
	}
}

// sameStandby checks that got is the same node as want: what identifies it
// must match; State may move on between calls.
func sameStandby(t *testing.T, what string, got, want cloud.Standby) {
	t.Helper()
	if got.Name != want.Name || got.Provider != want.Provider || got.Zone != want.Zone {
		t.Errorf("%s: got %s/%s/%s, want %s/%s/%s", what, got.Provider, got.Zone, got.Name, want.Provider, want.Zone, want.Name)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Errorf("%s: CreatedAt %v, want %v (one node, one creation time)", what, got.CreatedAt, want.CreatedAt)
	}
	if !maps.Equal(got.Labels, want.Labels) {
		t.Errorf("%s: Labels %v, want %v", what, got.Labels, want.Labels)
	}
}

func gone(state string) bool {
	return state == cloud.StateTerminated || state == cloud.StateDeleted
}

func live(l []cloud.Standby) []cloud.Standby {
	var out []cloud.Standby
	for _, s := range l {
		if !gone(s.State) {
			out = append(out, s)
		}
	}
	return out
}

func names(l []cloud.Standby) []string {
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = s.Name + "(" + s.State + ")"
	}
	return out
}
