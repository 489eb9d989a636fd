package bolt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/store/storetest"
)

func openTest(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) failover.Store {
		return openTest(t, filepath.Join(t.TempDir(), "failoverd.db"), Options{NoSync: true})
	})
}

func TestPersistsAcrossReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "data", "failoverd.db")
	s := openTest(t, path, Options{})
	open := failover.Incident{ID: "eth-1-1", Validator: "eth-1", State: failover.StateSyncing, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)}
	closed := failover.Incident{ID: "eth-2-1", Validator: "eth-2", State: failover.StateClosed}
	val := failover.ValidatorRecord{Name: "eth-1", OpenIncident: "eth-1-1", Seq: 1}
	site := failover.SiteRecord{Name: "home", HeartbeatsSeen: 7}
	run := failover.SnapshotRun{ID: "eth-1-snap-1", Validator: "eth-1", State: failover.RunSyncing, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 7, time.UTC)}
	for _, put := range []func() error{
		func() error { return s.PutIncident(ctx, &open) },
		func() error { return s.PutIncident(ctx, &closed) },
		func() error { return s.PutValidator(ctx, &val) },
		func() error { return s.PutSite(ctx, &site) },
		func() error { return s.PutSnapshotRun(ctx, &run) },
	} {
		if err := put(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	s = openTest(t, path, Options{})
	defer s.Close()
	gotInc, err := s.GetIncident(ctx, "eth-1-1")
	if err != nil || gotInc.Version != open.Version || !gotInc.CreatedAt.Equal(open.CreatedAt) {
		t.Errorf("incident after reopen: %+v, %v; want version %s, created %s", gotInc, err, open.Version, open.CreatedAt)
	}
	gotVal, err := s.GetValidator(ctx, "eth-1")
	if err != nil || gotVal.Version != val.Version || gotVal.OpenIncident != "eth-1-1" {
		t.Errorf("validator after reopen: %+v, %v", gotVal, err)
	}
	gotSite, err := s.GetSite(ctx, "home")
	if err != nil || gotSite.Version != site.Version || gotSite.HeartbeatsSeen != 7 {
		t.Errorf("site after reopen: %+v, %v", gotSite, err)
	}
	gotRun, err := s.GetSnapshotRun(ctx, "eth-1-snap-1")
	if err != nil || gotRun.Version != run.Version || !gotRun.CreatedAt.Equal(run.CreatedAt) || gotRun.State != failover.RunSyncing {
		t.Errorf("snapshot run after reopen: %+v, %v; want version %s, created %s", gotRun, err, run.Version, run.CreatedAt)
	}
	if runs, err := s.ListSnapshotRuns(ctx, "eth-1"); err != nil || len(runs) != 1 || runs[0].ID != "eth-1-snap-1" {
		t.Errorf("eth-1's snapshot runs after reopen: %+v, %v; want only eth-1-snap-1", runs, err)
	}
	openList, err := s.ListIncidents(ctx, failover.ListOptions{OpenOnly: true})
	if err != nil || len(openList) != 1 || openList[0].ID != "eth-1-1" {
		t.Errorf("open incidents after reopen: %+v, %v; want only eth-1-1", openList, err)
	}
	// Versions carry on from the stored counter: a write with a version
	// read before the restart still works, and one from before it conflicts.
	gotVal.Seq++
	if err := s.PutValidator(ctx, &gotVal); err != nil {
		t.Errorf("update after reopen: %v", err)
	}
	if err := s.PutValidator(ctx, &val); !errors.Is(err, failover.ErrConflict) {
		t.Errorf("stale update after reopen: got %v, want ErrConflict", err)
	}
}

func TestOpenCreatesPrivateFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	path := filepath.Join(dir, "failoverd.db")
	s := openTest(t, path, Options{})
	defer s.Close()
	for _, c := range []struct {
		path string
		perm os.FileMode
	}{{dir, 0o700}, {path, 0o600}} {
		fi, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got&^c.perm != 0 {
			t.Errorf("%s has mode %v, want at most %v", c.path, got, c.perm)
		}
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "failoverd.db")
	first := openTest(t, path, Options{})
	defer first.Close()

	start := time.Now()
	second, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		second.Close()
		t.Fatal("second open of a locked file succeeded")
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("got %v, want ErrLocked", err)
	}
	want := "open " + path + ": locked by another process (is another failoverd running with this data dir?)"
	if err.Error() != want {
		t.Errorf("message:\n got %q\nwant %q", err.Error(), want)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v; the timeout was 100ms", d)
	}

	// Once the holder is gone the file opens again.
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	openTest(t, path, Options{Timeout: 100 * time.Millisecond}).Close()
}

func TestOpenSchema(t *testing.T) {
	for _, c := range []struct {
		schema  string
		wantErr string // "" for success
	}{
		{"1", ""},
		{"2", "schema version 2 is newer than this failoverd understands (1)"},
		{"banana", `unreadable schema version "banana"`},
	} {
		t.Run(c.schema, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "failoverd.db")
			openTest(t, path, Options{}).Close()
			setSchema(t, path, c.schema)

			s, err := Open(path, Options{})
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatalf("open succeeded; want %q", c.wantErr)
			}
			if !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), path) {
				t.Errorf("got %q; want it to name %s and say %q", err, path, c.wantErr)
			}
			// The refusal must not rewrite the marker: the newer failoverd
			// still owns the file.
			if got := schema(t, path); got != c.schema {
				t.Errorf("schema after the refused open is %q, want %q", got, c.schema)
			}
		})
	}
}

// TestOpenFileWithoutSnapshotRuns opens a file laid out by the failoverd
// before snapshot runs: schema 1, no snapshot-runs bucket. Open adds the
// bucket in place, leaves the schema and the old records alone, and the new
// record works at once and after a restart.
func TestOpenFileWithoutSnapshotRuns(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "failoverd.db")

	// The older layout, written by hand so that it does not follow later
	// changes to initSchema.
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	inc := failover.Incident{ID: "eth-1-1", Validator: "eth-1", State: failover.StateSyncing, Reason: "from before"}
	data, err := json.Marshal(inc)
	if err != nil {
		t.Fatal(err)
	}
	val := make([]byte, 8+len(data))
	binary.BigEndian.PutUint64(val, 3)
	copy(val[8:], data)
	err = db.Update(func(tx *bbolt.Tx) error {
		for _, name := range []string{"incidents", "incidents-open", "validators", "sites", "meta"} {
			if _, err := tx.CreateBucket([]byte(name)); err != nil {
				return err
			}
		}
		if err := tx.Bucket([]byte("incidents")).Put([]byte(inc.ID), val); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("incidents-open")).Put([]byte(inc.ID), nil); err != nil {
			return err
		}
		return tx.Bucket([]byte("meta")).Put([]byte("schema"), []byte("1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openTest(t, path, Options{})
	got, err := s.GetIncident(ctx, inc.ID)
	if err != nil || got.Version != "3" || got.Reason != "from before" {
		t.Errorf("old incident: %+v, %v; want version 3, reason %q", got, err, "from before")
	}
	if open, err := s.ListIncidents(ctx, failover.ListOptions{OpenOnly: true}); err != nil || len(open) != 1 {
		t.Errorf("old open incidents: %d, %v; want 1", len(open), err)
	}
	if runs, err := s.ListSnapshotRuns(ctx, ""); err != nil || len(runs) != 0 {
		t.Errorf("snapshot runs of an old file: %+v, %v; want none, no error", runs, err)
	}
	if _, err := s.GetSnapshotRun(ctx, "eth-1-snap-1"); !errors.Is(err, failover.ErrNotFound) {
		t.Errorf("get snapshot run of an old file: got %v, want ErrNotFound", err)
	}
	run := failover.SnapshotRun{ID: "eth-1-snap-1", Validator: "eth-1", State: failover.RunProvisioning}
	if err := s.PutSnapshotRun(ctx, &run); err != nil {
		t.Fatalf("create snapshot run in an old file: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if got := schema(t, path); got != "1" {
		t.Errorf("schema after adding the bucket is %q, want 1", got)
	}
	s = openTest(t, path, Options{})
	defer s.Close()
	if got, err := s.GetSnapshotRun(ctx, run.ID); err != nil || got.Version != run.Version {
		t.Errorf("snapshot run after reopen: %+v, %v; want version %s", got, err, run.Version)
	}
	if got, err := s.GetIncident(ctx, inc.ID); err != nil || got.Version != "3" {
		t.Errorf("old incident after reopen: %+v, %v; want version 3", got, err)
	}
}

func setSchema(t *testing.T, path, v string) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keySchema, []byte(v)) }); err != nil {
		t.Fatal(err)
	}
}

func schema(t *testing.T, path string) string {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.View(func(tx *bbolt.Tx) error { v = string(tx.Bucket(bucketMeta).Get(keySchema)); return nil }); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCloseIdempotent(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "failoverd.db"), Options{NoSync: true})
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Errorf("close %d: %v", i+1, err)
		}
	}
	if _, err := s.GetSite(t.Context(), "home"); err == nil {
		t.Error("get after close succeeded")
	}
	if err := s.PutSite(t.Context(), &failover.SiteRecord{Name: "home"}); err == nil {
		t.Error("put after close succeeded")
	}
}

// The open index is what keeps ListIncidents{OpenOnly} cheap; check it holds
// exactly the open incidents after every kind of move.
func TestOpenIndex(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, filepath.Join(t.TempDir(), "failoverd.db"), Options{NoSync: true})
	defer s.Close()
	inc := failover.Incident{ID: "eth-1-1", Validator: "eth-1"}
	for _, c := range []struct {
		to     failover.State
		listed bool
	}{
		{failover.StateConfirming, true},
		{failover.StateReady, true},
		{failover.StateClosed, false},
		{failover.StateClosed, false},
		{failover.StateFailed, true},
		{"", false},
	} {
		inc.State = c.to
		if err := s.PutIncident(ctx, &inc); err != nil {
			t.Fatalf("put %s: %v", c.to, err)
		}
		var listed bool
		if err := s.db.View(func(tx *bbolt.Tx) error {
			listed = tx.Bucket(bucketOpen).Get([]byte(inc.ID)) != nil
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if listed != c.listed {
			t.Errorf("state %q: in the open index = %v, want %v", c.to, listed, c.listed)
		}
	}
}

// A failed write must leave the index alone too: a stale update that would
// close the incident does not take it out of the open list.
func TestOpenIndexUntouchedByConflict(t *testing.T) {
	ctx := t.Context()
	s := openTest(t, filepath.Join(t.TempDir(), "failoverd.db"), Options{NoSync: true})
	defer s.Close()
	inc := failover.Incident{ID: "eth-1-1", Validator: "eth-1", State: failover.StateReady}
	if err := s.PutIncident(ctx, &inc); err != nil {
		t.Fatal(err)
	}
	stale := inc
	inc.Reason = "moved on"
	if err := s.PutIncident(ctx, &inc); err != nil {
		t.Fatal(err)
	}
	stale.State = failover.StateClosed
	if err := s.PutIncident(ctx, &stale); !errors.Is(err, failover.ErrConflict) {
		t.Fatalf("stale close: got %v, want ErrConflict", err)
	}
	got, err := s.ListIncidents(ctx, failover.ListOptions{OpenOnly: true})
	if err != nil || len(got) != 1 {
		t.Errorf("open list after a refused close: %d incidents, %v; want 1", len(got), err)
	}
}

// BenchmarkPutValidatorParallel is how maxBatchDelay was chosen: many
// webhook requests write at once, each to its own validator, with real fsync.
// The delay sub-benchmarks run the same load at other settings.
func BenchmarkPutValidatorParallel(b *testing.B) {
	for _, d := range []time.Duration{maxBatchDelay, 0, 500 * time.Microsecond, 2 * time.Millisecond, 10 * time.Millisecond} {
		b.Run(fmt.Sprintf("delay=%v", d), func(b *testing.B) {
			s := openTest(b, filepath.Join(b.TempDir(), "failoverd.db"), Options{})
			defer s.Close()
			s.db.MaxBatchDelay = d
			var n atomic.Int64
			b.SetParallelism(8) // 16 writers on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				v := failover.ValidatorRecord{Name: fmt.Sprintf("eth-%d", n.Add(1)), Site: "home"}
				for pb.Next() {
					v.Seq++
					if err := s.PutValidator(b.Context(), &v); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkPutValidator is the other side of the trade: a lone writer waits
// the whole delay before its fsync.
func BenchmarkPutValidator(b *testing.B) {
	for _, d := range []time.Duration{maxBatchDelay, 0, 10 * time.Millisecond} {
		b.Run(fmt.Sprintf("delay=%v", d), func(b *testing.B) {
			s := openTest(b, filepath.Join(b.TempDir(), "failoverd.db"), Options{})
			defer s.Close()
			s.db.MaxBatchDelay = d
			v := failover.ValidatorRecord{Name: "eth-1", Site: "home"}
			for b.Loop() {
				v.Seq++
				if err := s.PutValidator(b.Context(), &v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGetValidator(b *testing.B) {
	s := openTest(b, filepath.Join(b.TempDir(), "failoverd.db"), Options{NoSync: true})
	defer s.Close()
	v := failover.ValidatorRecord{Name: "eth-1", Site: "home", Alerts: map[string]failover.AlertRecord{
		"a1": {AlertName: "ValidatorDown", Status: failover.AlertFiring, StartsAt: time.Now()},
		"b2": {AlertName: "BeaconNodeDown", Status: failover.AlertResolved, StartsAt: time.Now(), EndsAt: time.Now()},
	}}
	if err := s.PutValidator(b.Context(), &v); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := s.GetValidator(b.Context(), "eth-1"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkListOpenIncidents is the reconcile loop's read after a long life:
// years of closed incidents, a few open ones.
func BenchmarkListOpenIncidents(b *testing.B) {
	const closed, open = 10000, 10
	s := openTest(b, filepath.Join(b.TempDir(), "failoverd.db"), Options{NoSync: true})
	defer s.Close()
	start := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	ids := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range ids {
				inc := failover.Incident{
					ID: fmt.Sprintf("eth-%d-%d", i%100, i), Validator: fmt.Sprintf("eth-%d", i%100),
					State: failover.StateClosed, Reason: "resolved; standby deleted",
					CreatedAt: start.Add(time.Duration(i) * time.Hour),
					History: []failover.Entry{
						{At: start, To: failover.StateConfirming, Cause: "ValidatorDown firing"},
						{At: start, From: failover.StateRecovering, To: failover.StateClosed, Event: failover.EventStandbyDeleted, Cause: "standby deleted"},
					},
				}
				if i >= closed {
					inc.State = failover.StateSyncing
				}
				if err := s.PutIncident(b.Context(), &inc); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for i := range closed + open {
		ids <- i
	}
	close(ids)
	wg.Wait()
	for b.Loop() {
		got, err := s.ListIncidents(b.Context(), failover.ListOptions{OpenOnly: true})
		if err != nil || len(got) != open {
			b.Fatalf("got %d incidents, %v; want %d", len(got), err, open)
		}
	}
}
