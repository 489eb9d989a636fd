package simulation

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/sim"
)

// simCloud is one provider of the simulation: the simulated cloud under a
// real provider's name (gcp, aws), so that the engine walks zones and
// providers as it does in production, with the faults real clouds produce.
// Faults come from the provider's own random stream: the garbage collector
// visits providers in map order, and a shared stream would make the run
// depend on that order.
type simCloud struct {
	w    *world
	name string
	c    *sim.Cloud
	rng  *rand.Rand
	// degraded: standbys whose beacon node went optimistic until then.
	degraded map[string]time.Time
	// ledger is every instance this cloud ever ran, for the bill.
	ledger []*incarnation
	// failDeletes: that many next deletes fail; loseEnsureAnswers: that
	// many next creates take effect and lose their answer (the scenario tests).
	failDeletes, loseEnsureAnswers int
}

// incarnation is one VM's life: a standby deleted and created again under the
// same name is a new one (a new disk, a new agent).
type incarnation struct {
	provider, name string
	created, gone  time.Time
}

func newSimCloud(w *world, name string, opts sim.Options, seed uint64) (*simCloud, error) {
	c, err := sim.New(opts)
	if err != nil {
		return nil, err
	}
	return &simCloud{w: w, name: name, c: c, rng: rand.New(rand.NewPCG(seed, streamOf("cloud/"+name))), degraded: map[string]time.Time{}}, nil
}

func (c *simCloud) Name() string { return c.name }

// exists reads the cloud as it is, with no fault and no crash point: the
// simulation's own view, not a call failoverd makes.
func (c *simCloud) exists(name string) (cloud.Standby, bool) {
	sb, err := c.c.Get(context.Background(), name)
	if err != nil {
		return cloud.Standby{}, false
	}
	return c.fix(sb), true
}

// fix puts the provider's name on what the simulated cloud returns, and the
// address its agent answers on (the engine refuses to move keys to a standby
// without one).
func (c *simCloud) fix(sb cloud.Standby) cloud.Standby {
	if sb.Name == "" {
		return sb
	}
	sb.Provider = c.name
	sb.Address = sb.Name + "." + c.name + ".standby.test:7443"
	return sb
}

// fault decides whether this call of op meets a cloud failure: before (the
// call has no effect) or after (it took effect and the answer was lost).
// create says an Ensure would create: only then can a zone be out of
// capacity or quota, as a stockout never hides an existing instance.
func (c *simCloud) fault(op, zone string, create bool) (before, after error) {
	rate := c.w.faults.cloud
	if rate == 0 || c.rng.Float64() >= rate {
		return nil, nil
	}
	type kind struct {
		name  string
		err   error
		after bool // the effect happens, the answer is lost
	}
	kinds := []kind{
		{"transient", cloud.ErrTransient, false},
		{"timeout", context.DeadlineExceeded, false},
		{"unknown", errors.New("connection reset by peer"), false},
	}
	switch op {
	case sim.OpEnsure:
		kinds = append(kinds, kind{"permanent", cloud.ErrPermanent, false},
			kind{"transient-after", cloud.ErrTransient, true}, kind{"timeout-after", context.DeadlineExceeded, true})
		if create {
			kinds = append(kinds, kind{"capacity", cloud.ErrCapacity, false}, kind{"quota", cloud.ErrQuota, false})
		}
	case sim.OpDelete:
		kinds = append(kinds, kind{"permanent", cloud.ErrPermanent, false},
			kind{"transient-after", cloud.ErrTransient, true}, kind{"timeout-after", context.DeadlineExceeded, true})
	case sim.OpGet, sim.OpSync:
		kinds = append(kinds, kind{"permanent", cloud.ErrPermanent, false})
	}
	k := kinds[c.rng.IntN(len(kinds))]
	c.w.countFault("cloud " + op + " " + k.name)
	c.w.note("  fault: %s %s: %s", c.name, op, k.name)
	err := error(&cloud.Error{Provider: c.name, Op: op, Zone: zone, Kind: k.err, Err: errors.New("injected by the simulation")})
	if k.err == context.DeadlineExceeded || strings.HasPrefix(k.name, "unknown") {
		// Not a typed cloud error: what a provider passes on from a
		// transport or a context the engine bounded.
		err = fmt.Errorf("%s %s (injected by the simulation): %w", c.name, op, k.err)
	}
	if k.after {
		return nil, err
	}
	return err, nil
}

func (c *simCloud) Ensure(ctx context.Context, spec cloud.StandbySpec) (cloud.Standby, error) {
	what := c.name + " ensure " + spec.Name
	if err := c.w.proc.enter(what); err != nil {
		return cloud.Standby{}, err
	}
	_, existed := c.exists(spec.Name)
	before, after := c.fault(sim.OpEnsure, spec.Zone, !existed)
	if c.loseEnsureAnswers > 0 {
		c.loseEnsureAnswers--
		after = &cloud.Error{Provider: c.name, Op: sim.OpEnsure, Kind: cloud.ErrTransient, Err: errors.New("injected by the scenario")}
	}
	if before != nil {
		return cloud.Standby{}, before
	}
	if c.w.breaks("cloud-duplicates") && existed {
		// A provider whose Ensure is not idempotent: every call makes a node.
		spec.Name = fmt.Sprintf("%s-%d", spec.Name, c.c.Created())
		existed = false
	}
	sb, err := c.c.Ensure(ctx, spec)
	if err == nil && !existed {
		c.created(c.fix(sb))
	}
	if cerr := c.w.proc.leave(what); cerr != nil {
		return cloud.Standby{}, cerr
	}
	if err != nil {
		return cloud.Standby{}, err
	}
	if after != nil {
		return cloud.Standby{}, after
	}
	return c.fix(sb), nil
}

// created records a new instance and checks the caps at the moment a
// standby starts to cost money.
func (c *simCloud) created(sb cloud.Standby) {
	c.ledger = append(c.ledger, &incarnation{provider: c.name, name: sb.Name, created: sb.CreatedAt})
	c.w.stats.add("standbys created", 1)
	c.w.note("  cloud: %s created %s in %s", c.name, sb.Name, sb.Zone)
	c.w.checkAdmission(sb)
}

func (c *simCloud) Get(ctx context.Context, name string) (cloud.Standby, error) {
	if err := c.w.proc.call(); err != nil {
		return cloud.Standby{}, err
	}
	if before, _ := c.fault(sim.OpGet, "", false); before != nil {
		return cloud.Standby{}, before
	}
	sb, err := c.c.Get(ctx, name)
	if err != nil {
		return cloud.Standby{}, c.rename(err)
	}
	return c.fix(sb), nil
}

func (c *simCloud) List(ctx context.Context) ([]cloud.Standby, error) {
	if err := c.w.proc.call(); err != nil {
		return nil, err
	}
	if before, _ := c.fault(sim.OpList, "", false); before != nil {
		return nil, before
	}
	sbs, err := c.c.List(ctx)
	for i := range sbs {
		sbs[i] = c.fix(sbs[i])
	}
	return sbs, err
}

func (c *simCloud) Delete(ctx context.Context, name string) error {
	what := c.name + " delete " + name
	if err := c.w.proc.enter(what); err != nil {
		return err
	}
	before, after := c.fault(sim.OpDelete, "", false)
	if c.failDeletes > 0 {
		c.failDeletes--
		before = &cloud.Error{Provider: c.name, Op: sim.OpDelete, Kind: cloud.ErrTransient, Err: errors.New("injected by the scenario")}
	}
	if before != nil {
		return before
	}
	_, existed := c.exists(name)
	var err error
	if !c.w.breaks("cloud-leaks") {
		err = c.c.Delete(ctx, name)
	}
	if !existed && c.rng.IntN(2) == 0 {
		// Real clouds answer a delete of what is gone with a 404, which
		// the providers pass on as ErrNotFound (it counts as deleted).
		err = &cloud.Error{Provider: c.name, Op: sim.OpDelete, Kind: cloud.ErrNotFound, Err: fmt.Errorf("instance %s", name)}
	}
	if _, still := c.exists(name); existed && !still {
		c.gone(name, "deleted")
	}
	if cerr := c.w.proc.leave(what); cerr != nil {
		return cerr
	}
	if err != nil {
		return c.rename(err)
	}
	return after
}

// gone closes the ledger entry of an instance that no longer exists.
func (c *simCloud) gone(name, how string) {
	for i := len(c.ledger) - 1; i >= 0; i-- {
		if in := c.ledger[i]; in.name == name && in.gone.IsZero() {
			in.gone = c.w.clk.Now()
			break
		}
	}
	delete(c.degraded, name)
	c.w.note("  cloud: %s %s %s", c.name, how, name)
}

func (c *simCloud) SyncStatus(ctx context.Context, sb cloud.Standby) (cloud.SyncStatus, error) {
	if err := c.w.proc.call(); err != nil {
		return cloud.SyncStatus{}, err
	}
	if before, _ := c.fault(sim.OpSync, "", false); before != nil {
		return cloud.SyncStatus{}, before
	}
	st, err := c.c.SyncStatus(ctx, sb)
	if err != nil {
		return st, c.rename(err)
	}
	if until, ok := c.degraded[sb.Name]; ok && c.w.clk.Now().Before(until) {
		st.Optimistic = true
	}
	return st, nil
}

func (c *simCloud) ListOwned(ctx context.Context) ([]cloud.Resource, error) {
	if err := c.w.proc.call(); err != nil {
		return nil, err
	}
	if before, _ := c.fault(sim.OpList, "", false); before != nil {
		return nil, before
	}
	rs, err := c.c.ListOwned(ctx)
	for i := range rs {
		rs[i].Provider = c.name
	}
	return rs, err
}

func (c *simCloud) DeleteOwned(ctx context.Context, r cloud.Resource) error {
	c.w.stats.add("gc deletes", 1)
	return c.Delete(ctx, r.Name)
}

// rename makes the simulated cloud's errors read as this provider's.
func (c *simCloud) rename(err error) error {
	var ce *cloud.Error
	if errors.As(err, &ce) {
		cp := *ce
		cp.Provider = c.name
		return &cp
	}
	return err
}

// preempt takes an instance away as a spot reclaim or a person's console
// click would: no call of failoverd's made it happen.
func (c *simCloud) preempt(name string) {
	if _, ok := c.exists(name); !ok {
		return
	}
	c.c.Lose(name)
	c.gone(name, "reclaimed (preempted)")
}

// instances lists what the cloud runs now, in name order.
func (c *simCloud) instances() []cloud.Standby {
	sbs, err := c.c.List(context.Background())
	if err != nil {
		panic(fmt.Sprintf("simulated cloud without injected faults failed to list: %v", err))
	}
	for i := range sbs {
		sbs[i] = c.fix(sbs[i])
	}
	return sbs
}

// hoursIn is the standby-hours this cloud billed in the calendar month of t.
func (c *simCloud) hoursIn(t time.Time) float64 {
	t = t.UTC()
	monthStart := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	var total time.Duration
	for _, in := range c.ledger {
		from, to := in.created, t
		if !in.gone.IsZero() && in.gone.Before(t) {
			to = in.gone
		}
		if from.Before(monthStart) {
			from = monthStart
		}
		if to.After(from) {
			total += to.Sub(from)
		}
	}
	return total.Hours()
}
