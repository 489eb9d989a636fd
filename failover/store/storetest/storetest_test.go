package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failoverd/failoverd/failover"
)

// memStore is the smallest correct store, kept here to show that the suite
// passes a correct store; its mutants show that each kind of wrong store fails.
type memStore struct {
	// mutant is "name", broken for every table, or "name@table", broken for
	// that table only: a store can be right for incidents and wrong for the
	// record added later, and the suite must catch that too.
	mutant string
	mu     sync.Mutex
	tables map[string]map[string]*memRec
}

type memRec struct {
	data    []byte
	ver     int
	shared  any  // the "alias" mutant keeps the caller's value itself
	wasOpen bool // the "stale-index" mutant filters on the state at create
}

func newMem(mutant string) *memStore {
	return &memStore{mutant: mutant, tables: map[string]map[string]*memRec{"incident": {}, "validator": {}, "site": {}, "run": {}}}
}

// is reports whether the store is the named mutant for table.
func (m *memStore) is(name, table string) bool {
	mutant, scope, scoped := strings.Cut(m.mutant, "@")
	return mutant == name && (!scoped || scope == table)
}

func (m *memStore) ctxErr(ctx context.Context, table string) error {
	if m.is("ignore-ctx", table) {
		return nil
	}
	return ctx.Err()
}

func memGet[T any](ctx context.Context, m *memStore, table, key string, version func(*T) *string) (T, error) {
	var v T
	if err := m.ctxErr(ctx, table); err != nil {
		return v, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.tables[table][key]
	if !ok {
		if m.is("missing-nil", table) {
			return v, nil
		}
		return v, fmt.Errorf("get %s %s: %w", table, key, failover.ErrNotFound)
	}
	return memDecode(m, table, r, version)
}

func memDecode[T any](m *memStore, table string, r *memRec, version func(*T) *string) (T, error) {
	var v T
	if m.is("alias", table) {
		v = r.shared.(T)
	} else if err := json.Unmarshal(r.data, &v); err != nil {
		return v, err
	}
	*version(&v) = strconv.Itoa(r.ver)
	switch rec := any(&v).(type) {
	case *failover.Incident:
		if m.is("truncate-time", table) {
			rec.CreatedAt = rec.CreatedAt.Truncate(time.Microsecond)
		}
	case *failover.SnapshotRun:
		if m.is("truncate-time", table) && rec.FinishedAt != nil {
			t := rec.FinishedAt.Truncate(time.Microsecond)
			rec.FinishedAt = &t
		}
		if m.is("drop-pruned", table) {
			rec.Pruned = nil
		}
	}
	return v, nil
}

func memPut[T any](ctx context.Context, m *memStore, table, key string, v *T, version func(*T) *string) error {
	if key == "" && !m.is("empty-key", table) {
		return fmt.Errorf("put %s: empty key", table)
	}
	if err := m.ctxErr(ctx, table); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur, exists := m.tables[table][key]
	ver := *version(v)
	switch {
	case ver == "" && exists && !m.is("create-overwrites", table):
		return fmt.Errorf("put %s %s: %w", table, key, failover.ErrConflict)
	case ver != "" && !exists && !m.is("update-creates", table):
		return fmt.Errorf("put %s %s: %w", table, key, failover.ErrNotFound)
	case exists && ver != "" && ver != strconv.Itoa(cur.ver) && !m.is("no-cas", table):
		return fmt.Errorf("put %s %s: %w", table, key, failover.ErrConflict)
	}
	rec := *v
	*version(&rec) = ""
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	next := &memRec{data: data, ver: 1, shared: *v}
	if exists {
		next.ver = cur.ver + 1
		next.wasOpen = cur.wasOpen
		if m.is("merge", table) {
			// A patch, not a replacement: what the update left out survives.
			var merged T
			_ = json.Unmarshal(cur.data, &merged)
			_ = json.Unmarshal(data, &merged)
			next.data, _ = json.Marshal(merged)
		}
		if m.is("no-version-bump", table) {
			next.ver = cur.ver
		}
	}
	if inc, ok := any(v).(*failover.Incident); ok && (!exists || !m.is("stale-index", table)) {
		next.wasOpen = inc.State.Open()
	}
	m.tables[table][key] = next
	*version(v) = strconv.Itoa(next.ver)
	return nil
}

func memList[T any](ctx context.Context, m *memStore, table string, version func(*T) *string) ([]T, error) {
	if err := m.ctxErr(ctx, table); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []T
	for _, r := range m.tables[table] {
		v, err := memDecode(m, table, r, version)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// memSort orders records by CreatedAt, then ID, as the interface promises
// for incidents and snapshot runs; the sort mutants get it wrong.
func memSort[T any](m *memStore, table string, out []T, created func(T) time.Time, id func(T) string) {
	slices.SortFunc(out, func(a, b T) int {
		switch {
		case m.is("sort-by-id", table):
			return strings.Compare(id(a), id(b))
		case m.is("sort-as-text", table):
			return strings.Compare(created(a).Format(time.RFC3339Nano)+id(a), created(b).Format(time.RFC3339Nano)+id(b))
		}
		if c := created(a).Compare(created(b)); c != 0 {
			return c
		}
		return strings.Compare(id(a), id(b))
	})
}

func incVer(i *failover.Incident) *string        { return &i.Version }
func valVer(v *failover.ValidatorRecord) *string { return &v.Version }
func siteVer(s *failover.SiteRecord) *string     { return &s.Version }
func runVer(r *failover.SnapshotRun) *string     { return &r.Version }

func (m *memStore) GetIncident(ctx context.Context, id string) (failover.Incident, error) {
	return memGet(ctx, m, "incident", id, incVer)
}

func (m *memStore) PutIncident(ctx context.Context, inc *failover.Incident) error {
	return memPut(ctx, m, "incident", inc.ID, inc, incVer)
}

func (m *memStore) ListIncidents(ctx context.Context, opts failover.ListOptions) ([]failover.Incident, error) {
	all, err := memList(ctx, m, "incident", incVer)
	if err != nil {
		return nil, err
	}
	var out []failover.Incident
	for _, inc := range all {
		match := opts.Match(inc)
		if m.is("stale-index", "incident") && opts.OpenOnly {
			m.mu.Lock()
			wasOpen := m.tables["incident"][inc.ID].wasOpen
			m.mu.Unlock()
			match = (opts.Validator == "" || opts.Validator == inc.Validator) && wasOpen
		}
		if match {
			out = append(out, inc)
		}
	}
	memSort(m, "incident", out, func(i failover.Incident) time.Time { return i.CreatedAt }, func(i failover.Incident) string { return i.ID })
	return out, nil
}

func (m *memStore) GetValidator(ctx context.Context, name string) (failover.ValidatorRecord, error) {
	return memGet(ctx, m, "validator", name, valVer)
}

func (m *memStore) PutValidator(ctx context.Context, v *failover.ValidatorRecord) error {
	return memPut(ctx, m, "validator", v.Name, v, valVer)
}

func (m *memStore) ListValidators(ctx context.Context) ([]failover.ValidatorRecord, error) {
	return memList(ctx, m, "validator", valVer)
}

func (m *memStore) GetSite(ctx context.Context, name string) (failover.SiteRecord, error) {
	return memGet(ctx, m, "site", name, siteVer)
}

func (m *memStore) PutSite(ctx context.Context, s *failover.SiteRecord) error {
	return memPut(ctx, m, "site", s.Name, s, siteVer)
}

func (m *memStore) ListSites(ctx context.Context) ([]failover.SiteRecord, error) {
	return memList(ctx, m, "site", siteVer)
}

func (m *memStore) GetSnapshotRun(ctx context.Context, id string) (failover.SnapshotRun, error) {
	return memGet(ctx, m, "run", id, runVer)
}

func (m *memStore) PutSnapshotRun(ctx context.Context, r *failover.SnapshotRun) error {
	return memPut(ctx, m, "run", r.ID, r, runVer)
}

func (m *memStore) ListSnapshotRuns(ctx context.Context, validator string) ([]failover.SnapshotRun, error) {
	all, err := memList(ctx, m, "run", runVer)
	if err != nil {
		return nil, err
	}
	var out []failover.SnapshotRun
	for _, r := range all {
		match := validator == "" || r.Validator == validator
		switch {
		case m.is("prefix-filter", "run"):
			match = strings.HasPrefix(r.Validator, validator)
		case m.is("no-filter", "run"):
			match = true
		}
		if match {
			out = append(out, r)
		}
	}
	memSort(m, "run", out, func(r failover.SnapshotRun) time.Time { return r.CreatedAt }, func(r failover.SnapshotRun) string { return r.ID })
	return out, nil
}

func (m *memStore) Close() error { return nil }

func TestMemStorePasses(t *testing.T) {
	Run(t, func(*testing.T) failover.Store { return newMem(os.Getenv("STORETEST_MUTANT")) })
}

// TestMutantsFail runs the suite against each broken store in a child
// process (a failing *testing.T cannot be caught in-process) and expects it
// to fail in the named case.
func TestMutantsFail(t *testing.T) {
	if os.Getenv("STORETEST_MUTANT") != "" {
		t.Skip("in a mutant child")
	}
	if testing.Short() {
		t.Skip("starts a child process per mutant")
	}
	for _, c := range []struct {
		mutant, failsIn string
	}{
		{"no-cas", "update"},
		{"no-cas", "concurrent_increments"},
		{"create-overwrites", "create_twice"},
		{"create-overwrites", "concurrent_creates"},
		{"update-creates", "update_missing"},
		{"missing-nil", "get_missing"},
		{"no-version-bump", "update"},
		{"merge", "incident/update"},
		{"merge", "validator/update"},
		{"alias", "returned_values_are_copies"},
		{"alias", "create_then_get"},
		{"truncate-time", "incident/create_then_get"},
		{"sort-by-id", "list_incidents_order"},
		{"sort-as-text", "list_incidents_order"},
		{"stale-index", "list_incidents_filters"},
		{"ignore-ctx", "cancelled_context"},
		{"empty-key", "empty_key"},
		// The same faults in snapshot runs alone, with incidents, validators
		// and sites right: the run cases must catch each by themselves.
		{"no-cas@run", "snapshot_run/update"},
		{"no-cas@run", "snapshot_run/concurrent_increments"},
		{"create-overwrites@run", "snapshot_run/create_twice"},
		{"create-overwrites@run", "snapshot_run/concurrent_creates"},
		{"update-creates@run", "snapshot_run/update_missing"},
		{"missing-nil@run", "snapshot_run/get_missing"},
		{"no-version-bump@run", "snapshot_run/update"},
		{"merge@run", "snapshot_run/update"},
		{"alias@run", "snapshot_run/returned_values_are_copies"},
		{"alias@run", "snapshot_run/create_then_get"},
		{"truncate-time@run", "snapshot_run/create_then_get"},
		{"drop-pruned@run", "snapshot_run/create_then_get"},
		{"empty-key@run", "snapshot_run/empty_key"},
		{"sort-by-id@run", "list_snapshot_runs_order"},
		{"sort-as-text@run", "list_snapshot_runs_order"},
		{"prefix-filter@run", "list_snapshot_runs_filters"},
		{"no-filter@run", "list_snapshot_runs_filters"},
		{"ignore-ctx@run", "cancelled_context/get_snapshot_run"},
		{"ignore-ctx@run", "cancelled_context/list_snapshot_runs_of_a_validator"},
		{"ignore-ctx@run", "cancelled_context/create_snapshot_run"},
		{"ignore-ctx@run", "cancelled_context/update_snapshot_run"},
	} {
		t.Run(c.mutant+"/"+c.failsIn, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestMemStorePasses$", "-test.v")
			cmd.Env = append(os.Environ(), "STORETEST_MUTANT="+c.mutant)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a store with mutant %q", c.mutant)
			}
			if !bytes.Contains(out, []byte("--- FAIL: TestMemStorePasses/"+c.failsIn+" (")) &&
				!bytes.Contains(out, []byte("--- FAIL: TestMemStorePasses/incident/"+c.failsIn+" (")) {
				t.Errorf("mutant %q did not fail in %q:\n%s", c.mutant, c.failsIn, out)
			}
		})
	}
}

// TestDiffSeesEveryField changes each leaf of each fixture in turn (a time
// by one nanosecond) and checks that diff reports it, so the round-trip
// comparison has no blind spot.
func TestDiffSeesEveryField(t *testing.T) {
	for _, c := range []struct {
		name   string
		sample func() any
	}{
		{"incident", func() any { v := incidents().sample("x"); v.Version = "7"; return &v }},
		{"validator", func() any { v := validators().sample("x"); v.Version = "7"; return &v }},
		{"site", func() any { v := sites().sample("x"); v.Version = "7"; return &v }},
		{"snapshot run", func() any { v := snapshotRuns().sample("x"); v.Version = "7"; return &v }},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := len(perturbations("", reflect.ValueOf(c.sample()).Elem()))
			if n < 4 {
				t.Fatalf("found only %d ways to change the fixture", n)
			}
			for i := range n {
				v := c.sample()
				p := perturbations("", reflect.ValueOf(v).Elem())[i]
				p.apply()
				if d := diff(c.sample(), v); len(d) == 0 {
					t.Errorf("diff does not notice a change to %s", p.path)
				}
			}
		})
	}
}

type perturbation struct {
	path  string
	apply func()
}

// perturbations lists every way to change one part of the addressable v,
// in a stable order.
func perturbations(path string, v reflect.Value) []perturbation {
	if v.Type() == timeType {
		return []perturbation{{path, func() { v.Set(reflect.ValueOf(v.Interface().(time.Time).Add(1))) }}}
	}
	switch v.Kind() {
	case reflect.Pointer:
		out := []perturbation{{path + "=nil", func() { v.SetZero() }}}
		if !v.IsNil() {
			out = append(out, perturbations(path, v.Elem())...)
		}
		return out
	case reflect.Struct:
		var out []perturbation
		for i := range v.NumField() {
			out = append(out, perturbations(path+"."+v.Type().Field(i).Name, v.Field(i))...)
		}
		return out
	case reflect.Slice:
		out := []perturbation{{path + " shortened", func() { v.SetLen(v.Len() - 1) }}}
		for i := range v.Len() {
			out = append(out, perturbations(fmt.Sprintf("%s[%d]", path, i), v.Index(i))...)
		}
		return out
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
		var out []perturbation
		for _, k := range keys {
			p := fmt.Sprintf("%s[%v]", path, k)
			out = append(out, perturbation{p + " deleted", func() { v.SetMapIndex(k, reflect.Value{}) }})
			// Map values are not addressable: change a copy, store it back.
			cp := reflect.New(v.Type().Elem()).Elem()
			cp.Set(v.MapIndex(k))
			for _, sub := range perturbations(p, cp) {
				out = append(out, perturbation{sub.path, func() { sub.apply(); v.SetMapIndex(k, cp) }})
			}
		}
		return out
	default:
		return []perturbation{{path, func() { v.SetZero() }}}
	}
}
