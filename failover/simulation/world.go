package simulation

import (
	"cmp"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/sim"
	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/config"
	"github.com/failoverd/failoverd/failover/grant"
)

// world is one run: the engine of the current failoverd process and
// everything around it.
type world struct {
	seed uint64
	opts Options
	fx   *Fixtures
	ctx  context.Context

	rng      *rand.Rand // the schedule
	storeRng *rand.Rand // the store's faults
	clk      *clock
	start    time.Time
	cfg      *config.Config
	step     int

	durable *memStore // what survives a crash
	cache   *view
	decoded map[string]decoded
	store   failover.Store // durable, behind a planted defect if any
	clouds  []*simCloud    // in cloud.providers order
	proc    *proc
	eng     *failover.Engine // nil while failoverd is down
	procs   int
	keys    *keysFake
	pager   *pagerFake
	// pages are failoverd's own alerts, by incident; pageDue the
	// validators a reconcile has completed for since this process started
	// and Alertmanager last refused a post (see checkPages).
	pages   map[string][]page
	pageDue map[string]bool
	faults  faultRates

	sites  []*site
	homes  []*home // fleet order
	agents map[string]*agent
	// signed is the chain's memory: each key's last signature.
	signed  map[string]sighting
	allKeys []string
	mail    []mail
	outage  int // numbers alert instances
	planted int // numbers the orphans of earlier installations

	// What the approvers did, for the import invariant.
	approvals map[string]approvalRec // by SHA-256 of the canonical text
	accepted  map[string]bool        // nonces of accepted approvals
	grants    []grantRec
	sent      []failover.ApprovalRequest
	nonce     int

	maxGen map[string]int64
	// admittedAt: when each incident's standby was admitted (see trackAdmissions).
	admittedAt map[string]time.Time
	// lostIntent: incidents whose intent to create a standby was stored
	// while its answer was lost.
	lostIntent map[string]bool
	lastGC     time.Time
	lastState  map[string]string

	trace     []string
	notes     []string
	stats     Stats
	violation *Violation
	calm      bool // the calm end: no faults, people fix what is left
	// strict turns the known-bug allowances off, startAt sets the start
	// (the scenario tests).
	strict  bool
	startAt time.Time
	// loseIntentAnswer names an incident whose next intent write takes
	// effect and loses its answer (the scenario tests).
	loseIntentAnswer string
	// refusePosts: Alertmanager refuses that many next posts (the scenario tests).
	refusePosts int
}

// approvalRec is an approval an approver built, and whether it is one
// failoverd may accept (valid: right names, allowed signers, unexpired).
type approvalRec struct {
	text  string
	sigs  []string
	kind  string
	valid bool
	// mustRefuse: the request is refused whatever the chain says (no
	// fencing at all, a failback action on a migration, ...).
	mustRefuse bool
	nonce      string
}

// grantRec is a grant an approver's CLI holds, with what it needs to deliver.
type grantRec struct {
	g        grant.Signed
	approval string // SHA-256 of the approval it came with
}

// mail is one pending Alertmanager delivery.
type mail struct {
	site string
	what string
	obs  []failover.Observation
	hbs  []failover.Heartbeat
}

// stop unwinds a run once a violation is recorded.
type stop struct{}

// Run simulates one seed.
func Run(fx *Fixtures, seed uint64, opts Options) (res Result) {
	if opts.Steps == 0 {
		opts.Steps = DefaultSteps
	}
	w := &world{seed: seed, opts: opts, fx: fx, ctx: context.Background()}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stop); !ok {
				w.record("panic", "%v\n%s", r, debug.Stack())
			}
		}
		for _, k := range sortedKeys(w.stats.Counts) {
			if bug, ok := strings.CutPrefix(k, "known engine bug hit: "); ok {
				w.stats.add("seeds meeting known engine bug: "+bug, 1)
			}
		}
		res = Result{Seed: seed, Options: opts, Trace: w.trace, Violation: w.violation, Stats: w.stats}
		res.Stats.Seeds, res.Stats.Steps = 1, w.step
		if w.clk != nil {
			res.Stats.SimTime = w.clk.Now().Sub(w.startTime())
		}
		if w.violation != nil {
			res.Stats.Violations = 1
		}
	}()
	w.setup()
	for w.step = 1; w.step <= opts.Steps; w.step++ {
		w.runStep()
	}
	w.calmEnd()
	return
}

func (w *world) startTime() time.Time {
	if w.start.IsZero() {
		return w.clk.Now()
	}
	return w.start
}

// violate records the first violation and stops the run.
func (w *world) violate(invariant, format string, args ...any) {
	w.record(invariant, format, args...)
	panic(stop{})
}

func (w *world) record(invariant, format string, args ...any) {
	if w.violation == nil {
		w.violation = &Violation{Step: w.step, Invariant: invariant, Detail: fmt.Sprintf(format, args...)}
		w.flush()
		w.trace = append(w.trace, "VIOLATION: "+w.violation.String())
	}
}

func (w *world) breaks(what string) bool { return w.opts.Break == what }

// note adds a line to the current step's trace.
func (w *world) note(format string, args ...any) {
	w.notes = append(w.notes, fmt.Sprintf(format, args...))
}

func (w *world) countFault(kind string) {
	if w.stats.Faults == nil {
		w.stats.Faults = map[string]int{}
	}
	w.stats.Faults[kind]++
}

func (w *world) flush() {
	w.trace = append(w.trace, w.notes...)
	w.notes = w.notes[:0]
}

// The fleet: two sites, four validators on two chains.
type member struct {
	name, chain, network, site string
	keys                       int
}

var fleet = []member{
	{"eth-1", config.ChainEthereum, "hoodi", "basement", 2},
	{"eth-2", config.ChainEthereum, "hoodi", "basement", 1},
	{"eth-3", config.ChainEthereum, "mainnet", "garage", 2},
	{"bera-1", config.ChainBerachain, "bepolia", "basement", 1},
}

// pubkeyOf is a validator's i-th public key (0x + 96 hex, as BLS keys are).
func pubkeyOf(validator string, i int) string {
	sum := sha512.Sum384([]byte(fmt.Sprintf("%s key %d", validator, i)))
	return "0x" + hex.EncodeToString(sum[:])
}

// pick returns one of xs.
func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

// buildConfig is a seed's configuration: the same fleet, with caps, timings
// and providers drawn from the seed so that each meets different limits.
func buildConfig(r *rand.Rand, fx *Fixtures) *config.Config {
	cfg := config.Default()
	cfg.DataDir = "/var/lib/failoverd"
	cfg.Engine.ConfirmFor = pick(r, 0, time.Minute, 2*time.Minute)
	cfg.Engine.KeepWarm = pick(r, 5*time.Minute, 10*time.Minute, 30*time.Minute)
	cfg.Engine.PollInterval = 15 * time.Second
	cfg.Engine.ResyncInterval = 30 * time.Second
	cfg.Engine.MaxAttempts = pick(r, 3, 5, 8)
	// The engine's retry jitter comes from a random source the simulation
	// does not control. With a 1s base, a 2s ceiling and a clock that moves
	// in whole seconds, no jitter changes whether a retry is due or what
	// its reason says, so a seed replays exactly.
	cfg.Engine.BackoffBase, cfg.Engine.BackoffMax = time.Second, 2*time.Second
	cfg.Engine.Workers = 1
	cfg.Engine.CallTimeout = time.Minute
	cfg.Caps.MaxConcurrentStandbys = pick(r, 1, 2, 3)
	cfg.Caps.MonthlyStandbyHours = pick(r, 3.0, 12.0, 240.0)
	cfg.Cloud.Providers = pick(r, []string{"gcp", "aws"}, []string{"aws", "gcp"}, []string{"gcp"})
	cfg.Cloud.GC = config.GC{Interval: 10 * time.Minute, GracePeriod: 30 * time.Minute}
	cfg.Cloud.GCP.Project = "staking-standbys"
	cfg.Cloud.GCP.Zones = []string{"europe-west4-a", "europe-west4-b"}
	cfg.Cloud.GCP.APISourceRanges = []string{"198.51.100.7/32"}
	cfg.Cloud.AWS.Zones = []string{"eu-west-1a", "eu-west-1b"}
	cfg.Cloud.AWS.AMIs = map[string]string{"eu-west-1": "ami-0123456789abcdef0"}
	cfg.Cloud.AWS.APISourceRanges = []string{"198.51.100.7/32"}
	cfg.Heartbeat.SiteDownAfter = 5 * time.Minute
	cfg.Approval.AllowedSigners = fx.AllowedLines
	cfg.Approval.Threshold = pick(r, 1, 1, 2)
	cfg.Approval.ImportTimeout = 30 * time.Minute
	for _, m := range fleet {
		v := config.Validator{Name: m.name, Chain: m.chain, Network: m.network, Site: m.site}
		for i := range m.keys {
			v.Pubkeys = append(v.Pubkeys, pubkeyOf(m.name, i))
		}
		if m.name == "eth-3" && r.IntN(2) == 0 {
			v.Providers = []string{"aws"}
		}
		cfg.Fleet = append(cfg.Fleet, v)
	}
	return &cfg
}

func (w *world) setup() {
	w.rng = rand.New(rand.NewPCG(w.seed, streamOf("schedule")))
	w.cfg = buildConfig(w.rng, w.fx)
	if err := w.cfg.Validate(); err != nil {
		w.violate("setup", "the simulated configuration is not valid: %v", err)
	}
	// Most runs start mid-month; some just before a month ends, so that the
	// standby-hours budget starts over during the run.
	w.start = pick(w.rng, time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC), time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC),
		time.Date(2026, 3, 31, 21, 0, 0, 0, time.UTC))
	if !w.startAt.IsZero() {
		w.start = w.startAt
	}
	w.clk = &clock{t: w.start}
	w.durable = newMemStore()
	w.store = w.durable
	if w.opts.Break != "" {
		if _, ok := Breaks[w.opts.Break]; !ok {
			w.violate("setup", "unknown break %q", w.opts.Break)
		}
		w.store = &brokenStore{Store: w.durable, w: w}
	}
	for _, name := range w.providerNames() {
		c, err := newSimCloud(w, name, sim.Options{Now: w.clk.Now,
			BootTime: time.Duration(30+w.rng.IntN(90)) * time.Second,
			SyncTime: time.Duration(3+w.rng.IntN(30)) * time.Minute, Peers: 20}, w.seed)
		if err != nil {
			w.violate("setup", "simulated cloud: %v", err)
		}
		w.clouds = append(w.clouds, c)
	}
	w.keys = &keysFake{w: w, rng: rand.New(rand.NewPCG(w.seed, streamOf("agents")))}
	w.pager = &pagerFake{w: w, rng: rand.New(rand.NewPCG(w.seed, streamOf("pager")))}
	w.pages = map[string][]page{}
	w.pageDue = map[string]bool{}
	w.agents = map[string]*agent{}
	w.signed = map[string]sighting{}
	w.approvals = map[string]approvalRec{}
	w.accepted = map[string]bool{}
	w.maxGen = map[string]int64{}
	w.admittedAt = map[string]time.Time{}
	w.lostIntent = map[string]bool{}
	w.lastState = map[string]string{}
	sites := map[string]*site{}
	for _, v := range w.cfg.Fleet {
		s := sites[v.Site]
		if s == nil {
			s = &site{name: v.Site}
			sites[v.Site] = s
			w.sites = append(w.sites, s)
		}
		w.homes = append(w.homes, &home{validator: v.Name, site: s, up: true, keys: true, active: true})
		for _, pk := range v.Pubkeys {
			w.allKeys = append(w.allKeys, approval.NormalizePubkey(pk))
		}
	}
	w.storeRng = rand.New(rand.NewPCG(w.seed, streamOf("store")))
	w.trace = append(w.trace, fmt.Sprintf("seed %d: %d steps; caps %d standbys, %.0f standby-hours a month; providers %v; confirmFor %s, keepWarm %s, maxAttempts %d; threshold %d; start %s",
		w.seed, w.opts.Steps, w.cfg.Caps.MaxConcurrentStandbys, w.cfg.Caps.MonthlyStandbyHours, w.cfg.Cloud.Providers,
		w.cfg.Engine.ConfirmFor, w.cfg.Engine.KeepWarm, w.cfg.Engine.MaxAttempts, w.cfg.Approval.Threshold, w.start.Format(time.RFC3339)))
	w.startProcess()
	w.flush()
}

func (w *world) providerNames() []string {
	names := slices.Clone(w.cfg.Cloud.Providers)
	for _, v := range w.cfg.Fleet {
		for _, p := range v.Providers {
			if !slices.Contains(names, p) {
				names = append(names, p)
			}
		}
	}
	return names
}

func (w *world) cloudNamed(name string) *simCloud {
	for _, c := range w.clouds {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (w *world) homeOf(validator string) *home {
	for _, h := range w.homes {
		if h.validator == validator {
			return h
		}
	}
	return nil
}

func (w *world) member(validator string) (config.Validator, bool) { return w.cfg.Validator(validator) }

func (w *world) networkOf(validator string) string {
	v, _ := w.member(validator)
	return v.Network
}

func (w *world) networkOfStandby(sb cloud.Standby) string {
	if a := w.agents[sb.Provider+"/"+sb.Name]; a != nil && a.validator != "" {
		return w.networkOf(a.validator)
	}
	for _, v := range w.cfg.Fleet {
		if strings.HasPrefix(sb.Name, cloud.NameFor(v.Name)+"-") {
			return v.Network
		}
	}
	return ""
}

func (w *world) validatorOfKeys(keys []string) string {
	for _, v := range w.cfg.Fleet {
		for _, pk := range v.Pubkeys {
			if len(keys) > 0 && approval.NormalizePubkey(pk) == approval.NormalizePubkey(keys[0]) {
				return v.Name
			}
		}
	}
	return ""
}

// startProcess starts a failoverd process on the durable store: a new
// engine that knows nothing but what is stored.
func (w *world) startProcess() {
	w.procs++
	w.proc = &proc{id: w.procs}
	fs := &faultStore{w: w, inner: w.store, rng: w.storeRng}
	provs := make([]cloud.Provider, len(w.clouds))
	for i, c := range w.clouds {
		provs[i] = c
	}
	clear(w.pageDue)
	eng, err := failover.New(failover.Options{Config: w.cfg, Store: fs, Providers: provs, Now: w.clk.Now, Notifier: w.pager,
		Migration: failover.MigrationOptions{
			Signers: w.fx.Allowed, Threshold: w.cfg.Approval.Threshold, SilentEpochs: w.cfg.Approval.SilentEpochs,
			GenesisRoots: map[string]string{"hoodi": roots["hoodi"], "mainnet": roots["mainnet"]},
			Keys:         w.keys, Home: homeFencer{w}, Grants: w.fx.CA, Audit: auditFake{},
			CertSHA256: func(inc failover.Incident) (string, error) {
				if inc.Standby == nil {
					return "", errors.New("no standby")
				}
				return certFor(inc.Standby.Provider, inc.Standby.Name), nil
			},
			ImportTimeout: w.cfg.Approval.ImportTimeout,
		}})
	if err != nil {
		w.violate("setup", "failover.New: %v", err)
	}
	w.eng = eng
	w.note("  failoverd process %d starts", w.procs)
}

// up reports whether a failoverd process is running.
func (w *world) up() bool { return w.eng != nil && !w.proc.dead }

// engineErr looks at an error an engine call returned: an illegal
// transition is a bug whatever the faults.
func (w *world) engineErr(what string, err error) {
	if isTransitionError(err) {
		w.violate("engine", "%s tried an illegal transition: %v", what, err)
	}
}

func isTransitionError(err error) bool {
	var te *failover.TransitionError
	return errors.As(err, &te)
}

// action is one kind of step.
type action struct {
	name   string
	weight int
	do     func() string
}

func (w *world) runStep() {
	w.touch()
	acts := w.actions()
	total := 0
	for _, a := range acts {
		total += a.weight
	}
	n := w.rng.IntN(total)
	var a action
	for _, a = range acts {
		if n < a.weight {
			break
		}
		n -= a.weight
	}
	w.stats.add("step: "+a.name, 1)
	line := fmt.Sprintf("#%d %s %s", w.step, w.clk.Now().Format("01-02 15:04:05"), a.name)
	w.trace = append(w.trace, line)
	if out := a.do(); out != "" {
		w.trace[len(w.trace)-1] += ": " + out
	}
	w.afterStep()
}

// afterStep is what the world does between steps: a crashed process is
// noticed, gated validator clients try to start, signers sign, Prometheus
// evaluates, and the invariants are checked.
func (w *world) afterStep() {
	if w.eng != nil && w.proc.dead {
		w.note("  failoverd process %d crashed (%s)", w.proc.id, w.proc.diedAt)
		w.countFault("crash")
		w.eng = nil
		if w.calm || w.rng.IntN(2) == 0 {
			// A supervisor (systemd, the kubelet) restarts it at once.
			w.startProcess()
		}
	}
	for _, h := range w.homes {
		w.tryStartHome(h)
	}
	for _, key := range sortedKeys(w.agents) {
		if a := w.agents[key]; a != nil {
			w.tryStartStandby(a)
		}
	}
	w.touch()
	w.evaluateAlerts()
	w.trackAdmissions()
	w.checkAll()
	w.diffIncidents()
	w.flush()
}

// touch makes every running signer sign now; a standby whose VM is gone
// signs no more.
func (w *world) touch() {
	now := w.clk.Now()
	for _, h := range w.homes {
		if h.active {
			for _, pk := range w.keysOf(h.validator) {
				w.signed[pk] = sighting{at: now, by: h.ref()}
			}
		}
	}
	for _, key := range sortedKeys(w.agents) {
		a := w.agents[key]
		if w.agentFor(a.provider, a.name) == nil {
			continue
		}
		if a.active {
			for _, pk := range a.loaded {
				w.signed[approval.NormalizePubkey(pk)] = sighting{at: now, by: a.ref()}
			}
		}
	}
}

func (w *world) keysOf(validator string) []string {
	v, _ := w.member(validator)
	out := make([]string, len(v.Pubkeys))
	for i, pk := range v.Pubkeys {
		out[i] = approval.NormalizePubkey(pk)
	}
	return out
}

// gate is failoverd gate: a validator client starts only when failoverd
// answers that the caller owns the signing right; no answer keeps it
// stopped (it fails closed).
func (w *world) gate(validator, as string) (bool, string) {
	if !w.up() {
		return false, "failoverd does not answer"
	}
	o, err := w.eng.Owner(w.ctx, validator)
	if err != nil {
		return false, err.Error()
	}
	return o.Current() == as, o.Current()
}

// tryStartHome is the kubelet restarting the home validator client, behind
// its gate init container.
func (w *world) tryStartHome(h *home) {
	if h.active || !h.up || !h.keys || h.scaled || h.site.dark {
		return
	}
	if h.site.cut {
		return // the init container cannot reach failoverd either
	}
	ok, owner := w.gate(h.validator, failover.OwnerHome)
	if !ok {
		return
	}
	if id := w.migratingWhileHome(h.validator); w.knownBug("gate-home-while-migrating", id != "") {
		// The simulation keeps this home stopped, so that the run goes on
		// looking for other bugs; TestEngineBugGateHomeWhileMigrating lets
		// it start and shows the second signer.
		w.note("  home %s would start now (its gate says home while %s is migrating); held back", h.validator, id)
		return
	}
	w.startSigner(h.ref(), w.keysOf(h.validator), fmt.Sprintf("home %s starts (its gate says %s)", h.validator, owner))
	h.active = true
}

// tryStartStandby is the standby's validator client unit: the agent has
// opened its control file; its ExecStartPre asks failoverd's gate.
func (w *world) tryStartStandby(a *agent) {
	if a.active || !a.gateOpen || len(a.loaded) == 0 || w.agentFor(a.provider, a.name) == nil {
		return
	}
	ok, owner := w.gate(a.validator, a.name)
	if !ok {
		return
	}
	w.startSigner(a.ref(), a.loaded, fmt.Sprintf("standby %s starts signing for %s (its gate says %s)", a.name, a.validator, owner))
	a.active = true
}

func (w *world) stopHome(h *home, why string) {
	if h.active {
		w.note("  home %s stops signing: %s", h.validator, why)
	}
	h.active = false
}

// evaluateAlerts is each site's Prometheus: a validator whose home client
// does not sign fires; one that signs again resolves. Alertmanager queues
// the notifications; they reach failoverd only while the site is reachable.
func (w *world) evaluateAlerts() {
	for _, h := range w.homes {
		down := !h.active
		switch {
		case down && !h.firing:
			w.outage++
			// Prometheus timestamps carry fractions of a second.
			h.firing, h.firingSince = true, w.clk.Now().Add(time.Duration(w.rng.IntN(1000))*time.Millisecond)
			w.enqueueAlert(h, failover.AlertFiring)
		case !down && h.firing:
			h.firing = false
			w.enqueueAlert(h, failover.AlertResolved)
		}
	}
}

func fingerprint(validator string) string {
	sum := sha512.Sum512([]byte("alertname=ValidatorDown,failover=true,validator=" + validator))
	return hex.EncodeToString(sum[:8])
}

func (w *world) enqueueAlert(h *home, status failover.AlertStatus) {
	o := failover.Observation{Validator: h.validator, Site: h.site.name, AlertName: "ValidatorDown",
		Fingerprint: fingerprint(h.validator), Status: status, StartsAt: h.firingSince}
	if status == failover.AlertResolved {
		o.EndsAt = w.clk.Now()
		if w.rng.IntN(2) == 0 {
			// Alertmanager sometimes sends a resolve's startsAt without its fraction.
			o.StartsAt = o.StartsAt.Truncate(time.Second)
		}
	}
	m := mail{site: h.site.name, what: fmt.Sprintf("%s %s", h.validator, status), obs: []failover.Observation{o}}
	w.mail = append(w.mail, m)
	if w.rng.IntN(2) == 0 {
		w.mail = append(w.mail, m) // the HA peer sends it too
	}
}

// view is the durable state as the simulation reads it (no fault, no crash
// point), decoded once per store generation: the checks read it many times
// a step, and decoding is most of a run's cost.
type view struct {
	gen        int64
	incidents  []failover.Incident
	open       []failover.Incident
	validators map[string]failover.ValidatorRecord
	names      []string // validators in key order
}

func (w *world) view() *view {
	gen := w.durable.generation()
	if w.cache != nil && w.cache.gen == gen {
		return w.cache
	}
	if w.decoded == nil {
		w.decoded = map[string]decoded{}
	}
	var incs []failover.Incident
	for _, r := range w.durable.rawList("incident") {
		d, ok := w.decoded["incident/"+r.key]
		if !ok || d.version != r.version {
			var inc failover.Incident
			if err := json.Unmarshal(r.body, &inc); err != nil {
				panic(err)
			}
			inc.Version = r.version
			d = decoded{version: r.version, v: inc}
			w.decoded["incident/"+r.key] = d
		}
		incs = append(incs, d.v.(failover.Incident))
	}
	slices.SortStableFunc(incs, func(a, b failover.Incident) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	v := &view{gen: gen, incidents: incs, validators: map[string]failover.ValidatorRecord{}}
	for _, r := range w.durable.rawList("validator") {
		d, ok := w.decoded["validator/"+r.key]
		if !ok || d.version != r.version {
			var rec failover.ValidatorRecord
			if err := json.Unmarshal(r.body, &rec); err != nil {
				panic(err)
			}
			rec.Version = r.version
			d = decoded{version: r.version, v: rec}
			w.decoded["validator/"+r.key] = d
		}
		rec := d.v.(failover.ValidatorRecord)
		v.validators[rec.Name] = rec
		v.names = append(v.names, rec.Name)
	}
	for _, inc := range incs {
		if inc.State.Open() {
			v.open = append(v.open, inc)
		}
	}
	w.cache = v
	return v
}

// decoded is a stored record the simulation decoded, at its version.
type decoded struct {
	version string
	v       any
}

// Callers only read what these return: it is shared until the next write.
func (w *world) incidents() []failover.Incident     { return w.view().incidents }
func (w *world) openIncidents() []failover.Incident { return w.view().open }

func (w *world) validatorRec(name string) failover.ValidatorRecord { return w.view().validators[name] }

func (w *world) incident(id string) (failover.Incident, bool) {
	for _, inc := range w.view().incidents {
		if inc.ID == id {
			return inc, true
		}
	}
	return failover.Incident{}, false
}

// diffIncidents writes state changes into the trace.
func (w *world) diffIncidents() {
	for _, inc := range w.incidents() {
		st := string(inc.State)
		if prev, ok := w.lastState[inc.ID]; !ok || prev != st {
			from := prev
			if !ok {
				from = "new"
				w.stats.add("incidents opened", 1)
			}
			w.note("  %s: %s -> %s: %s", inc.ID, from, st, clip(inc.Reason, 200))
			w.lastState[inc.ID] = st
			w.stats.add("reached "+st, 1)
			if st == string(failover.StateMigrated) {
				w.stats.add("migrations completed", 1)
				w.stats.add("migrations completed: "+inc.Chain, 1)
			}
			if st == string(failover.StateClosed) && inc.KeysMoved() {
				w.stats.add("failbacks completed", 1)
			}
		}
	}
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func decodeGrant(s grant.Signed) (grant.Grant, error) {
	var g grant.Grant
	err := json.Unmarshal(s.Payload, &g)
	return g, err
}
