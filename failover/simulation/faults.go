package simulation

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/failoverd/failoverd/failover"
)

// errCrashed is what every call of a crashed failoverd process meets: the
// process is gone, so nothing it would still do reaches the world.
var errCrashed = errors.New("the failoverd process crashed (simulated SIGKILL)")

// errInjected marks a store failure the simulation injected; errLostAck
// one that took effect before its answer was lost.
var (
	errInjected = errors.New("injected by the simulation")
	errLostAck  = fmt.Errorf("the write took effect, its answer was lost: %w", errInjected)
)

// proc is one failoverd process. Every call the engine makes to the store,
// the clouds, the standby agents or the cluster goes through it, so that a
// crash can happen at any of them: before the call takes effect, or after it
// took effect and before its answer is used. Once dead, a process reaches
// nothing; the world builds a new engine on the same store.
type proc struct {
	id   int
	dead bool
	// countdown > 0 arms a crash at that many-th effectful call from now;
	// afterEffect says whether that call takes effect first.
	countdown   int
	afterEffect bool
	pending     bool
	// diedAt says what the process was doing when it died.
	diedAt string
}

// call is a read: it only fails once the process is dead.
func (p *proc) call() error {
	if p.dead {
		return errCrashed
	}
	return nil
}

// enter is the start of an effectful call (a store write, a cloud create or
// delete, a fence): the armed crash may strike before it.
func (p *proc) enter(what string) error {
	if p.dead {
		return errCrashed
	}
	if p.countdown > 0 {
		p.countdown--
		if p.countdown == 0 {
			if !p.afterEffect {
				p.die("before " + what)
				return errCrashed
			}
			p.pending = true
		}
	}
	return nil
}

// leave is the end of an effectful call that took effect: the armed crash
// may strike before the answer gets back.
func (p *proc) leave(what string) error {
	if p.pending {
		p.pending = false
		p.die("after " + what + " took effect")
		return errCrashed
	}
	return nil
}

func (p *proc) die(at string) {
	p.dead, p.diedAt, p.countdown = true, at, 0
}

// faultRates is the weather: how often each kind of failure strikes now.
// Storms come and go, so that a run has calm stretches in which incidents
// make progress as well as stretches in which everything fails.
type faultRates struct {
	storeWrite   float64 // a write fails and changes nothing
	storeLostAck float64 // a write takes effect, its answer is lost
	storeRead    float64 // a read fails
	cloud        float64 // a cloud call fails (any typed error)
	agent        float64 // a standby agent does not answer, or answers badly
}

func (f faultRates) String() string {
	return fmt.Sprintf("store write %.0f%%, lost ack %.0f%%, read %.0f%%; cloud %.0f%%; agent %.0f%%",
		f.storeWrite*100, f.storeLostAck*100, f.storeRead*100, f.cloud*100, f.agent*100)
}

// faultStore is the durable store as a failing disk or API server shows it
// to one process.
type faultStore struct {
	w     *world
	inner failover.Store
	rng   *rand.Rand
}

func (s *faultStore) read() error {
	if err := s.w.proc.call(); err != nil {
		return err
	}
	if r := s.w.faults.storeRead; r > 0 && s.rng.Float64() < r {
		s.w.countFault("store read")
		s.w.note("  fault: store read fails")
		return fmt.Errorf("store read: %w", errInjected)
	}
	return nil
}

// write runs one write with the faults and crash points around it.
func (s *faultStore) write(what string, do func() error) error {
	if err := s.w.proc.enter("store " + what); err != nil {
		return err
	}
	if r := s.w.faults.storeWrite; r > 0 && s.rng.Float64() < r {
		s.w.countFault("store write")
		s.w.note("  fault: store %s fails", what)
		return fmt.Errorf("store %s: %w", what, errInjected)
	}
	err := do()
	if cerr := s.w.proc.leave("store " + what); cerr != nil {
		return cerr
	}
	if err == nil {
		if r := s.w.faults.storeLostAck; r > 0 && s.rng.Float64() < r {
			s.w.countFault("store lost ack")
			s.w.note("  fault: store %s took effect, its answer is lost", what)
			return fmt.Errorf("store %s: %w", what, errLostAck)
		}
	}
	return err
}

func (s *faultStore) GetIncident(ctx context.Context, id string) (failover.Incident, error) {
	if err := s.read(); err != nil {
		return failover.Incident{}, err
	}
	return s.inner.GetIncident(ctx, id)
}

func (s *faultStore) PutIncident(ctx context.Context, inc *failover.Incident) error {
	intent := inc.Intent != nil && inc.Intent.Action == "ensure-standby"
	if intent && s.w.loseIntentAnswer == inc.ID {
		s.w.loseIntentAnswer = ""
		if err := s.inner.PutIncident(ctx, inc); err != nil {
			return err
		}
		s.w.lostIntent[inc.ID] = true
		s.w.note("  fault: store put incident %s (its intent) took effect, its answer is lost", inc.ID)
		return fmt.Errorf("store put incident %s: %w", inc.ID, errLostAck)
	}
	err := s.write("put incident "+inc.ID, func() error { return s.inner.PutIncident(ctx, inc) })
	if errors.Is(err, errLostAck) && intent {
		s.w.lostIntent[inc.ID] = true
	}
	return err
}

func (s *faultStore) ListIncidents(ctx context.Context, opts failover.ListOptions) ([]failover.Incident, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	return s.inner.ListIncidents(ctx, opts)
}

func (s *faultStore) GetValidator(ctx context.Context, name string) (failover.ValidatorRecord, error) {
	if err := s.read(); err != nil {
		return failover.ValidatorRecord{}, err
	}
	return s.inner.GetValidator(ctx, name)
}

func (s *faultStore) PutValidator(ctx context.Context, v *failover.ValidatorRecord) error {
	return s.write("put validator "+v.Name, func() error { return s.inner.PutValidator(ctx, v) })
}

func (s *faultStore) ListValidators(ctx context.Context) ([]failover.ValidatorRecord, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	return s.inner.ListValidators(ctx)
}

func (s *faultStore) GetSite(ctx context.Context, name string) (failover.SiteRecord, error) {
	if err := s.read(); err != nil {
		return failover.SiteRecord{}, err
	}
	return s.inner.GetSite(ctx, name)
}

func (s *faultStore) PutSite(ctx context.Context, r *failover.SiteRecord) error {
	return s.write("put site "+r.Name, func() error { return s.inner.PutSite(ctx, r) })
}

func (s *faultStore) ListSites(ctx context.Context) ([]failover.SiteRecord, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	return s.inner.ListSites(ctx)
}

func (s *faultStore) GetSnapshotRun(ctx context.Context, id string) (failover.SnapshotRun, error) {
	if err := s.read(); err != nil {
		return failover.SnapshotRun{}, err
	}
	return s.inner.GetSnapshotRun(ctx, id)
}

func (s *faultStore) PutSnapshotRun(ctx context.Context, r *failover.SnapshotRun) error {
	return s.write("put snapshot run "+r.ID, func() error { return s.inner.PutSnapshotRun(ctx, r) })
}

func (s *faultStore) ListSnapshotRuns(ctx context.Context, validator string) ([]failover.SnapshotRun, error) {
	if err := s.read(); err != nil {
		return nil, err
	}
	return s.inner.ListSnapshotRuns(ctx, validator)
}

func (s *faultStore) Close() error { return nil }

// brokenStore is a store with a deliberate defect, for the tests that prove
// the checker notices: it forgets writes, or rewrites what it keeps.
type brokenStore struct {
	failover.Store
	w *world
}

func (s *brokenStore) PutValidator(ctx context.Context, v *failover.ValidatorRecord) error {
	if s.w.breaks("store-forgets-owner") && v.Ownership.Generation > 0 {
		old, err := s.Store.GetValidator(ctx, v.Name)
		if err == nil && old.Ownership.Generation != v.Ownership.Generation {
			// Acknowledged, never written: the signing right stays where it was.
			v.Version = old.Version
			return nil
		}
	}
	if s.w.breaks("store-resets-generation") && v.Ownership.Generation > 1 {
		v.Ownership.Generation = 1
	}
	return s.Store.PutValidator(ctx, v)
}

func (s *brokenStore) PutIncident(ctx context.Context, inc *failover.Incident) error {
	if s.w.breaks("store-drops-reason") && inc.State == failover.StateProvisioning {
		inc.Reason = ""
	}
	return s.Store.PutIncident(ctx, inc)
}

// clock is the simulation's only time: the engine, the clouds, the chain and
// the approvals all read it, and only the schedule moves it, in whole
// seconds (see Options.Now in the README for why).
type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
