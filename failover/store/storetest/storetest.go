// Package storetest is the contract every failover.Store implementation
// passes. The bbolt store and the Kubernetes store run the same cases, so the
// engine can rely on what failover.Store promises and on nothing else.
//
// Nothing here assumes how a store works inside: a Version is an opaque
// string compared only for equality, list order is checked only where the
// interface promises one, and times are compared as instants.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failoverd/failoverd/failover"
)

// Run runs the contract against stores made by open. open must return a
// fresh, empty store; every case gets its own, and Run closes it.
func Run(t *testing.T, open func(t *testing.T) failover.Store) {
	t.Helper()
	fresh := func(t *testing.T) failover.Store {
		t.Helper()
		s := open(t)
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
		return s
	}
	t.Run("incident", func(t *testing.T) { incidents().run(t, fresh) })
	t.Run("validator", func(t *testing.T) { validators().run(t, fresh) })
	t.Run("site", func(t *testing.T) { sites().run(t, fresh) })
	t.Run("snapshot run", func(t *testing.T) { snapshotRuns().run(t, fresh) })
	t.Run("list incidents order", func(t *testing.T) { testListOrder(t, fresh(t)) })
	t.Run("list incidents filters", func(t *testing.T) { testListFilters(t, fresh(t)) })
	t.Run("list snapshot runs order", func(t *testing.T) { testRunListOrder(t, fresh(t)) })
	t.Run("list snapshot runs filters", func(t *testing.T) { testRunListFilters(t, fresh(t)) })
	t.Run("cancelled context", func(t *testing.T) { testCancelled(t, fresh(t)) })
}

// kind is one record type as the generic cases see it, so incidents,
// validators, sites and snapshot runs run the very same
// create/update/conflict cases.
type kind[T any] struct {
	noun    string
	sample  func(key string) T // every field set, Version empty
	key     func(*T) string
	version func(*T) *string
	get     func(context.Context, failover.Store, string) (T, error)
	put     func(context.Context, failover.Store, *T) error
	list    func(context.Context, failover.Store) ([]T, error)
	// change is an update the engine could make. It clears a pointer or
	// deletes a map key where the type has one, so a store that merges an
	// update into the stored record instead of replacing it fails.
	change func(*T)
	// alias writes through the memory a value shares with its copies (slice
	// elements, map entries, pointees); nil when the type has none.
	alias func(*T)
	// incr and count drive the lost-update case.
	incr  func(*T)
	count func(T) int
}

func (k kind[T]) run(t *testing.T, fresh func(*testing.T) failover.Store) {
	cases := []struct {
		name string
		test func(*testing.T, failover.Store)
	}{
		{"create then get", k.testCreateGet},
		{"create twice", k.testCreateTwice},
		{"update", k.testUpdate},
		{"update missing", k.testUpdateMissing},
		{"get missing", k.testGetMissing},
		{"returned values are copies", k.testCopies},
		{"list returns all", k.testList},
		{"empty key", k.testEmptyKey},
		{"concurrent creates", k.testConcurrentCreates},
		{"concurrent increments", k.testConcurrentIncrements},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.test(t, fresh(t)) })
	}
}

func (k kind[T]) mustPut(t *testing.T, s failover.Store, v *T) {
	t.Helper()
	if err := k.put(t.Context(), s, v); err != nil {
		t.Fatalf("put %s %q: %v", k.noun, k.key(v), err)
	}
}

func (k kind[T]) mustGet(t *testing.T, s failover.Store, key string) T {
	t.Helper()
	v, err := k.get(t.Context(), s, key)
	if err != nil {
		t.Fatalf("get %s %q: %v", k.noun, key, err)
	}
	return v
}

// expect fails the test when the stored record differs from want.
func (k kind[T]) expect(t *testing.T, s failover.Store, want T, why string) {
	t.Helper()
	got := k.mustGet(t, s, k.key(&want))
	if d := diff(want, got); len(d) > 0 {
		t.Errorf("%s: stored %s %q differs:\n\t%s", why, k.noun, k.key(&want), strings.Join(d, "\n\t"))
	}
}

func (k kind[T]) testCreateGet(t *testing.T, s failover.Store) {
	if z := unset(k.sample("x"), "Version"); len(z) > 0 {
		t.Fatalf("the %s fixture leaves %v unset; set them so that the round trip covers them", k.noun, z)
	}
	v := k.sample("rec-1")
	k.mustPut(t, s, &v)
	ver := *k.version(&v)
	if ver == "" {
		t.Fatal("create left Version empty on the value passed in")
	}
	want := k.sample("rec-1")
	*k.version(&want) = ver
	k.expect(t, s, want, "get after create")

	// The engine keeps editing its copy after a write; the store must not
	// be holding on to that memory.
	if k.alias != nil {
		k.alias(&v)
		k.expect(t, s, want, "after changing the value passed to put")
	}
}

func (k kind[T]) testCreateTwice(t *testing.T, s failover.Store) {
	first := k.sample("dup")
	k.mustPut(t, s, &first)

	second := k.sample("dup")
	k.change(&second)
	err := k.put(t.Context(), s, &second)
	if !errors.Is(err, failover.ErrConflict) {
		t.Errorf("second create: got %v, want ErrConflict", err)
	}
	if v := *k.version(&second); v != "" {
		t.Errorf("failed create set Version %q on the value passed in", v)
	}
	k.expect(t, s, first, "after a failed create")
}

func (k kind[T]) testUpdate(t *testing.T, s failover.Store) {
	orig := k.sample("upd")
	k.mustPut(t, s, &orig)

	// Two separate reads: two writers that raced on the same version.
	stale := k.mustGet(t, s, "upd")
	next := k.mustGet(t, s, "upd")
	old := *k.version(&next)
	if old != *k.version(&orig) {
		t.Errorf("get returned Version %q, put set %q", old, *k.version(&orig))
	}

	k.change(&next)
	if err := k.put(t.Context(), s, &next); err != nil {
		t.Fatalf("update with the current version: %v", err)
	}
	if nv := *k.version(&next); nv == "" || nv == old {
		t.Errorf("update set Version %q, want a new non-empty one (was %q)", nv, old)
	}
	k.expect(t, s, next, "get after update")

	k.incr(&stale)
	err := k.put(t.Context(), s, &stale)
	if !errors.Is(err, failover.ErrConflict) {
		t.Errorf("update with a stale version: got %v, want ErrConflict", err)
	}
	if v := *k.version(&stale); v != old {
		t.Errorf("failed update changed Version on the value passed in from %q to %q", old, v)
	}
	k.expect(t, s, next, "after a stale update")

	// The conflict left nothing behind: re-read and retry works.
	retry := k.mustGet(t, s, "upd")
	k.incr(&retry)
	if err := k.put(t.Context(), s, &retry); err != nil {
		t.Fatalf("update after re-reading: %v", err)
	}
	k.expect(t, s, retry, "get after the retried update")
}

func (k kind[T]) testUpdateMissing(t *testing.T, s failover.Store) {
	// Borrow a Version this store really issued, so the case tests the
	// missing record and not a malformed Version.
	other := k.sample("present")
	k.mustPut(t, s, &other)

	ghost := k.sample("absent")
	ver := *k.version(&other)
	*k.version(&ghost) = ver
	err := k.put(t.Context(), s, &ghost)
	if !errors.Is(err, failover.ErrNotFound) {
		t.Errorf("update of a missing %s: got %v, want ErrNotFound", k.noun, err)
	}
	if v := *k.version(&ghost); v != ver {
		t.Errorf("failed update changed Version on the value passed in from %q to %q", ver, v)
	}
	if _, err := k.get(t.Context(), s, "absent"); !errors.Is(err, failover.ErrNotFound) {
		t.Errorf("get after the failed update: got %v, want ErrNotFound (the update must not create)", err)
	}
}

func (k kind[T]) testGetMissing(t *testing.T, s failover.Store) {
	if _, err := k.get(t.Context(), s, "absent"); !errors.Is(err, failover.ErrNotFound) {
		t.Errorf("get from an empty store: got %v, want ErrNotFound", err)
	}
	v := k.sample("present")
	k.mustPut(t, s, &v)
	if _, err := k.get(t.Context(), s, "absent"); !errors.Is(err, failover.ErrNotFound) {
		t.Errorf("get of a missing %s: got %v, want ErrNotFound", k.noun, err)
	}
}

func (k kind[T]) testCopies(t *testing.T, s failover.Store) {
	if k.alias == nil {
		t.Skipf("a %s shares no memory with its copies", k.noun)
	}
	v := k.sample("copy")
	k.mustPut(t, s, &v)
	// want shares no memory with anything handed to the store.
	want := k.sample("copy")
	*k.version(&want) = *k.version(&v)

	got := k.mustGet(t, s, "copy")
	k.alias(&got)
	k.expect(t, s, want, "after changing a value returned by get")

	all, err := k.list(t.Context(), s)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(all) != 1 {
		t.Fatalf("list returned %d records, want 1", len(all))
	}
	k.alias(&all[0])
	k.expect(t, s, want, "after changing a value returned by list")
}

func (k kind[T]) testList(t *testing.T, s failover.Store) {
	if all, err := k.list(t.Context(), s); err != nil || len(all) != 0 {
		t.Errorf("list of an empty store: got %d records, error %v; want none, no error", len(all), err)
	}
	want := map[string]T{}
	for i, key := range []string{"list-c", "list-a", "list-e", "list-b", "list-d"} {
		v := k.sample(key)
		for range i {
			k.incr(&v) // make the records tell apart beyond their keys
		}
		k.mustPut(t, s, &v)
		want[key] = v
	}
	// Listed records carry their Version, so a caller can update from a list.
	all, err := k.list(t.Context(), s)
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(all) != len(want) {
		t.Errorf("list returned %d records, want %d", len(all), len(want))
	}
	seen := map[string]bool{}
	for _, g := range all {
		key := k.key(&g)
		w, ok := want[key]
		switch {
		case !ok:
			t.Errorf("list returned unknown %s %q", k.noun, key)
		case seen[key]:
			t.Errorf("list returned %s %q twice", k.noun, key)
		default:
			if d := diff(w, g); len(d) > 0 {
				t.Errorf("listed %s %q differs from what was put:\n\t%s", k.noun, key, strings.Join(d, "\n\t"))
			}
		}
		seen[key] = true
	}
	for key := range want {
		if !seen[key] {
			t.Errorf("list left out %s %q", k.noun, key)
		}
	}
}

func (k kind[T]) testEmptyKey(t *testing.T, s failover.Store) {
	v := k.sample("")
	if err := k.put(t.Context(), s, &v); err == nil {
		t.Errorf("put of a %s with an empty key succeeded; want an error", k.noun)
	}
	if all, err := k.list(t.Context(), s); err != nil || len(all) != 0 {
		t.Errorf("list after the refused put: %d records, error %v; want none", len(all), err)
	}
}

// workers goroutines race; the store must serialise them so that exactly what
// the interface promises happens.
const workers = 16

func (k kind[T]) testConcurrentCreates(t *testing.T, s failover.Store) {
	// One open incident per validator rests on this: of many creates of the
	// same key, exactly one wins.
	vals := make([]T, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		vals[i] = k.sample("race")
		for range i {
			k.incr(&vals[i])
		}
		wg.Go(func() { errs[i] = k.put(t.Context(), s, &vals[i]) })
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("creates %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, failover.ErrConflict):
			t.Errorf("losing create %d: got %v, want ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no create succeeded")
	}
	k.expect(t, s, vals[winner], "after racing creates")
}

func (k kind[T]) testConcurrentIncrements(t *testing.T, s failover.Store) {
	const each = 20
	v := k.sample("counter")
	k.mustPut(t, s, &v)
	start := k.count(v)

	increment := func() error {
		// The bound turns a livelock into a failure instead of a hung test.
		for range 10000 {
			cur, err := k.get(t.Context(), s, "counter")
			if err != nil {
				return err
			}
			k.incr(&cur)
			// Give the other workers the read-modify-write window a real
			// store has between its round trips; without it a busy machine
			// can run the workers one after another and hide lost updates.
			runtime.Gosched()
			err = k.put(t.Context(), s, &cur)
			if errors.Is(err, failover.ErrConflict) {
				continue
			}
			return err
		}
		return errors.New("still conflicting after 10000 attempts")
	}
	errc := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range each {
				if err := increment(); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Errorf("increment: %v", err)
	}
	got := k.mustGet(t, s, "counter")
	if n := k.count(got) - start; n != workers*each {
		t.Errorf("%d increments stored, want %d: updates were lost", n, workers*each)
	}
}

// base is the fixtures' clock: nanoseconds set, so a store that keeps less
// precision fails the round trip.
var base = time.Date(2026, 11, 21, 10, 4, 5, 123456789, time.UTC)

func at(d time.Duration) *time.Time { t := base.Add(d); return &t }

func incidents() kind[failover.Incident] {
	return kind[failover.Incident]{
		noun: "incident",
		sample: func(id string) failover.Incident {
			return failover.Incident{
				ID:            id,
				Validator:     "eth-1",
				Site:          "home",
				Chain:         "ethereum",
				Network:       "hoodi",
				State:         failover.StateSyncing,
				Reason:        "standby syncing: distance 4711",
				CreatedAt:     base,
				UpdatedAt:     base.Add(5*time.Minute + 1),
				FiringSince:   base.Add(-2*time.Minute - 3),
				ResolvedAt:    at(3*time.Minute + 7),
				KeepWarmUntil: at(time.Hour + 11),
				TornDownBy:    "alice@example.org",
				PastStandbys:  []failover.Span{{From: base.Add(-3*time.Hour + 3), To: base.Add(-time.Hour + 5)}},
				Standby: &failover.Standby{
					Provider:    "gcp",
					Name:        "failoverd-eth-1-3",
					Zone:        "europe-west3-b",
					State:       "running",
					CreatedAt:   at(90*time.Second + 13),
					RequestedAt: at(60*time.Second + 29),
					DeletedAt:   at(2*time.Hour + 19),
					HourlyUSD:   0.6126,
					Hours:       2.02,
					CostUSD:     1.24,
					Sync: &failover.SyncReport{
						ExecutionSynced:   true,
						ConsensusSynced:   true,
						Optimistic:        true,
						ELOffline:         true,
						Health:            206,
						Peers:             12,
						ExecutionPeers:    31,
						SyncDistance:      4711,
						DiskFreeBytes:     1 << 40,
						ClockOffsetMillis: -42,
						NotReady:          []string{"beacon node syncing", "clock off by -42ms"},
						CheckedAt:         base.Add(4*time.Minute + 999),
					},
				},
				Intent: &failover.Intent{Action: "create-standby", Target: "failoverd-eth-1-3", At: base.Add(time.Minute + 5)},
				Migrations: []failover.Migration{{
					Action:     "migrate",
					From:       failover.OwnerHome,
					To:         "failoverd-eth-1-3",
					Generation: 7,
					Pubkeys:    []string{"0x93247f2209abcacf57b75a51dafae777f9dd38bc7053d1af526f220a7489a6d3a2753e5f3e8b1cfe39b56f43611df74a"},
					Approvers: []failover.ApproverRecord{
						{Principal: "alice@example.org", Fingerprint: "SHA256:abc", From: "192.0.2.7:51234", At: base.Add(3*time.Hour + 1)},
					},
					ApprovalSHA256:     "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
					Nonce:              "00112233445566778899aabbccddeeff",
					Expires:            base.Add(3*time.Hour + 15*time.Minute),
					Fencing:            "keymanager: every key deleted",
					Silence:            "not live in epochs 100-102 (2 beacon nodes)",
					KeyStatuses:        map[string]string{"0x93247f": "imported"},
					SlashingProtection: `{"metadata":{}}`,
					PrivValidatorState: `{"height":"5000","round":0,"step":3}`,
					Chain:              &failover.ChainPoint{GenesisValidatorsRoot: "0x" + strings.Repeat("4b", 32), Epoch: 1000, Slot: 32017, ChainID: "bepolia-beacon-80069", Height: 5000},
					AcceptedAt:         base.Add(3*time.Hour + 2),
					DoneAt:             at(3*time.Hour + 9),
				}},
				Nonces:        []string{"00112233445566778899aabbccddeeff"},
				ZoneIndex:     1,
				Attempts:      2,
				NextAttemptAt: base.Add(6*time.Minute + 77),
				History: []failover.Entry{
					{At: base.Add(1), From: failover.StateConfirming, To: failover.StateProvisioning, Event: failover.EventConfirmed, Cause: "ValidatorDown fired for 5m"},
					{At: base.Add(2), From: failover.StateProvisioning, To: failover.StateSyncing, Event: failover.EventProvisioned, Cause: "gcp: instance running"},
				},
			}
		},
		key:     func(i *failover.Incident) string { return i.ID },
		version: func(i *failover.Incident) *string { return &i.Version },
		get: func(ctx context.Context, s failover.Store, id string) (failover.Incident, error) {
			return s.GetIncident(ctx, id)
		},
		put: func(ctx context.Context, s failover.Store, i *failover.Incident) error { return s.PutIncident(ctx, i) },
		list: func(ctx context.Context, s failover.Store) ([]failover.Incident, error) {
			return s.ListIncidents(ctx, failover.ListOptions{})
		},
		change: func(i *failover.Incident) {
			i.History = append(i.History, failover.Entry{At: base.Add(time.Hour), From: i.State, To: failover.StateReady, Event: failover.EventSynced, Cause: "in sync"})
			i.State = failover.StateReady
			i.Reason = "standby ready; waiting for approval"
			i.Intent = nil
			i.Standby.Sync.SyncDistance = 0
			i.UpdatedAt = base.Add(time.Hour)
		},
		alias: func(i *failover.Incident) {
			i.History[0].Cause = "aliased"
			i.Standby.Sync.Peers = -1
			i.Intent.Target = "aliased"
			*i.ResolvedAt = time.Time{}
		},
		incr:  func(i *failover.Incident) { i.Attempts++ },
		count: func(i failover.Incident) int { return i.Attempts },
	}
}

func validators() kind[failover.ValidatorRecord] {
	return kind[failover.ValidatorRecord]{
		noun: "validator",
		sample: func(name string) failover.ValidatorRecord {
			return failover.ValidatorRecord{
				Name: name,
				Site: "home",
				Alerts: map[string]failover.AlertRecord{
					"a1b2c3": {AlertName: "ValidatorDown", Status: failover.AlertResolved, StartsAt: base.Add(-time.Hour), EndsAt: base.Add(-time.Minute + 9)},
					"d4e5f6": {AlertName: "BeaconNodeDown", Status: failover.AlertFiring, StartsAt: base.Add(-3), EndsAt: base.Add(time.Hour + 4)},
				},
				OpenIncident:   name + "-3",
				Seq:            3,
				HandledThrough: base.Add(-30*time.Minute + 5),
				Ownership: failover.Ownership{
					Owner: "failoverd-" + name + "-3", Generation: 4, Incident: name + "-3",
					ChangedAt: base.Add(7), ChangedBy: []string{"alice@example.org", "bob@example.org"},
					Pubkeys: []string{"0x" + strings.Repeat("a1", 48)},
				},
			}
		},
		key:     func(v *failover.ValidatorRecord) string { return v.Name },
		version: func(v *failover.ValidatorRecord) *string { return &v.Version },
		get: func(ctx context.Context, s failover.Store, name string) (failover.ValidatorRecord, error) {
			return s.GetValidator(ctx, name)
		},
		put: func(ctx context.Context, s failover.Store, v *failover.ValidatorRecord) error {
			return s.PutValidator(ctx, v)
		},
		list: func(ctx context.Context, s failover.Store) ([]failover.ValidatorRecord, error) {
			return s.ListValidators(ctx)
		},
		change: func(v *failover.ValidatorRecord) {
			delete(v.Alerts, "a1b2c3")
			v.Alerts["0789ab"] = failover.AlertRecord{AlertName: "ValidatorMissedAttestations", Status: failover.AlertFiring, StartsAt: base.Add(time.Hour)}
			v.OpenIncident = ""
			v.HandledThrough = base.Add(time.Hour)
			v.Ownership = failover.Ownership{Owner: failover.OwnerHome, Generation: 5, Incident: v.Name + "-3", ChangedAt: base.Add(time.Hour)}
		},
		alias: func(v *failover.ValidatorRecord) {
			delete(v.Alerts, "a1b2c3")
			v.Alerts["aliased"] = failover.AlertRecord{AlertName: "aliased"}
		},
		incr:  func(v *failover.ValidatorRecord) { v.Seq++ },
		count: func(v failover.ValidatorRecord) int { return v.Seq },
	}
}

func sites() kind[failover.SiteRecord] {
	return kind[failover.SiteRecord]{
		noun: "site",
		sample: func(name string) failover.SiteRecord {
			return failover.SiteRecord{Name: name, LastHeartbeat: base.Add(17), HeartbeatsSeen: 42}
		},
		key:     func(s *failover.SiteRecord) string { return s.Name },
		version: func(s *failover.SiteRecord) *string { return &s.Version },
		get: func(ctx context.Context, s failover.Store, name string) (failover.SiteRecord, error) {
			return s.GetSite(ctx, name)
		},
		put:  func(ctx context.Context, s failover.Store, r *failover.SiteRecord) error { return s.PutSite(ctx, r) },
		list: func(ctx context.Context, s failover.Store) ([]failover.SiteRecord, error) { return s.ListSites(ctx) },
		change: func(s *failover.SiteRecord) {
			s.LastHeartbeat = s.LastHeartbeat.Add(time.Minute + 1)
			s.HeartbeatsSeen++
		},
		incr:  func(s *failover.SiteRecord) { s.HeartbeatsSeen++ },
		count: func(s failover.SiteRecord) int { return int(s.HeartbeatsSeen) },
	}
}

func snapshotRuns() kind[failover.SnapshotRun] {
	return kind[failover.SnapshotRun]{
		noun: "snapshot run",
		sample: func(id string) failover.SnapshotRun {
			return failover.SnapshotRun{
				ID:        id,
				Validator: "eth-1",
				Provider:  "gcp",
				State:     failover.RunFailed,
				Reason:    "snapshot: disk still attached",
				// The incident fixture's standby: a run's node is the same
				// record, so every field of it must survive here too.
				Standby: &failover.Standby{
					Provider:    "gcp",
					Name:        "failoverd-eth-1-snap-3",
					Zone:        "europe-west3-b",
					State:       "deleted",
					CreatedAt:   at(90*time.Second + 13),
					RequestedAt: at(60*time.Second + 29),
					DeletedAt:   at(2*time.Hour + 19),
					HourlyUSD:   0.6126,
					Hours:       2.02,
					CostUSD:     1.24,
					Sync: &failover.SyncReport{
						ExecutionSynced:   true,
						ConsensusSynced:   true,
						Optimistic:        true,
						ELOffline:         true,
						Health:            206,
						Peers:             12,
						ExecutionPeers:    31,
						SyncDistance:      4711,
						DiskFreeBytes:     1 << 40,
						ClockOffsetMillis: -42,
						NotReady:          []string{"beacon node syncing", "clock off by -42ms"},
						CheckedAt:         base.Add(4*time.Minute + 999),
					},
				},
				Snapshot:      "failoverd-eth-1-20261121",
				SnapshotReady: true,
				Pruned:        []string{"failoverd-eth-1-20261107", "failoverd-eth-1-20261114"},
				CreatedAt:     base,
				UpdatedAt:     base.Add(2*time.Hour + 21),
				FinishedAt:    at(2*time.Hour + 23),
				Attempts:      2,
				NextAttemptAt: base.Add(3*time.Hour + 77),
				History: []failover.Entry{
					{At: base.Add(1), From: failover.State(failover.RunProvisioning), To: failover.State(failover.RunSyncing), Event: failover.EventProvisioned, Cause: "gcp: instance running"},
					{At: base.Add(2), From: failover.State(failover.RunCleanup), To: failover.State(failover.RunFailed), Event: failover.EventFail, Cause: "snapshot: disk still attached"},
				},
			}
		},
		key:     func(r *failover.SnapshotRun) string { return r.ID },
		version: func(r *failover.SnapshotRun) *string { return &r.Version },
		get: func(ctx context.Context, s failover.Store, id string) (failover.SnapshotRun, error) {
			return s.GetSnapshotRun(ctx, id)
		},
		put: func(ctx context.Context, s failover.Store, r *failover.SnapshotRun) error {
			return s.PutSnapshotRun(ctx, r)
		},
		list: func(ctx context.Context, s failover.Store) ([]failover.SnapshotRun, error) {
			return s.ListSnapshotRuns(ctx, "")
		},
		// A retry of the failed run: it clears FinishedAt and Pruned.
		change: func(r *failover.SnapshotRun) {
			r.History = append(r.History, failover.Entry{At: base.Add(3 * time.Hour), From: failover.State(r.State), To: failover.State(failover.RunProvisioning), Cause: "retry"})
			r.State = failover.RunProvisioning
			r.Reason = "retrying"
			r.SnapshotReady = false
			r.Pruned = nil
			r.FinishedAt = nil
			r.Standby.Sync.SyncDistance = 0
			r.UpdatedAt = base.Add(3 * time.Hour)
		},
		alias: func(r *failover.SnapshotRun) {
			r.History[0].Cause = "aliased"
			r.Standby.Name = "aliased"
			r.Standby.Sync.NotReady[0] = "aliased"
			*r.Standby.CreatedAt = time.Time{}
			r.Pruned[0] = "aliased"
			*r.FinishedAt = time.Time{}
		},
		incr:  func(r *failover.SnapshotRun) { r.Attempts++ },
		count: func(r failover.SnapshotRun) int { return r.Attempts },
	}
}

// listed checks that each record a list returned is exactly what Get
// returns, so a filtered list cannot serve stale or partial records, and
// returns their keys in list order.
func (k kind[T]) listed(t *testing.T, s failover.Store, what string, all []T) []string {
	t.Helper()
	keys := make([]string, 0, len(all))
	for _, v := range all {
		key := k.key(&v)
		keys = append(keys, key)
		stored, err := k.get(t.Context(), s, key)
		if err != nil {
			t.Errorf("get listed %s %s: %v", k.noun, key, err)
			continue
		}
		if d := diff(stored, v); len(d) > 0 {
			t.Errorf("%s: %s %s differs from get:\n\t%s", what, k.noun, key, strings.Join(d, "\n\t"))
		}
	}
	return keys
}

// listIDs lists incidents and checks them with listed.
func listIDs(t *testing.T, s failover.Store, opts failover.ListOptions) []string {
	t.Helper()
	all, err := s.ListIncidents(t.Context(), opts)
	if err != nil {
		t.Fatalf("list incidents %+v: %v", opts, err)
	}
	return incidents().listed(t, s, fmt.Sprintf("list %+v", opts), all)
}

// listRunIDs lists snapshot runs and checks them with listed.
func listRunIDs(t *testing.T, s failover.Store, validator string) []string {
	t.Helper()
	all, err := s.ListSnapshotRuns(t.Context(), validator)
	if err != nil {
		t.Fatalf("list snapshot runs %q: %v", validator, err)
	}
	return snapshotRuns().listed(t, s, fmt.Sprintf("list snapshot runs %q", validator), all)
}

func sameIDs(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }

func testListOrder(t *testing.T, s failover.Store) {
	day := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	// Insertion order, ID order and the order of the timestamps as text all
	// differ from the promised one: the whole second formats without a
	// fraction ("10:00:00Z") and so sorts after "10:00:00.000000001Z" as
	// text. UpdatedAt runs backwards so that sorting by it fails too.
	for _, r := range []struct {
		id      string
		created time.Time
	}{
		{"inc-b", day.Add(1)},
		{"inc-z", day},
		{"inc-a", day.Add(2 * time.Second)},
		{"inc-10", day.Add(time.Second)},
		{"inc-9", day.Add(time.Second)}, // same CreatedAt: the ID decides, as a string
		{"inc-c", day.Add(-time.Hour)},
	} {
		inc := incidents().sample(r.id)
		inc.CreatedAt = r.created
		inc.UpdatedAt = day.Add(10*time.Hour - r.created.Sub(day))
		if err := s.PutIncident(t.Context(), &inc); err != nil {
			t.Fatalf("put incident %s: %v", r.id, err)
		}
	}
	want := []string{"inc-c", "inc-z", "inc-b", "inc-10", "inc-9", "inc-a"}
	// Each filter may take its own path through a store (an index for
	// OpenOnly), and each must sort.
	for _, opts := range []failover.ListOptions{{}, {OpenOnly: true}, {Validator: "eth-1"}, {Validator: "eth-1", OpenOnly: true}} {
		if got := listIDs(t, s, opts); !sameIDs(got, want) {
			t.Errorf("list %+v: got %v, want %v", opts, got, want)
		}
	}
}

func testListFilters(t *testing.T, s failover.Store) {
	for i, r := range []struct {
		id, validator string
		state         failover.State
	}{
		{"eth-1-1", "eth-1", failover.StateClosed},
		{"eth-2-1", "eth-2", failover.StateClosed},
		{"eth-1-2", "eth-1", failover.StateFailed}, // failed stays open: a person decides
		{"eth-2-2", "eth-2", failover.StateReady},
		{"bera-1-1", "bera-1", failover.StateRecovering},
		{"eth-10-1", "eth-10", failover.StateConfirming}, // "eth-1" is a prefix of its validator, not a match
	} {
		inc := incidents().sample(r.id)
		inc.Validator, inc.State = r.validator, r.state
		inc.CreatedAt = base.Add(time.Duration(i) * time.Minute)
		if err := s.PutIncident(t.Context(), &inc); err != nil {
			t.Fatalf("put incident %s: %v", r.id, err)
		}
	}
	all := []string{"eth-1-1", "eth-2-1", "eth-1-2", "eth-2-2", "bera-1-1", "eth-10-1"}
	for _, c := range []struct {
		opts failover.ListOptions
		want []string
	}{
		{failover.ListOptions{}, all},
		{failover.ListOptions{Validator: "eth-1"}, []string{"eth-1-1", "eth-1-2"}},
		{failover.ListOptions{OpenOnly: true}, []string{"eth-1-2", "eth-2-2", "bera-1-1", "eth-10-1"}},
		{failover.ListOptions{Validator: "eth-1", OpenOnly: true}, []string{"eth-1-2"}},
		{failover.ListOptions{Validator: "eth-2", OpenOnly: true}, []string{"eth-2-2"}},
		{failover.ListOptions{Validator: "eth"}, []string{}},
		{failover.ListOptions{Validator: "nobody", OpenOnly: true}, []string{}},
	} {
		if got := listIDs(t, s, c.opts); !sameIDs(got, c.want) {
			t.Errorf("list %+v: got %v, want %v", c.opts, got, c.want)
		}
	}

	// Incidents move in and out of the open set; the OpenOnly list follows
	// every move and the full list never changes.
	for _, step := range []struct {
		id   string
		to   failover.State
		open []string
	}{
		{"eth-2-2", failover.StateClosed, []string{"eth-1-2", "bera-1-1", "eth-10-1"}},
		{"eth-2-2", failover.StateFailed, []string{"eth-1-2", "eth-2-2", "bera-1-1", "eth-10-1"}},
		{"eth-2-2", failover.StateSyncing, []string{"eth-1-2", "eth-2-2", "bera-1-1", "eth-10-1"}},
		{"eth-1-2", failover.StateClosed, []string{"eth-2-2", "bera-1-1", "eth-10-1"}},
	} {
		inc, err := s.GetIncident(t.Context(), step.id)
		if err != nil {
			t.Fatalf("get incident %s: %v", step.id, err)
		}
		from := inc.State
		inc.State = step.to
		if err := s.PutIncident(t.Context(), &inc); err != nil {
			t.Fatalf("put incident %s: %v", step.id, err)
		}
		if got := listIDs(t, s, failover.ListOptions{OpenOnly: true}); !sameIDs(got, step.open) {
			t.Errorf("%s %s → %s: open list %v, want %v", step.id, from, step.to, got, step.open)
		}
		if got := listIDs(t, s, failover.ListOptions{}); !sameIDs(got, all) {
			t.Errorf("%s %s → %s: full list %v, want %v", step.id, from, step.to, got, all)
		}
	}
}

// testRunListOrder is testListOrder for snapshot runs.
func testRunListOrder(t *testing.T, s failover.Store) {
	day := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for _, r := range []struct {
		id      string
		created time.Time
	}{
		{"run-b", day.Add(1)},
		{"run-z", day},
		{"run-a", day.Add(2 * time.Second)},
		{"run-10", day.Add(time.Second)},
		{"run-9", day.Add(time.Second)}, // same CreatedAt: the ID decides, as a string
		{"run-c", day.Add(-time.Hour)},
	} {
		run := snapshotRuns().sample(r.id)
		run.CreatedAt = r.created
		run.UpdatedAt = day.Add(10*time.Hour - r.created.Sub(day))
		if err := s.PutSnapshotRun(t.Context(), &run); err != nil {
			t.Fatalf("put snapshot run %s: %v", r.id, err)
		}
	}
	want := []string{"run-c", "run-z", "run-b", "run-10", "run-9", "run-a"}
	// The filtered list may take its own path through a store, and must sort.
	for _, validator := range []string{"", "eth-1"} {
		if got := listRunIDs(t, s, validator); !sameIDs(got, want) {
			t.Errorf("list snapshot runs %q: got %v, want %v", validator, got, want)
		}
	}
}

func testRunListFilters(t *testing.T, s failover.Store) {
	if got := listRunIDs(t, s, ""); len(got) != 0 {
		t.Errorf("list of an empty store: got %v, want none", got)
	}
	if got := listRunIDs(t, s, "eth-1"); len(got) != 0 {
		t.Errorf("list eth-1 of an empty store: got %v, want none", got)
	}
	for i, r := range []struct {
		id, validator string
		state         failover.RunState
	}{
		{"eth-1-r1", "eth-1", failover.RunDone},
		{"eth-2-r1", "eth-2", failover.RunSyncing},
		{"eth-1-r2", "eth-1", failover.RunAborted},
		{"bera-1-r1", "bera-1", failover.RunSnapshotting},
		{"eth-10-r1", "eth-10", failover.RunProvisioning}, // "eth-1" is a prefix of its validator, not a match
		{"eth-1-r3", "eth-1", failover.RunSyncing},
	} {
		run := snapshotRuns().sample(r.id)
		run.Validator, run.State = r.validator, r.state
		run.CreatedAt = base.Add(time.Duration(i) * time.Minute)
		if err := s.PutSnapshotRun(t.Context(), &run); err != nil {
			t.Fatalf("put snapshot run %s: %v", r.id, err)
		}
	}
	for _, c := range []struct {
		validator string
		want      []string
	}{
		{"", []string{"eth-1-r1", "eth-2-r1", "eth-1-r2", "bera-1-r1", "eth-10-r1", "eth-1-r3"}},
		{"eth-1", []string{"eth-1-r1", "eth-1-r2", "eth-1-r3"}},
		{"eth-10", []string{"eth-10-r1"}},
		{"eth-2", []string{"eth-2-r1"}},
		{"eth", []string{}},
		{"nobody", []string{}},
	} {
		if got := listRunIDs(t, s, c.validator); !sameIDs(got, c.want) {
			t.Errorf("list snapshot runs %q: got %v, want %v", c.validator, got, c.want)
		}
	}

	// An update that moves a run to another validator moves it between the
	// filtered lists.
	run, err := s.GetSnapshotRun(t.Context(), "eth-1-r2")
	if err != nil {
		t.Fatalf("get snapshot run eth-1-r2: %v", err)
	}
	run.Validator = "eth-2"
	if err := s.PutSnapshotRun(t.Context(), &run); err != nil {
		t.Fatalf("put snapshot run eth-1-r2: %v", err)
	}
	for _, c := range []struct {
		validator string
		want      []string
	}{
		{"eth-1", []string{"eth-1-r1", "eth-1-r3"}},
		{"eth-2", []string{"eth-2-r1", "eth-1-r2"}},
	} {
		if got := listRunIDs(t, s, c.validator); !sameIDs(got, c.want) {
			t.Errorf("after moving eth-1-r2 to eth-2: list snapshot runs %q: got %v, want %v", c.validator, got, c.want)
		}
	}
}

func testCancelled(t *testing.T, s failover.Store) {
	inc := incidents().sample("inc-1")
	val := validators().sample("eth-1")
	site := sites().sample("home")
	run := snapshotRuns().sample("run-1")
	incidents().mustPut(t, s, &inc)
	validators().mustPut(t, s, &val)
	sites().mustPut(t, s, &site)
	snapshotRuns().mustPut(t, s, &run)

	ctx, cancel := context.WithCancel(t.Context())
	cancel()

	newInc, newVal, newSite := incidents().sample("inc-2"), validators().sample("eth-2"), sites().sample("away")
	updInc, updVal, updSite := inc, val, site
	updInc.Reason, updVal.Seq, updSite.HeartbeatsSeen = "changed", 99, 99
	newRun, updRun := snapshotRuns().sample("run-2"), run
	updRun.Reason = "changed"

	// check says that the refused call changed nothing.
	for _, c := range []struct {
		name  string
		call  func() error
		check func(t *testing.T)
	}{
		{"get incident", func() error { _, err := s.GetIncident(ctx, "inc-1"); return err }, nil},
		{"list incidents", func() error { _, err := s.ListIncidents(ctx, failover.ListOptions{}); return err }, nil},
		{"list open incidents", func() error { _, err := s.ListIncidents(ctx, failover.ListOptions{OpenOnly: true}); return err }, nil},
		{"create incident", func() error { return s.PutIncident(ctx, &newInc) }, func(t *testing.T) {
			if newInc.Version != "" {
				t.Errorf("Version set to %q", newInc.Version)
			}
			if _, err := s.GetIncident(t.Context(), "inc-2"); !errors.Is(err, failover.ErrNotFound) {
				t.Errorf("get after the refused create: got %v, want ErrNotFound", err)
			}
		}},
		{"update incident", func() error { return s.PutIncident(ctx, &updInc) }, func(t *testing.T) {
			incidents().expect(t, s, inc, "after the refused update")
		}},
		{"get validator", func() error { _, err := s.GetValidator(ctx, "eth-1"); return err }, nil},
		{"list validators", func() error { _, err := s.ListValidators(ctx); return err }, nil},
		{"create validator", func() error { return s.PutValidator(ctx, &newVal) }, func(t *testing.T) {
			if _, err := s.GetValidator(t.Context(), "eth-2"); !errors.Is(err, failover.ErrNotFound) {
				t.Errorf("get after the refused create: got %v, want ErrNotFound", err)
			}
		}},
		{"update validator", func() error { return s.PutValidator(ctx, &updVal) }, func(t *testing.T) {
			validators().expect(t, s, val, "after the refused update")
		}},
		{"get site", func() error { _, err := s.GetSite(ctx, "home"); return err }, nil},
		{"list sites", func() error { _, err := s.ListSites(ctx); return err }, nil},
		{"create site", func() error { return s.PutSite(ctx, &newSite) }, func(t *testing.T) {
			if _, err := s.GetSite(t.Context(), "away"); !errors.Is(err, failover.ErrNotFound) {
				t.Errorf("get after the refused create: got %v, want ErrNotFound", err)
			}
		}},
		{"update site", func() error { return s.PutSite(ctx, &updSite) }, func(t *testing.T) {
			sites().expect(t, s, site, "after the refused update")
		}},
		{"get snapshot run", func() error { _, err := s.GetSnapshotRun(ctx, "run-1"); return err }, nil},
		{"list snapshot runs", func() error { _, err := s.ListSnapshotRuns(ctx, ""); return err }, nil},
		{"list snapshot runs of a validator", func() error { _, err := s.ListSnapshotRuns(ctx, "eth-1"); return err }, nil},
		{"create snapshot run", func() error { return s.PutSnapshotRun(ctx, &newRun) }, func(t *testing.T) {
			if newRun.Version != "" {
				t.Errorf("Version set to %q", newRun.Version)
			}
			if _, err := s.GetSnapshotRun(t.Context(), "run-2"); !errors.Is(err, failover.ErrNotFound) {
				t.Errorf("get after the refused create: got %v, want ErrNotFound", err)
			}
		}},
		{"update snapshot run", func() error { return s.PutSnapshotRun(ctx, &updRun) }, func(t *testing.T) {
			if updRun.Version != run.Version {
				t.Errorf("Version changed from %q to %q", run.Version, updRun.Version)
			}
			snapshotRuns().expect(t, s, run, "after the refused update")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			// Callers tell shutdown from failure with errors.Is.
			if err := c.call(); !errors.Is(err, context.Canceled) {
				t.Errorf("got %v, want an error wrapping context.Canceled", err)
			}
			if c.check != nil {
				c.check(t)
			}
		})
	}
}
