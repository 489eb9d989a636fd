// Package bolt is failoverd's embedded store: one bbolt file in the data
// directory, for local runs, tests and the off-site deployment.
//
// Layout. Buckets incidents, validators, sites and snapshot-runs map a
// record's key (ID or name) to its value; incidents-open holds the IDs of open
// incidents (value empty) so that the reconcile loop's
// ListIncidents{OpenOnly} reads a handful of records rather than decoding
// every incident ever closed; meta holds the schema version. Snapshot runs
// have no index: there are a few per validator per day at most, and
// ListSnapshotRuns filters them by decoding.
//
// A value is an 8-byte big-endian version counter followed by the record as
// JSON, with the record's own Version field left out. The counter sits in a
// fixed header so that the compare-and-swap inside the write transaction,
// which every other writer waits behind, reads 8 bytes instead of decoding
// the record; the JSON is encoded before the transaction for the same reason.
// To the caller the counter is the decimal string Version.
package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"
	bberrors "go.etcd.io/bbolt/errors"

	"github.com/failoverd/failoverd/failover"
)

// SchemaVersion is the layout this package reads and writes. Bump it, with a
// migration in Open, whenever the layout above changes in a way an older
// failoverd would misread. A new bucket is not such a change: Open creates a
// missing one in place (snapshot-runs joined version 1 that way), and an
// older failoverd never looks inside a bucket it does not know.
const SchemaVersion = 1

// ErrLocked: another process holds the database file.
var ErrLocked = errors.New("locked by another process")

// maxBatchDelay is how long a write waits for others to share its
// transaction and fsync. Measured with BenchmarkPutValidatorParallel and
// BenchmarkPutValidator (16 writers, real fsync, ext4 on a virtual disk, a
// busy 2-core machine, so the numbers are noisy): 16 parallel writers cost
// 0.2-0.5ms per write at 0.5-2ms of delay, 0.5-2.5ms with no delay (every
// write pays its own fsync) and ~0.9ms at bbolt's default of 10ms (a batch
// holds at most 16 writes and waits the whole 10ms). A lone writer, the common
// case, pays the delay on top of its fsync; 1ms keeps that small.
const maxBatchDelay = time.Millisecond

var (
	bucketIncidents  = []byte("incidents")
	bucketOpen       = []byte("incidents-open")
	bucketValidators = []byte("validators")
	bucketSites      = []byte("sites")
	bucketRuns       = []byte("snapshot-runs")
	bucketMeta       = []byte("meta")
	keySchema        = []byte("schema")
)

// Options configures Open.
type Options struct {
	// Timeout bounds the wait for the file lock; 0 means 1s. A second
	// failoverd on the same data directory fails after it rather than
	// hanging.
	Timeout time.Duration
	// NoSync skips fsync: for tests only, a crash may lose acknowledged
	// writes.
	NoSync bool
}

// Store is a failover.Store in one bbolt file.
type Store struct {
	db   *bbolt.DB
	path string

	closeOnce sync.Once
	closeErr  error
}

var _ failover.Store = (*Store)(nil)

// Open opens or creates the database at path, creating its parent directory
// (0700: the incidents name the operator's infrastructure) and the file
// (0600).
func Open(path string, opts Options) (*Store, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: opts.Timeout, NoSync: opts.NoSync})
	if errors.Is(err, bberrors.ErrTimeout) {
		return nil, fmt.Errorf("open %s: %w (is another failoverd running with this data dir?)", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.MaxBatchDelay = maxBatchDelay
	if err := db.Update(initSchema); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// initSchema creates the buckets of a new file, and those a file made by an
// older failoverd of the same schema lacks, and refuses a file written by a
// newer failoverd: reading it would misread records, and writing it would
// corrupt them for the version that made it. Every bucket exists once Open
// returns, so the accessors never meet a nil bucket.
func initSchema(tx *bbolt.Tx) error {
	if meta := tx.Bucket(bucketMeta); meta != nil {
		raw := meta.Get(keySchema)
		v, err := strconv.Atoi(string(raw))
		if err != nil {
			return fmt.Errorf("unreadable schema version %q", raw)
		}
		if v > SchemaVersion {
			return fmt.Errorf("schema version %d is newer than this failoverd understands (%d); run a newer failoverd or restore a backup", v, SchemaVersion)
		}
	}
	for _, name := range [][]byte{bucketIncidents, bucketOpen, bucketValidators, bucketSites, bucketRuns, bucketMeta} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return tx.Bucket(bucketMeta).Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
}

// Close closes the database; later calls return the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if err := s.db.Close(); err != nil {
			s.closeErr = fmt.Errorf("close %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// GetIncident implements failover.Store.
func (s *Store) GetIncident(ctx context.Context, id string) (failover.Incident, error) {
	var inc failover.Incident
	if err := s.get(ctx, bucketIncidents, id, &inc, &inc.Version); err != nil {
		return failover.Incident{}, fmt.Errorf("get incident %s: %w", id, err)
	}
	return inc, nil
}

// PutIncident implements failover.Store. It keeps incidents-open in step in
// the same transaction.
func (s *Store) PutIncident(ctx context.Context, inc *failover.Incident) error {
	rec := *inc
	open := inc.State.Open()
	index := func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketOpen)
		if open {
			return b.Put([]byte(inc.ID), nil)
		}
		return b.Delete([]byte(inc.ID))
	}
	if err := s.put(ctx, bucketIncidents, inc.ID, &rec, &rec.Version, index); err != nil {
		return fmt.Errorf("put incident %s: %w", inc.ID, err)
	}
	inc.Version = rec.Version
	return nil
}

// ListIncidents implements failover.Store.
func (s *Store) ListIncidents(ctx context.Context, opts failover.ListOptions) ([]failover.Incident, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	var out []failover.Incident
	keep := func(k, v []byte) error {
		inc, err := decode[failover.Incident](v, func(i *failover.Incident) *string { return &i.Version })
		if err != nil {
			return fmt.Errorf("incident %s: %w", k, err)
		}
		if opts.Match(inc) {
			out = append(out, inc)
		}
		return nil
	}
	err := s.db.View(func(tx *bbolt.Tx) error {
		all := tx.Bucket(bucketIncidents)
		if !opts.OpenOnly {
			return forEach(ctx, all, keep)
		}
		return forEach(ctx, tx.Bucket(bucketOpen), func(k, _ []byte) error {
			v := all.Get(k)
			if v == nil {
				return fmt.Errorf("open index names incident %s, which does not exist", k)
			}
			return keep(k, v)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	slices.SortFunc(out, func(a, b failover.Incident) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// GetValidator implements failover.Store.
func (s *Store) GetValidator(ctx context.Context, name string) (failover.ValidatorRecord, error) {
	var v failover.ValidatorRecord
	if err := s.get(ctx, bucketValidators, name, &v, &v.Version); err != nil {
		return failover.ValidatorRecord{}, fmt.Errorf("get validator %s: %w", name, err)
	}
	return v, nil
}

// PutValidator implements failover.Store.
func (s *Store) PutValidator(ctx context.Context, v *failover.ValidatorRecord) error {
	rec := *v
	if err := s.put(ctx, bucketValidators, v.Name, &rec, &rec.Version, nil); err != nil {
		return fmt.Errorf("put validator %s: %w", v.Name, err)
	}
	v.Version = rec.Version
	return nil
}

// ListValidators implements failover.Store; records come in name order.
func (s *Store) ListValidators(ctx context.Context) ([]failover.ValidatorRecord, error) {
	out, err := list(ctx, s.db, bucketValidators, func(v *failover.ValidatorRecord) *string { return &v.Version })
	if err != nil {
		return nil, fmt.Errorf("list validators: %w", err)
	}
	return out, nil
}

// GetSite implements failover.Store.
func (s *Store) GetSite(ctx context.Context, name string) (failover.SiteRecord, error) {
	var r failover.SiteRecord
	if err := s.get(ctx, bucketSites, name, &r, &r.Version); err != nil {
		return failover.SiteRecord{}, fmt.Errorf("get site %s: %w", name, err)
	}
	return r, nil
}

// PutSite implements failover.Store.
func (s *Store) PutSite(ctx context.Context, r *failover.SiteRecord) error {
	rec := *r
	if err := s.put(ctx, bucketSites, r.Name, &rec, &rec.Version, nil); err != nil {
		return fmt.Errorf("put site %s: %w", r.Name, err)
	}
	r.Version = rec.Version
	return nil
}

// ListSites implements failover.Store; records come in name order.
func (s *Store) ListSites(ctx context.Context) ([]failover.SiteRecord, error) {
	out, err := list(ctx, s.db, bucketSites, func(r *failover.SiteRecord) *string { return &r.Version })
	if err != nil {
		return nil, fmt.Errorf("list sites: %w", err)
	}
	return out, nil
}

// GetSnapshotRun implements failover.Store.
func (s *Store) GetSnapshotRun(ctx context.Context, id string) (failover.SnapshotRun, error) {
	var r failover.SnapshotRun
	if err := s.get(ctx, bucketRuns, id, &r, &r.Version); err != nil {
		return failover.SnapshotRun{}, fmt.Errorf("get snapshot run %s: %w", id, err)
	}
	return r, nil
}

// PutSnapshotRun implements failover.Store.
func (s *Store) PutSnapshotRun(ctx context.Context, r *failover.SnapshotRun) error {
	rec := *r
	if err := s.put(ctx, bucketRuns, r.ID, &rec, &rec.Version, nil); err != nil {
		return fmt.Errorf("put snapshot run %s: %w", r.ID, err)
	}
	r.Version = rec.Version
	return nil
}

// ListSnapshotRuns implements failover.Store. It decodes every run and
// filters afterwards: runs are few (see the layout above).
func (s *Store) ListSnapshotRuns(ctx context.Context, validator string) ([]failover.SnapshotRun, error) {
	all, err := list(ctx, s.db, bucketRuns, func(r *failover.SnapshotRun) *string { return &r.Version })
	if err != nil {
		return nil, fmt.Errorf("list snapshot runs: %w", err)
	}
	out := slices.DeleteFunc(all, func(r failover.SnapshotRun) bool {
		return validator != "" && r.Validator != validator
	})
	slices.SortFunc(out, func(a, b failover.SnapshotRun) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// get decodes the record at key into rec and its counter into *version.
func (s *Store) get(ctx context.Context, bucket []byte, key string, rec any, version *string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucket).Get([]byte(key))
		if v == nil {
			return failover.ErrNotFound
		}
		return decodeInto(v, rec, version)
	})
}

// put writes rec at key if *version matches the stored counter ("" for a
// create), then sets *version to the new counter. also runs in the same
// transaction (index upkeep). rec is the caller's copy, so a failed write
// leaves the caller's value untouched.
//
// Writes go through db.Batch so that concurrent writers share one
// transaction and one fsync. Batch may run fn more than once and rolls back
// the whole batch when fn fails, so fn keeps its outcome in locals it resets
// on every run and reports a lost compare-and-swap as an outcome, not as an
// error: one stale writer does not make the others redo their work.
func (s *Store) put(ctx context.Context, bucket []byte, key string, rec any, version *string, also func(*bbolt.Tx) error) error {
	if key == "" {
		return errors.New("empty key")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	want, err := parseVersion(*version)
	if err != nil {
		return err
	}
	// The counter lives in the header, not in the JSON.
	*version = ""
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}

	var (
		outcome error
		next    uint64
	)
	err = s.db.Batch(func(tx *bbolt.Tx) error {
		outcome, next = nil, 0
		b := tx.Bucket(bucket)
		cur := b.Get([]byte(key))
		switch {
		case want == 0 && cur != nil:
			outcome = fmt.Errorf("already exists: %w", failover.ErrConflict)
			return nil
		case want != 0 && cur == nil:
			outcome = failover.ErrNotFound
			return nil
		case cur != nil:
			have, err := header(cur)
			if err != nil {
				return err
			}
			if have != want {
				outcome = fmt.Errorf("stored version %d, given %d: %w", have, want, failover.ErrConflict)
				return nil
			}
		}
		next = want + 1
		val := make([]byte, 8+len(data))
		binary.BigEndian.PutUint64(val, next)
		copy(val[8:], data)
		if err := b.Put([]byte(key), val); err != nil {
			return err
		}
		if also != nil {
			return also(tx)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if outcome != nil {
		return outcome
	}
	*version = strconv.FormatUint(next, 10)
	return nil
}

// parseVersion turns a caller's Version into the counter; 0 means create. A
// Version this store never issued can match no record.
func parseVersion(v string) (uint64, error) {
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("version %q was not issued by this store: %w", v, failover.ErrConflict)
	}
	return n, nil
}

func header(v []byte) (uint64, error) {
	if len(v) < 8 {
		return 0, fmt.Errorf("corrupt record: %d bytes", len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// decodeInto decodes a stored value. bbolt's memory is only valid inside the
// transaction; json.Unmarshal copies what it keeps.
func decodeInto(v []byte, rec any, version *string) error {
	n, err := header(v)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(v[8:], rec); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	*version = strconv.FormatUint(n, 10)
	return nil
}

func decode[T any](v []byte, version func(*T) *string) (T, error) {
	var rec T
	err := decodeInto(v, &rec, version(&rec))
	return rec, err
}

func list[T any](ctx context.Context, db *bbolt.DB, bucket []byte, version func(*T) *string) ([]T, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []T
	err := db.View(func(tx *bbolt.Tx) error {
		return forEach(ctx, tx.Bucket(bucket), func(k, v []byte) error {
			rec, err := decode(v, version)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			out = append(out, rec)
			return nil
		})
	})
	return out, err
}

// forEach is Bucket.ForEach that gives up when ctx ends, so a long scan does
// not outlive the request that asked for it.
func forEach(ctx context.Context, b *bbolt.Bucket, fn func(k, v []byte) error) error {
	i := 0
	return b.ForEach(func(k, v []byte) error {
		if i++; i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return fn(k, v)
	})
}
