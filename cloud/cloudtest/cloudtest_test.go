package cloudtest_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/cloudtest"
)

// The suite is only worth something if it fails providers that break the
// contract. Each mutant breaks one rule in an otherwise correct fake; the
// suite runs against it in a child process (a failing subtest cannot be
// contained in this one) and must fail the subtest that guards the rule.

const mutantEnv = "CLOUDTEST_MUTANT"

var mutants = []struct {
	name     string
	wantFail string // the subtest that must catch it
}{
	{"strip-label", "EnsureCreates"},
	{"wrong-provider", "EnsureCreates"},
	{"wrong-zone", "EnsureCreates"},
	{"zero-created", "EnsureCreates"},
	{"not-idempotent", "EnsureTwiceIsOne"},
	{"follow-zone", "EnsureExistingInOtherZone"},
	{"racy-ensure", "ConcurrentEnsure"},
	{"get-unknown-nil", "GetUnknown"},
	{"delete-noop", "Delete"},
	{"delete-unknown-error", "DeleteIsIdempotent"},
	{"list-all", "ListOwnedOnly"},
	{"adopt-unowned", "UnownedIsUntouchable"},
	{"ignore-ctx", "CancelledContext"},
	{"delete-all", "TwoIncidentsTwoStandbys"},
}

func TestSuiteCatchesMutants(t *testing.T) {
	if os.Getenv(mutantEnv) != "" {
		t.Skip("in a child process")
	}
	for _, m := range append([]struct{ name, wantFail string }{{"none", ""}}, mutants...) {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestMutant$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), mutantEnv+"="+m.name)
			out, err := cmd.CombinedOutput()
			if m.wantFail == "" {
				if err != nil {
					t.Fatalf("the correct fake fails the suite: %v\n%s", err, out)
				}
				return
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Fatalf("suite passed or did not run (%v); want it to fail %s\n%s", err, m.wantFail, out)
			}
			if want := "--- FAIL: TestMutant/" + m.wantFail + " "; !strings.Contains(string(out), want) {
				t.Errorf("output lacks %q\n%s", want, out)
			}
		})
	}
}

// TestMutant runs the suite against one fake; only as a child process.
func TestMutant(t *testing.T) {
	m := os.Getenv(mutantEnv)
	if m == "" {
		t.Skip("run by TestSuiteCatchesMutants")
	}
	cloudtest.Run(t, cloudtest.Harness{
		New:   func(t *testing.T) cloud.Provider { return &fake{mutant: m} },
		Zones: []string{"z-1", "z-2"},
		AddUnowned: func(t *testing.T, p cloud.Provider, name, zone string) {
			f := p.(*fake)
			f.mu.Lock()
			defer f.mu.Unlock()
			f.nodes = append(f.nodes, cloud.Standby{Name: name, Provider: "fake", Zone: zone, State: cloud.StateRunning,
				Labels: map[string]string{"owner": "operator"}, CreatedAt: time.Now()})
		},
	})
}

// fake is a correct in-memory provider unless mutant says otherwise.
type fake struct {
	mutant string
	mu     sync.Mutex
	nodes  []cloud.Standby
}

func (f *fake) Name() string { return "fake" }

func (f *fake) ctxErr(ctx context.Context) error {
	if f.mutant == "ignore-ctx" {
		return nil
	}
	return ctx.Err()
}

func owned(s cloud.Standby) bool { return s.Labels[cloud.LabelManagedBy] == cloud.ManagedByValue }

func (f *fake) find(name string) int {
	return slices.IndexFunc(f.nodes, func(s cloud.Standby) bool { return s.Name == name })
}

func (f *fake) Ensure(ctx context.Context, spec cloud.StandbySpec) (cloud.Standby, error) {
	if err := f.ctxErr(ctx); err != nil {
		return cloud.Standby{}, err
	}
	if f.mutant == "racy-ensure" {
		f.mu.Lock()
		i := f.find(spec.Name)
		f.mu.Unlock()
		if i >= 0 {
			return f.Get(ctx, spec.Name)
		}
		time.Sleep(10 * time.Millisecond) // the window between check and create
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if i := f.find(spec.Name); i >= 0 && f.mutant != "not-idempotent" && f.mutant != "racy-ensure" {
		s := f.nodes[i]
		if !owned(s) && f.mutant != "adopt-unowned" {
			return cloud.Standby{}, fmt.Errorf("name taken: %w", cloud.ErrPermanent)
		}
		if f.mutant == "follow-zone" {
			s.Zone = spec.Zone
		}
		return f.out(s), nil
	}
	s := cloud.Standby{Name: spec.Name, Provider: "fake", Zone: spec.Zone, State: cloud.StatePending,
		Labels: cloud.OwnershipLabels(spec), CreatedAt: time.Now()}
	switch f.mutant {
	case "strip-label":
		delete(s.Labels, cloud.LabelValidator)
	case "wrong-provider":
		s.Provider = "other"
	case "wrong-zone":
		s.Zone = "z-default"
	case "zero-created":
		s.CreatedAt = time.Time{}
	}
	f.nodes = append(f.nodes, s)
	return f.out(s), nil
}

func (f *fake) out(s cloud.Standby) cloud.Standby {
	s.Labels = maps.Clone(s.Labels)
	return s
}

func (f *fake) Get(ctx context.Context, name string) (cloud.Standby, error) {
	if err := f.ctxErr(ctx); err != nil {
		return cloud.Standby{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if i := f.find(name); i >= 0 && owned(f.nodes[i]) {
		return f.out(f.nodes[i]), nil
	}
	if f.mutant == "get-unknown-nil" {
		return cloud.Standby{}, nil
	}
	return cloud.Standby{}, fmt.Errorf("get %s: %w", name, cloud.ErrNotFound)
}

func (f *fake) List(ctx context.Context) ([]cloud.Standby, error) {
	if err := f.ctxErr(ctx); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []cloud.Standby
	for _, s := range f.nodes {
		if owned(s) || f.mutant == "list-all" {
			out = append(out, f.out(s))
		}
	}
	return out, nil
}

func (f *fake) Delete(ctx context.Context, name string) error {
	if err := f.ctxErr(ctx); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	i := f.find(name)
	switch {
	case f.mutant == "delete-noop":
	case f.mutant == "delete-all" && i >= 0:
		f.nodes = slices.DeleteFunc(f.nodes, owned)
	case i >= 0 && owned(f.nodes[i]):
		f.nodes = slices.Delete(f.nodes, i, i+1)
	case f.mutant == "delete-unknown-error" && i < 0:
		return fmt.Errorf("delete %s: %w", name, cloud.ErrNotFound)
	}
	return nil
}
