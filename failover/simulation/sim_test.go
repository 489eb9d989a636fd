package simulation

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/store/storetest"
)

// Environment that tunes TestSimulation (see README.md).
const (
	envSeed     = "FAILOVERD_SIM_SEED"     // replay one seed
	envSeeds    = "FAILOVERD_SIM_SEEDS"    // how many seeds (default 300)
	envBase     = "FAILOVERD_SIM_BASE"     // the first seed of a sweep (default 1)
	envSteps    = "FAILOVERD_SIM_STEPS"    // steps per seed
	envDuration = "FAILOVERD_SIM_DURATION" // soak: run seeds for this long
	envBreak    = "FAILOVERD_SIM_BREAK"    // plant a defect (replaying a checker test)
	envSummary  = "FAILOVERD_SIM_SUMMARY"  // append the summary line to this file
)

const defaultSeeds = 300

func newFixtures(t testing.TB) *Fixtures {
	t.Helper()
	fx, err := NewFixtures(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return fx
}

func envInt(t testing.TB, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a whole number", name, s)
	}
	return n
}

// TestSimulation runs the real engine through a few hundred seeded
// schedules of faults, crashes, approvals and failbacks, checking the
// invariants after every step. FAILOVERD_SIM_SEED replays one seed (its
// trace is printed), FAILOVERD_SIM_SEEDS runs more, FAILOVERD_SIM_DURATION
// soaks for as long as asked.
func TestSimulation(t *testing.T) {
	fx := newFixtures(t)
	opts := Options{Steps: envInt(t, envSteps, DefaultSteps), Break: os.Getenv(envBreak)}
	if s := os.Getenv(envSeed); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", envSeed, s, err)
		}
		res := Run(fx, seed, opts)
		t.Logf("trace of seed %d:\n%s", seed, strings.Join(res.Trace, "\n"))
		t.Logf("%s\n%s", res.Stats.Summary(), res.Stats.Details())
		if res.Violation != nil {
			t.Fatalf("seed %d: %s\nreplay: %s", seed, res.Violation, res.Replay())
		}
		return
	}
	if opts.Break != "" {
		t.Skipf("%s applies to a replay (%s) only", envBreak, envSeed)
	}
	base := uint64(envInt(t, envBase, 1))
	var total Stats
	var failed []Result
	start := time.Now()
	if d := os.Getenv(envDuration); d != "" {
		dur, err := time.ParseDuration(d)
		if err != nil {
			t.Fatalf("%s=%q: %v", envDuration, d, err)
		}
		if os.Getenv(envBase) == "" {
			// A soak explores seeds no earlier run has tried.
			base = uint64(time.Now().UnixNano()) & (1<<40 - 1)
		}
		t.Logf("soaking for %s from seed %d", dur, base)
		total, failed = sweep(fx, opts, base, 0, time.Now().Add(dur))
	} else {
		n := envInt(t, envSeeds, defaultSeeds)
		if testing.Short() {
			n = min(n, 60)
		}
		total, failed = sweep(fx, opts, base, n, time.Time{})
	}
	t.Logf("%s (%s wall time, seeds %d..%d)", total.Summary(), time.Since(start).Round(time.Second), base, base+uint64(total.Seeds)-1)
	t.Logf("\n%s", total.Details())
	if path := os.Getenv(envSummary); path != "" {
		f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(f, "%s %s\n", time.Now().UTC().Format(time.DateOnly), total.Summary())
		f.Close()
	}
	for i, r := range failed {
		if i < 3 {
			t.Errorf("%s", r.Report())
		} else {
			t.Errorf("seed %d: %s\nreplay: %s", r.Seed, r.Violation, r.Replay())
		}
	}
	if len(failed) == 0 && total.Seeds >= 200 {
		requireCoverage(t, total)
	}
}

// sweep runs seeds on every core: n seeds from base, or (n == 0) until the
// deadline. Each seed is its own world, so parallelism changes no trace.
func sweep(fx *Fixtures, opts Options, base uint64, n int, deadline time.Time) (Stats, []Result) {
	var (
		mu     sync.Mutex
		total  Stats
		failed []Result
		next   = base
		wg     sync.WaitGroup
	)
	take := func() (uint64, bool) {
		mu.Lock()
		defer mu.Unlock()
		if n > 0 && next >= base+uint64(n) || n == 0 && time.Now().After(deadline) {
			return 0, false
		}
		next++
		return next - 1, true
	}
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				seed, ok := take()
				if !ok {
					return
				}
				res := Run(fx, seed, opts)
				mu.Lock()
				total.Merge(res.Stats)
				if res.Violation != nil {
					failed = append(failed, res)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return total, failed
}

// requireCoverage fails a sweep that did not reach the deep states: a
// simulation that never migrates or crashes proves little.
func requireCoverage(t *testing.T, s Stats) {
	t.Helper()
	n := s.Seeds
	floors := map[string]int{
		"migrations completed":                    n / 10,
		"migrations completed: berachain":         n / 50,
		"migrations completed: ethereum":          n / 20,
		"failbacks completed":                     n / 20,
		"imports":                                 n / 5,
		"imports refused by the agent":            n / 10,
		"approvals accepted":                      n / 5,
		"approvals refused: wrong-keys":           n / 20,
		"reached failed":                          n / 10,
		"reached recovering":                      n / 2,
		"gc deletes":                              1,
		"standbys created":                        n,
		"step: a crash is armed":                  n / 2,
		"step: a site loses power":                n / 4,
		"step: a site loses its uplink":           n / 4,
		"approvals refused: chain-not-silent":     n / 20,
		"approvals refused: replayed":             n / 20,
		"approvals refused: unknown-signer":       n / 20,
		"step: a validator comes back on its own": n / 2,
	}
	var short []string
	for _, k := range sortedKeys(floors) {
		if s.Counts[k] < floors[k] {
			short = append(short, fmt.Sprintf("%s: %d (want at least %d)", k, s.Counts[k], floors[k]))
		}
	}
	for _, kind := range []string{"crash", "store write", "store lost ack", "store read", "cloud ensure capacity", "cloud ensure quota",
		"cloud ensure transient-after", "cloud delete timeout-after", "cloud get permanent", "agent unreachable", "fence incomplete",
		"alertmanager delivery lost", "cloud zone stockout"} {
		if s.Faults[kind] == 0 {
			short = append(short, "fault "+kind+": never injected")
		}
	}
	if len(short) > 0 {
		t.Fatalf("the schedules do not reach far enough:\n  %s", strings.Join(short, "\n  "))
	}
}

// TestDeterminism: a seed replays byte for byte, whatever else runs.
func TestDeterminism(t *testing.T) {
	fx := newFixtures(t)
	for _, seed := range []uint64{3, 17, 101} {
		a := Run(fx, seed, Options{})
		b := Run(fx, seed, Options{})
		ta, tb := strings.Join(a.Trace, "\n"), strings.Join(b.Trace, "\n")
		if ta != tb {
			la, lb := a.Trace, b.Trace
			i := 0
			for i < len(la) && i < len(lb) && la[i] == lb[i] {
				i++
			}
			var x, y string
			if i < len(la) {
				x = la[i]
			}
			if i < len(lb) {
				y = lb[i]
			}
			t.Fatalf("seed %d: two runs differ at trace line %d:\n  first:  %s\n  second: %s", seed, i, x, y)
		}
		if len(a.Trace) < 200 {
			t.Fatalf("seed %d: a trace of %d lines is too short to prove anything", seed, len(a.Trace))
		}
		if a.Stats.Summary() != b.Stats.Summary() {
			t.Fatalf("seed %d: the counts differ:\n  %s\n  %s", seed, a.Stats.Summary(), b.Stats.Summary())
		}
	}
}

// TestCheckerCatches plants each defect and requires the checker to report
// it, with the seed and a replay command that reproduces the same trace.
func TestCheckerCatches(t *testing.T) {
	fx := newFixtures(t)
	for _, name := range sortedKeys(Breaks) {
		want := Breaks[name]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var caught *Result
			for seed := uint64(1); seed <= 40 && caught == nil; seed++ {
				res := Run(fx, seed, Options{Break: name})
				if res.Violation != nil {
					caught = &res
				}
			}
			if caught == nil {
				t.Fatalf("40 seeds with %s planted, and no invariant noticed", name)
			}
			if caught.Violation.Invariant != want {
				t.Fatalf("%s was reported as %s, want %s:\n%s", name, caught.Violation.Invariant, want, caught.Report())
			}
			rep := caught.Report()
			for _, s := range []string{fmt.Sprintf("seed %d:", caught.Seed), fmt.Sprintf("FAILOVERD_SIM_SEED=%d ", caught.Seed),
				"FAILOVERD_SIM_BREAK=" + name, "VIOLATION: "} {
				if !strings.Contains(rep, s) {
					t.Fatalf("the report does not say %q:\n%s", s, rep)
				}
			}
			again := Run(fx, caught.Seed, Options{Break: name})
			if strings.Join(again.Trace, "\n") != strings.Join(caught.Trace, "\n") {
				t.Fatalf("seed %d with %s does not replay the same trace", caught.Seed, name)
			}
			t.Logf("caught at seed %d: %s", caught.Seed, caught.Violation)
		})
	}
}

func TestMemStoreContract(t *testing.T) {
	storetest.Run(t, func(*testing.T) failover.Store { return newMemStore() })
}
