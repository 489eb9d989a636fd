package simulation

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/failoverd/failoverd/failover"
)

// memStore is the durable state of a simulated failoverd: what survives a
// crash. It keeps every record as JSON, so that a value the engine holds
// never aliases what is stored (as with bbolt or the Kubernetes API), and it
// is held to the same contract as the real stores (TestMemStoreContract).
// A few hundred seeds must run in seconds, so it is in memory.
type memStore struct {
	mu   sync.Mutex
	next int64
	recs map[string]map[string]memRec // kind -> key -> record
}

type memRec struct {
	version string
	body    []byte
}

func newMemStore() *memStore { return &memStore{recs: map[string]map[string]memRec{}} }

// versioned is what every stored kind shares: a compare-and-swap token.
type versioned interface {
	failover.Incident | failover.ValidatorRecord | failover.SiteRecord | failover.SnapshotRun
}

func version[T versioned](v *T) *string {
	switch x := any(v).(type) {
	case *failover.Incident:
		return &x.Version
	case *failover.ValidatorRecord:
		return &x.Version
	case *failover.SiteRecord:
		return &x.Version
	case *failover.SnapshotRun:
		return &x.Version
	}
	panic("unreachable")
}

func get[T versioned](ctx context.Context, s *memStore, kind, key string) (T, error) {
	var v T
	if err := ctx.Err(); err != nil {
		return v, err
	}
	s.mu.Lock()
	rec, ok := s.recs[kind][key]
	s.mu.Unlock()
	if !ok {
		return v, fmt.Errorf("%s %q: %w", kind, key, failover.ErrNotFound)
	}
	if err := json.Unmarshal(rec.body, &v); err != nil {
		return v, fmt.Errorf("%s %q: %w", kind, key, err)
	}
	*version(&v) = rec.version
	return v, nil
}

func put[T versioned](ctx context.Context, s *memStore, kind, key string, v *T) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if key == "" {
		return fmt.Errorf("%s: empty key", kind)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, exists := s.recs[kind][key]
	switch have := *version(v); {
	case have == "" && exists:
		return fmt.Errorf("create %s %q: %w", kind, key, failover.ErrConflict)
	case have != "" && !exists:
		return fmt.Errorf("update %s %q: %w", kind, key, failover.ErrNotFound)
	case have != "" && have != cur.version:
		return fmt.Errorf("update %s %q (version %s, stored %s): %w", kind, key, have, cur.version, failover.ErrConflict)
	}
	c := *v
	*version(&c) = ""
	body, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode %s %q: %w", kind, key, err)
	}
	s.next++
	ver := strconv.FormatInt(s.next, 10)
	if s.recs[kind] == nil {
		s.recs[kind] = map[string]memRec{}
	}
	s.recs[kind][key] = memRec{version: ver, body: body}
	*version(v) = ver
	return nil
}

// list returns every record of a kind in key order, as bbolt does.
func list[T versioned](ctx context.Context, s *memStore, kind string) ([]T, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	keys := make([]string, 0, len(s.recs[kind]))
	for k := range s.recs[kind] {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	slices.Sort(keys)
	out := make([]T, 0, len(keys))
	for _, k := range keys {
		v, err := get[T](ctx, s, kind, k)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

func (s *memStore) GetIncident(ctx context.Context, id string) (failover.Incident, error) {
	return get[failover.Incident](ctx, s, "incident", id)
}

func (s *memStore) PutIncident(ctx context.Context, inc *failover.Incident) error {
	return put(ctx, s, "incident", inc.ID, inc)
}

func (s *memStore) ListIncidents(ctx context.Context, opts failover.ListOptions) ([]failover.Incident, error) {
	all, err := list[failover.Incident](ctx, s, "incident")
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, inc := range all {
		if opts.Match(inc) {
			out = append(out, inc)
		}
	}
	slices.SortStableFunc(out, func(a, b failover.Incident) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

func (s *memStore) GetValidator(ctx context.Context, name string) (failover.ValidatorRecord, error) {
	return get[failover.ValidatorRecord](ctx, s, "validator", name)
}

func (s *memStore) PutValidator(ctx context.Context, v *failover.ValidatorRecord) error {
	return put(ctx, s, "validator", v.Name, v)
}

func (s *memStore) ListValidators(ctx context.Context) ([]failover.ValidatorRecord, error) {
	return list[failover.ValidatorRecord](ctx, s, "validator")
}

func (s *memStore) GetSite(ctx context.Context, name string) (failover.SiteRecord, error) {
	return get[failover.SiteRecord](ctx, s, "site", name)
}

func (s *memStore) PutSite(ctx context.Context, r *failover.SiteRecord) error {
	return put(ctx, s, "site", r.Name, r)
}

func (s *memStore) ListSites(ctx context.Context) ([]failover.SiteRecord, error) {
	return list[failover.SiteRecord](ctx, s, "site")
}

func (s *memStore) GetSnapshotRun(ctx context.Context, id string) (failover.SnapshotRun, error) {
	return get[failover.SnapshotRun](ctx, s, "run", id)
}

func (s *memStore) PutSnapshotRun(ctx context.Context, r *failover.SnapshotRun) error {
	return put(ctx, s, "run", r.ID, r)
}

func (s *memStore) ListSnapshotRuns(ctx context.Context, validator string) ([]failover.SnapshotRun, error) {
	all, err := list[failover.SnapshotRun](ctx, s, "run")
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, r := range all {
		if validator == "" || r.Validator == validator {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b failover.SnapshotRun) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

func (s *memStore) Close() error { return nil }

// raw is one stored record as it is kept.
type raw struct {
	key, version string
	body         []byte
}

// rawList returns a kind's records undecoded, in key order: the simulation
// decodes only those that changed since it last looked.
func (s *memStore) rawList(kind string) []raw {
	s.mu.Lock()
	out := make([]raw, 0, len(s.recs[kind]))
	for k, r := range s.recs[kind] {
		out = append(out, raw{key: k, version: r.version, body: r.body})
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b raw) int { return strings.Compare(a.key, b.key) })
	return out
}

// generation changes with every write: readers that cache what they decoded
// know when to decode again.
func (s *memStore) generation() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next
}
