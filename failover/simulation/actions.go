package simulation

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/grant"
)

// actions are the steps the schedule may take now, with their weights.
func (w *world) actions() []action {
	open := w.openIncidents()
	var ready, moved, migrating, withStandby, notMoved []failover.Incident
	for _, inc := range open {
		switch {
		case inc.State == failover.StateReady:
			ready = append(ready, inc)
		case inc.State == failover.StateMigrated || inc.State == failover.StateFailed && inc.KeysMoved():
			moved = append(moved, inc)
		case inc.State == failover.StateMigrating:
			migrating = append(migrating, inc)
		}
		if inc.Standby != nil && inc.Standby.Name != "" {
			withStandby = append(withStandby, inc)
		}
		if !inc.KeysMoved() {
			notMoved = append(notMoved, inc)
		}
	}
	var upHomes, downHomes, restorable []*home
	for _, h := range w.homes {
		switch {
		case h.up:
			upHomes = append(upHomes, h)
		case !h.site.dark:
			downHomes = append(downHomes, h)
		}
		if w.mayRestore(h) {
			restorable = append(restorable, h)
		}
	}
	var fine, out []*site
	for _, s := range w.sites {
		if s.dark || s.cut {
			out = append(out, s)
		} else {
			fine = append(fine, s)
		}
	}
	instances := w.allInstances()
	up := w.up()
	on := func(cond bool, n int) int {
		if cond {
			return n
		}
		return 0
	}
	return []action{
		{"a validator goes down", on(len(upHomes) > 0, 3), func() string { return w.doValidatorDown(pick(w.rng, upHomes...)) }},
		{"a validator comes back on its own", on(len(downHomes) > 0, 3), func() string { return w.doValidatorBack(pick(w.rng, downHomes...)) }},
		{"a site loses power", on(len(fine) > 0, 1), func() string { return w.doPowerCut(pick(w.rng, fine...)) }},
		{"a site loses its uplink", on(len(fine) > 0, 1), func() string { return w.doUplinkCut(pick(w.rng, fine...)) }},
		{"a site is back", on(len(out) > 0, 3), func() string { return w.doSiteBack(pick(w.rng, out...)) }},
		{"time passes", 8, w.doPassTime},
		{"alertmanager delivers", on(len(w.mail) > 0, 10), w.doDeliver},
		{"alertmanager repeats", 1, w.doRepeat},
		{"a delivery is lost", on(len(w.mail) > 0, 1), w.doDrop},
		{"resync", on(up, 6), func() string { w.resync(); return "" }},
		{"reconcile one validator", on(up, 3), w.doReconcileOne},
		{"garbage collection", on(up, 1), func() string { return w.runGC() }},
		{"a crash is armed", on(up && w.proc.countdown == 0, 2), w.doArmCrash},
		{"failoverd is killed", on(up, 1), w.doKill},
		{"failoverd restarts", on(!up, 6) + on(up, 1), w.doRestart},
		{"the weather changes", 2, w.doWeather},
		{"approve a migration", on(len(ready) > 0, 6), func() string { return w.doApproveMigration(pick(w.rng, ready...)) }},
		{"approve a bad migration", on(len(withStandby) > 0, 3), func() string { return w.doBadMigration(pick(w.rng, withStandby...)) }},
		{"a CLI sends its last approval again", on(len(w.sent) > 0, 2), w.doResend},
		{"approve a failback", on(len(moved) > 0, 6), func() string { return w.doApproveFailback(pick(w.rng, moved...)) }},
		{"approve a bad failback", on(len(moved) > 0, 1), func() string { return w.doBadFailback(pick(w.rng, moved...)) }},
		{"a CLI delivers keys with the plan's grant", on(len(migrating) > 0, 3), func() string { return w.doPlanGrant(pick(w.rng, migrating...)) }},
		{"a CLI delivers keys with an old grant", on(len(w.grants) > 0, 1), w.doOldGrant},
		{"somebody sends keys without a grant", on(len(instances) > 0, 1), func() string { return w.doRogueKeys(pick(w.rng, instances...)) }},
		{"a person tears an incident down", on(len(open) > 0, 1), func() string { return w.doTeardown(pick(w.rng, open...)) }},
		{"a person restores home", on(len(restorable) > 0, 3), func() string { return w.doRestoreHome(pick(w.rng, restorable...)) }},
		{"the cloud reclaims a standby", on(len(instances) > 0, 1), func() string { return w.doPreempt(pick(w.rng, instances...)) }},
		{"a zone's stock changes", 1, w.doStockout},
		{"a standby's beacon node goes optimistic", on(len(instances) > 0, 1), func() string { return w.doDegrade(pick(w.rng, instances...)) }},
		{"an earlier installation's standby turns up", 1, w.doPlantOrphan},
	}
}

// placed is a standby as the world sees it: its cloud and its name.
type placed struct {
	c    *simCloud
	name string
}

func (w *world) allInstances() []placed {
	var out []placed
	for _, c := range w.clouds {
		for _, sb := range c.instances() {
			out = append(out, placed{c, sb.Name})
		}
	}
	return out
}

func (w *world) doValidatorDown(h *home) string {
	h.up = false
	w.stopHome(h, "its node went down")
	return h.validator + " (" + h.site.name + ")"
}

func (w *world) doValidatorBack(h *home) string {
	h.up = true
	return h.validator + " (its validator client starts only if its gate opens)"
}

func (w *world) doPowerCut(s *site) string {
	s.dark = true
	for _, h := range w.homes {
		if h.site == s {
			h.up = false
			w.stopHome(h, "the power is out at "+s.name)
		}
	}
	return s.name + " goes dark: no alert, no heartbeat"
}

func (w *world) doUplinkCut(s *site) string {
	s.cut = true
	return s.name + " is cut off: its validators run on, nobody outside hears of them"
}

func (w *world) doSiteBack(s *site) string {
	switch {
	case s.dark:
		s.dark = false
		for _, h := range w.homes {
			if h.site == s {
				h.up = true
			}
		}
		return s.name + ": power is back"
	default:
		s.cut = false
		return s.name + ": uplink is back"
	}
}

// doPassTime moves the clock as far as the schedule says. Meanwhile the
// reachable sites' Watchdog heartbeats keep arriving, and failoverd's own
// timers fire: the garbage collector at its interval, then a resync.
func (w *world) doPassTime() string {
	d := pick(w.rng, time.Second, 2*time.Second, 5*time.Second, 10*time.Second, 15*time.Second, 30*time.Second,
		time.Minute, time.Minute, 5*time.Minute, 5*time.Minute, 10*time.Minute, 20*time.Minute, 20*time.Minute, time.Hour, 4*time.Hour)
	w.passTime(d)
	return "+" + d.String()
}

func (w *world) passTime(d time.Duration) {
	w.clk.advance(d)
	w.heartbeats()
	if !w.up() {
		return
	}
	if w.clk.Now().Sub(w.lastGC) >= w.cfg.Cloud.GC.Interval {
		w.note("  %s", w.runGC())
	}
	if w.up() {
		w.resync()
	}
}

// heartbeats is the Watchdog of every reachable site arriving now, from
// both Alertmanager peers; what failoverd does not take stays queued.
func (w *world) heartbeats() {
	for _, s := range w.sites {
		if !s.reachable() {
			continue
		}
		m := mail{site: s.name, what: "Watchdog " + s.name, hbs: []failover.Heartbeat{{Site: s.name, At: w.clk.Now()}}}
		for range 1 + w.rng.IntN(2) {
			if !w.up() {
				w.mail = append(w.mail, m)
				continue
			}
			if _, err := w.eng.Observe(w.ctx, nil, m.hbs); err != nil {
				w.engineErr("observe heartbeat", err)
				w.mail = append(w.mail, m)
			}
		}
	}
}

func (w *world) doDeliver() string {
	var can []int
	for i, m := range w.mail {
		if s := w.siteNamed(m.site); s == nil || s.reachable() {
			can = append(can, i)
		}
	}
	if len(can) == 0 {
		return "nothing can leave its site"
	}
	i := pick(w.rng, can...)
	return w.deliverMail(i)
}

func (w *world) deliverMail(i int) string {
	m := w.mail[i]
	if !w.up() {
		return m.what + ": failoverd does not answer; Alertmanager retries later"
	}
	res, err := w.eng.Observe(w.ctx, m.obs, m.hbs)
	if err != nil {
		w.engineErr("observe", err)
		return fmt.Sprintf("%s: 503 (%v); Alertmanager retries later", m.what, err)
	}
	w.mail = slices.Delete(w.mail, i, i+1)
	return fmt.Sprintf("%s: new %d, duplicates %d, heartbeats %d", m.what, res.New, res.Duplicates, res.Heartbeats)
}

func (w *world) siteNamed(name string) *site {
	for _, s := range w.sites {
		if s.name == name {
			return s
		}
	}
	return nil
}

// doRepeat is Alertmanager's repeat_interval: every alert still firing is
// sent again (an alert about a validator failoverd does not know, too).
func (w *world) doRepeat() string {
	n := 0
	for _, h := range w.homes {
		if h.firing {
			m := mail{site: h.site.name, what: h.validator + " firing (repeat)", obs: []failover.Observation{{Validator: h.validator,
				Site: h.site.name, AlertName: "ValidatorDown", Fingerprint: fingerprint(h.validator), Status: failover.AlertFiring, StartsAt: h.firingSince}}}
			w.mail = append(w.mail, m)
			n++
		}
	}
	if w.rng.IntN(4) == 0 {
		w.mail = append(w.mail, mail{site: "basement", what: "eth-retired firing", obs: []failover.Observation{{Validator: "eth-retired",
			Site: "basement", AlertName: "ValidatorDown", Fingerprint: fingerprint("eth-retired"), Status: failover.AlertFiring,
			StartsAt: w.clk.Now().Add(-time.Hour)}}})
	}
	return fmt.Sprintf("%d alerts", n)
}

func (w *world) doDrop() string {
	i := w.rng.IntN(len(w.mail))
	m := w.mail[i]
	w.mail = slices.Delete(w.mail, i, i+1)
	w.countFault("alertmanager delivery lost")
	return m.what
}

// resync is what the engine's loop does every resyncInterval: look at the
// sites' heartbeats, then reconcile every validator it knows.
func (w *world) resync() {
	if err := w.eng.CheckSites(w.ctx); err != nil {
		w.engineErr("check sites", err)
		w.note("  site check: %v", err)
	}
	for _, name := range slices.Clone(w.view().names) {
		if !w.up() {
			return
		}
		w.reconcile(name)
	}
}

func (w *world) reconcile(name string) {
	refused := w.stats.Faults["alertmanager refuses failoverd's alert"]
	_, err := w.eng.Reconcile(w.ctx, name)
	// A reconcile that completes posts the page of a failed incident
	// (checkPages); one that fails may have stopped before, and a post
	// Alertmanager refused is posted again later.
	w.pageDue[name] = err == nil && !w.proc.dead && w.stats.Faults["alertmanager refuses failoverd's alert"] == refused
	if err != nil {
		w.engineErr("reconcile "+name, err)
		w.note("  reconcile %s: %s", name, clip(err.Error(), 160))
	}
}

func (w *world) doReconcileOne() string {
	v := pick(w.rng, w.cfg.Fleet...)
	w.reconcile(v.Name)
	return v.Name
}

// runGC runs the garbage collector and holds it to invariant 3: after a
// collection that met no fault, no resource that no open incident claims
// and that is past the grace period is left.
func (w *world) runGC() string {
	w.lastGC = w.clk.Now()
	before := w.stats.FaultsTotal()
	grace := w.cfg.Cloud.GC.GracePeriod
	var stale []placed
	for _, p := range w.allInstances() {
		sb, _ := p.c.exists(p.name)
		if w.claimant(p.c.name, p.name) == "" && !sb.CreatedAt.Add(grace).After(w.clk.Now()) {
			stale = append(stale, p)
			if !planted(p.name) {
				w.stats.add("orphans failoverd left for the garbage collector", 1)
			}
		}
	}
	// The collector visits providers in map order: its notes are sorted so
	// that the trace does not depend on that order.
	mark := len(w.notes)
	res, err := w.eng.CollectGarbage(w.ctx)
	slices.Sort(w.notes[mark:])
	if err != nil {
		w.engineErr("garbage collection", err)
		return "garbage collection: " + err.Error()
	}
	if w.up() && w.stats.FaultsTotal() == before {
		for _, p := range stale {
			if _, still := p.c.exists(p.name); still && w.claimant(p.c.name, p.name) == "" {
				w.violate("cloud", "%s/%s belongs to no open incident, is older than the grace period (%s) and survived a garbage collection that met no fault",
					p.c.name, p.name, grace)
			}
		}
	}
	return fmt.Sprintf("garbage collection: %d orphans, %d deleted, %d young", len(res.Orphans), len(res.Deleted), res.Young)
}

func (w *world) doArmCrash() string {
	w.proc.countdown = 1 + w.rng.IntN(6)
	w.proc.afterEffect = w.rng.IntN(2) == 0
	when := "before"
	if w.proc.afterEffect {
		w.stats.add("crashes armed after an effect", 1)
		when = "after"
	}
	return fmt.Sprintf("failoverd dies %s its %d-th effectful call from now", when, w.proc.countdown)
}

func (w *world) doKill() string {
	w.proc.die("between steps")
	return ""
}

func (w *world) doRestart() string {
	if w.eng != nil {
		// A planned restart (an upgrade, a node drain): the old process ends.
		w.proc.dead = true
		w.eng = nil
		w.startProcess()
		return "a planned restart"
	}
	w.startProcess()
	return "after a crash"
}

func (w *world) doWeather() string {
	switch w.rng.IntN(6) {
	case 0, 1:
		w.faults = faultRates{}
		return "calm: no faults"
	case 2:
		w.faults = faultRates{storeWrite: 0.03, storeLostAck: 0.02, storeRead: 0.02, cloud: 0.05, agent: 0.05}
	case 3:
		w.faults = faultRates{storeWrite: 0.15, storeLostAck: 0.1, storeRead: 0.1}
	case 4:
		w.faults = faultRates{cloud: 0.35, agent: 0.3}
	default:
		w.faults = faultRates{storeWrite: 0.1, storeLostAck: 0.05, storeRead: 0.05, cloud: 0.25, agent: 0.2}
	}
	return w.faults.String()
}

// mayRestore says whether a person following the runbooks would bring the
// home validator client back: it lost its keys or was scaled down, home owns
// the signing right, and no key move of the validator is open.
func (w *world) mayRestore(h *home) bool {
	if (h.keys && !h.scaled) || !h.up || !h.site.reachable() {
		return false
	}
	v := w.validatorRec(h.validator)
	if !v.Ownership.AtHome() {
		return false
	}
	if v.OpenIncident != "" {
		inc, ok := w.incident(v.OpenIncident)
		if ok && (inc.KeysMoved() || inc.State == failover.StateMigrating) {
			return false
		}
	}
	return true
}

func (w *world) doRestoreHome(h *home) string {
	h.keys, h.scaled = true, false
	return h.validator + ": keys imported again, scaled back up (its gate decides)"
}

func (w *world) doPreempt(p placed) string {
	p.c.preempt(p.name)
	return p.c.name + "/" + p.name
}

func (w *world) doStockout() string {
	c := pick(w.rng, w.clouds...)
	zone := pick(w.rng, w.cfg.ZonesFor(c.name)...)
	on := w.rng.IntN(2) == 0
	c.c.SetNoCapacity(zone, on)
	if on {
		w.countFault("cloud zone stockout")
		return c.name + "/" + zone + " is out of stock"
	}
	return c.name + "/" + zone + " has stock"
}

// doPlantOrphan is a node failoverd made and no longer knows: its data
// directory was restored from an old backup, or another installation used
// the same cloud account. Only the garbage collector can find it.
func (w *world) doPlantOrphan() string {
	c := pick(w.rng, w.clouds...)
	w.planted++
	name := fmt.Sprintf("fo-old-%d", w.planted)
	c.c.AddUnowned(name, pick(w.rng, w.cfg.ZonesFor(c.name)...), map[string]string{
		cloud.LabelManagedBy: cloud.ManagedByValue, cloud.LabelIncident: fmt.Sprintf("old-%d", w.planted),
		cloud.LabelValidator: "eth-1", cloud.LabelSite: "basement"})
	w.countFault("cloud orphan planted")
	return c.name + "/" + name
}

// planted reports whether a standby is one doPlantOrphan made: not
// failoverd's doing, so not on its budget or under its cap.
func planted(name string) bool { return strings.HasPrefix(name, "fo-old-") }

func (w *world) doDegrade(p placed) string {
	d := time.Duration(1+w.rng.IntN(20)) * time.Minute
	p.c.degraded[p.name] = w.clk.Now().Add(d)
	w.countFault("standby optimistic")
	return fmt.Sprintf("%s/%s for %s", p.c.name, p.name, d)
}

func (w *world) doTeardown(inc failover.Incident) string {
	if !w.up() {
		return inc.ID + ": failoverd does not answer"
	}
	got, err := w.eng.Teardown(w.ctx, inc.ID, "ops")
	if err != nil {
		if w.knownBug("teardown-recovering", inc.State == failover.StateRecovering && isTransitionError(err)) {
			return fmt.Sprintf("%s (%s): %s", inc.ID, inc.State, clip(err.Error(), 160))
		}
		w.engineErr("teardown", err)
		return fmt.Sprintf("%s (%s): %s", inc.ID, inc.State, clip(err.Error(), 160))
	}
	return fmt.Sprintf("%s: %s", inc.ID, got.State)
}

// --- approvals ---

const approverAddr = "192.0.2.10:40000"

func (w *world) newApproval(inc failover.Incident, p failover.Plan, action string, keys []string) approval.Approval {
	w.nonce++
	now := w.clk.Now().UTC().Truncate(time.Second)
	return approval.Approval{Incident: inc.ID, Standby: p.Standby, StandbyCertSHA256: p.StandbyCertSHA256,
		Pubkeys: slices.Clone(keys), Action: action, Issued: now, Expires: now.Add(approval.DefaultValidity),
		Nonce: fmt.Sprintf("%016x%016x", w.seed, w.nonce), Approver: "alice@example"}
}

// signers are who sign: enough for the threshold.
func (w *world) signers() []string {
	if w.cfg.Approval.Threshold >= 2 {
		return pick(w.rng, []string{"alice", "bob"}, []string{"alice", "carol"}, []string{"alice", "bob", "carol"})
	}
	return pick(w.rng, []string{"alice"}, []string{"alice"}, []string{"alice", "bob"})
}

// request signs a and records what kind of approval it is: valid (failoverd
// may accept it) or not, and whether the request must be refused whatever
// the chain says.
func (w *world) request(incident string, a approval.Approval, signed *approval.Approval, f failover.Fencing, kind string, valid bool, by ...string) (failover.ApprovalRequest, approvalRec) {
	if signed == nil {
		signed = &a
	}
	canon, err := a.Canonical()
	if err != nil {
		panic(fmt.Sprintf("approval %s: %v", kind, err))
	}
	rec := approvalRec{text: string(canon), kind: kind, valid: valid, nonce: a.Nonce}
	for _, who := range by {
		sig, err := approval.Sign(*signed, w.fx.signers[who])
		if err != nil {
			panic(err)
		}
		rec.sigs = append(rec.sigs, string(sig))
	}
	sum := sha256.Sum256(canon)
	key := hex.EncodeToString(sum[:])
	if old, ok := w.approvals[key]; ok {
		rec = old // the same bytes as before: a replay
	} else {
		w.approvals[key] = rec
	}
	return failover.ApprovalRequest{Incident: incident, Approval: string(canon), Signatures: rec.sigs, Fencing: f, From: approverAddr}, rec
}

// submit sends an approval and holds an acceptance to invariant 2: only a
// valid approval is accepted, and only once.
func (w *world) submit(what string, req failover.ApprovalRequest, rec approvalRec, mustRefuse bool) (failover.ApprovalReply, bool, string) {
	if !w.up() {
		return failover.ApprovalReply{}, false, what + ": failoverd does not answer"
	}
	w.sent = append(w.sent, req)
	reply, err := w.eng.Approve(w.ctx, req)
	if err != nil {
		w.engineErr("approve", err)
		code := refusalCode(err)
		w.stats.add("approvals refused: "+code, 1)
		return reply, false, fmt.Sprintf("%s: refused (%s): %s", what, code, clip(err.Error(), 200))
	}
	if !rec.valid || mustRefuse {
		w.violate("approval", "%s was accepted (%s approval)", what, rec.kind)
	}
	if w.accepted[rec.nonce] {
		w.violate("approval", "%s was accepted, but its nonce %s was accepted before", what, rec.nonce)
	}
	w.accepted[rec.nonce] = true
	w.stats.add("approvals accepted", 1)
	g, err := grant.Verify(reply.Grant, w.fx.CA.CAPEM(), w.clk.Now())
	if err != nil {
		w.violate("approval", "%s was accepted with a grant that does not verify: %v", what, err)
	}
	sum := sha256.Sum256([]byte(req.Approval))
	w.grants = append(w.grants, grantRec{g: reply.Grant, approval: hex.EncodeToString(sum[:])})
	return reply, true, fmt.Sprintf("%s: accepted, generation %d, incident %s", what, g.Generation, reply.Incident.State)
}

func refusalCode(err error) string {
	var re *failover.RefusedError
	if errors.As(err, &re) {
		return re.Code
	}
	var ae *approval.RefusalError
	if errors.As(err, &ae) {
		return string(ae.Code)
	}
	return "error"
}

// plan is what the approver's CLI reads first.
func (w *world) plan(inc failover.Incident) (failover.Plan, string) {
	if !w.up() {
		return failover.Plan{}, "failoverd does not answer"
	}
	p, err := w.eng.Plan(w.ctx, inc.ID)
	if err != nil {
		w.engineErr("plan", err)
		return failover.Plan{}, "plan: " + clip(err.Error(), 160)
	}
	return p, ""
}

// fence is what an approver can honestly do about home, with its effect: a
// Keymanager DELETE stops home signing at once. A home that is only cut off
// looks powered off from outside, so that confirmation can be a mistake;
// the chain's silence is what catches it.
func (w *world) fence(h *home) (failover.Fencing, string) {
	v, _ := w.member(h.validator)
	switch {
	case h.site.reachable() && h.up && h.keys && v.Chain != "berachain": // beacond has no Keymanager
		statuses := map[string]string{}
		for _, pk := range w.keysOf(h.validator) {
			statuses[pk] = "not_active"
			if h.active {
				statuses[pk] = "deleted"
			}
		}
		h.keys = false
		w.stopHome(h, "its keys are deleted through its Keymanager")
		return failover.Fencing{Method: failover.FenceKeymanager, KeyStatuses: statuses}, "keymanager"
	case h.site.reachable() && w.rng.IntN(2) == 0:
		return failover.Fencing{Method: failover.FenceScale}, "scale-to-zero"
	default:
		return failover.Fencing{Method: failover.FencePoweredOff, ConfirmedBy: "alice@example"}, "powered-off"
	}
}

func (w *world) doApproveMigration(inc failover.Incident) string {
	p, why := w.plan(inc)
	if why != "" {
		return inc.ID + ": " + why
	}
	f, how := w.fence(w.homeOf(inc.Validator))
	a := w.newApproval(inc, p, approval.ActionMigrate, w.keysOf(inc.Validator))
	req, rec := w.request(inc.ID, a, nil, f, "valid", true, w.signers()...)
	reply, ok, out := w.submit(inc.ID+" migration ("+how+")", req, rec, false)
	if ok {
		out += "; " + w.afterAccept(reply, rec)
	}
	return out
}

// afterAccept is the approver's CLI after an accepted migration: it sends
// the keys to the standby, or dies before it can (the grant is in the plan).
func (w *world) afterAccept(reply failover.ApprovalReply, rec approvalRec) string {
	if w.rng.IntN(4) == 0 {
		return "the approver's CLI dies before it sends the keys"
	}
	return w.cliDeliver("the approver's CLI", reply.Agent.URL, w.grants[len(w.grants)-1], rec)
}

// cliDeliver sends the keystores the grant names to the standby's agent.
func (w *world) cliDeliver(who, agentURL string, gr grantRec, rec approvalRec) string {
	g, err := decodeGrant(gr.g)
	if err != nil {
		return who + ": the grant does not decode"
	}
	provider := providerOf(agentURL)
	if provider == "" {
		provider = w.providerOfIncident(g.Incident)
	}
	outcome := pick(w.rng, importOK, importOK, importOK, importOK, importOK, importOK, importFail, importStuck)
	if err := w.deliver(who, provider, g.Standby, gr.g, rec.text, rec.sigs, g.Pubkeys, outcome); err != nil {
		return fmt.Sprintf("%s sends keys to %s: %v", who, g.Standby, clip(err.Error(), 160))
	}
	return fmt.Sprintf("%s sends keys to %s: %s at generation %d", who, g.Standby, outcome, g.Generation)
}

// providerOf reads the provider from an agent URL (https://NAME.PROVIDER.standby.test:7443).
func providerOf(url string) string {
	host := strings.TrimPrefix(url, "https://")
	parts := strings.Split(host, ".")
	if len(parts) < 3 {
		return ""
	}
	return parts[1]
}

func (w *world) providerOfIncident(id string) string {
	inc, ok := w.incident(id)
	if !ok || inc.Standby == nil {
		return ""
	}
	return inc.Standby.Provider
}

func (w *world) doBadMigration(inc failover.Incident) string {
	p, why := w.plan(inc)
	if why != "" {
		return inc.ID + ": " + why
	}
	kinds := []string{"expired", "wrong incident", "wrong standby", "wrong certificate", "unknown signer", "too few signers",
		"another validator's keys", "a key missing", "replay", "tampered", "lying fence", "no fencing"}
	if !inc.KeysMoved() {
		// On a moved incident a failback is no mistake.
		kinds = append(kinds, "failback instead")
	}
	kind := pick(w.rng, kinds...)
	keys := w.keysOf(inc.Validator)
	a := w.newApproval(inc, p, approval.ActionMigrate, keys)
	by := w.signers()
	f := failover.Fencing{Method: failover.FenceKeymanager, KeyStatuses: map[string]string{}}
	for _, pk := range keys {
		f.KeyStatuses[pk] = "deleted" // a claim; nobody touched home
	}
	valid, mustRefuse := false, true
	var signed *approval.Approval
	switch kind {
	case "expired":
		a.Issued, a.Expires = a.Issued.Add(-30*time.Minute), a.Issued.Add(-time.Second)
	case "wrong incident":
		a.Incident = inc.ID + "0"
	case "wrong standby":
		a.Standby = "fo-elsewhere"
	case "wrong certificate":
		a.StandbyCertSHA256 = certFor("gcp", "an-impostor")
	case "unknown signer":
		a.Approver, by = "mallory@example", []string{"mallory"}
	case "too few signers":
		if w.cfg.Approval.Threshold >= 2 {
			by = []string{"alice"}
		} else {
			by = nil
		}
	case "another validator's keys":
		a.Pubkeys = w.keysOf(w.otherValidator(inc.Validator))
	case "a key missing":
		if len(keys) > 1 {
			a.Pubkeys = keys[:1]
		} else {
			// One key too many instead: another validator's.
			other := w.keysOf(w.otherValidator(inc.Validator))
			a.Pubkeys = append(slices.Clone(keys), other[0])
		}
	case "replay":
		if len(w.sent) == 0 {
			return "nothing to replay"
		}
		req := w.sent[w.rng.IntN(len(w.sent))]
		if w.rng.IntN(3) > 0 {
			// Most replays resend what was last sent for this incident.
			for i := len(w.sent) - 1; i >= 0; i-- {
				if w.sent[i].Incident == inc.ID {
					req = w.sent[i]
					break
				}
			}
		}
		sum := sha256.Sum256([]byte(req.Approval))
		rec := w.approvals[hex.EncodeToString(sum[:])]
		reply, ok, out := w.submit("replay of an earlier "+rec.kind+" approval for "+req.Incident, req, rec, rec.mustRefuse)
		if ok && rec.valid {
			out += "; " + w.afterAccept(reply, rec)
		}
		return out
	case "tampered":
		s := a
		signed = &s
		a.Expires = a.Expires.Add(time.Minute)
	case "lying fence":
		// A valid approval whose fencing claim nobody checked at home: only
		// the chain's silence decides.
		valid, mustRefuse = true, false
	case "no fencing":
		valid, f = true, failover.Fencing{}
	case "failback instead":
		// A well-made failback approval, sent before anything moved: refused
		// now, and a fair failback once this incident has migrated.
		a.Action, valid = approval.ActionFailback, true
	}
	req, rec := w.request(inc.ID, a, signed, f, kind, valid, by...)
	rec.mustRefuse = mustRefuse && kind != "failback instead"
	w.approvals[recKey(req)] = rec
	reply, ok, out := w.submit(inc.ID+" bad migration ("+kind+")", req, rec, mustRefuse)
	if ok {
		out += "; " + w.afterAccept(reply, rec)
	}
	return out
}

func (w *world) otherValidator(not string) string {
	var names []string
	for _, v := range w.cfg.Fleet {
		if v.Name != not {
			names = append(names, v.Name)
		}
	}
	return pick(w.rng, names...)
}

// doResend is an approver's CLI retrying: the very request it sent last.
// Whatever failoverd decided then, the nonce is spent or the request is
// refused for the same reason; it is never accepted twice.
func (w *world) doResend() string {
	req := w.sent[len(w.sent)-1]
	rec := w.approvals[recKey(req)]
	reply, ok, out := w.submit("resend of the last "+rec.kind+" approval for "+req.Incident, req, rec, rec.mustRefuse)
	if a, err := approval.ParseCanonical([]byte(req.Approval)); ok && err == nil && a.Action == approval.ActionMigrate {
		out += "; " + w.afterAccept(reply, rec)
	}
	return out
}

func recKey(req failover.ApprovalRequest) string {
	sum := sha256.Sum256([]byte(req.Approval))
	return hex.EncodeToString(sum[:])
}

// movedKeys are the keys an incident moved, for its failback.
func movedKeys(inc failover.Incident) []string {
	for i := len(inc.Migrations) - 1; i >= 0; i-- {
		if m := inc.Migrations[i]; len(m.Pubkeys) > 0 {
			return m.Pubkeys
		}
	}
	return nil
}

func (w *world) doApproveFailback(inc failover.Incident) string {
	p, why := w.plan(inc)
	if why != "" {
		return inc.ID + ": " + why
	}
	a := w.newApproval(inc, p, approval.ActionFailback, movedKeys(inc))
	req, rec := w.request(inc.ID, a, nil, failover.Fencing{}, "valid", true, w.signers()...)
	_, _, out := w.submit(inc.ID+" failback", req, rec, false)
	return out
}

func (w *world) doBadFailback(inc failover.Incident) string {
	p, why := w.plan(inc)
	if why != "" {
		return inc.ID + ": " + why
	}
	kind := pick(w.rng, "unknown signer", "expired", "wrong standby", "replay")
	a := w.newApproval(inc, p, approval.ActionFailback, movedKeys(inc))
	by := w.signers()
	switch kind {
	case "unknown signer":
		a.Approver, by = "mallory@example", []string{"mallory"}
	case "expired":
		a.Issued, a.Expires = a.Issued.Add(-30*time.Minute), a.Issued.Add(-time.Second)
	case "wrong standby":
		a.Standby = "fo-elsewhere"
	case "replay":
		var fbs []failover.ApprovalRequest
		for _, r := range w.sent {
			if strings.Contains(r.Approval, approval.ActionFailback) {
				fbs = append(fbs, r)
			}
		}
		if len(fbs) == 0 {
			return "no failback to replay"
		}
		req := pick(w.rng, fbs...)
		rec := w.approvals[recKey(req)]
		_, _, out := w.submit("replay of an earlier "+rec.kind+" failback for "+req.Incident, req, rec, rec.mustRefuse)
		return out
	}
	req, rec := w.request(inc.ID, a, nil, failover.Fencing{}, kind, false, by...)
	rec.mustRefuse = true
	w.approvals[recKey(req)] = rec
	_, _, out := w.submit(inc.ID+" bad failback ("+kind+")", req, rec, true)
	return out
}

// doPlanGrant is an approver whose CLI lost failoverd's reply: it reads the
// grant from the plan and sends the keys with the approval it kept.
func (w *world) doPlanGrant(inc failover.Incident) string {
	p, why := w.plan(inc)
	if why != "" {
		return inc.ID + ": " + why
	}
	if p.Grant == nil {
		return inc.ID + " (" + string(p.State) + "): the plan has no grant"
	}
	g, err := decodeGrant(*p.Grant)
	if err != nil {
		w.violate("approval", "the plan of %s carries a grant that does not decode: %v", inc.ID, err)
	}
	rec, ok := w.approvals[g.ApprovalSHA256]
	if !ok {
		w.violate("approval", "the plan of %s carries a grant for an approval no approver made (%s)", inc.ID, g.ApprovalSHA256)
	}
	gr := grantRec{g: *p.Grant, approval: g.ApprovalSHA256}
	w.grants = append(w.grants, gr)
	return w.cliDeliver("a CLI with the plan's grant", p.Agent.URL, gr, rec)
}

// doOldGrant replays a grant some CLI once held, or a tampered copy of it.
func (w *world) doOldGrant() string {
	gr := pick(w.rng, w.grants...)
	rec := w.approvals[gr.approval]
	if w.rng.IntN(3) == 0 {
		// Tampered: a later generation written into the payload.
		g, err := decodeGrant(gr.g)
		if err == nil {
			orig := fmt.Sprintf(`"generation":%d`, g.Generation)
			gr.g.Payload = []byte(strings.Replace(string(gr.g.Payload), orig, fmt.Sprintf(`"generation":%d`, g.Generation+5), 1))
		}
		return w.cliDeliver("a CLI with a tampered grant", "", gr, rec)
	}
	return w.cliDeliver("a CLI with an old grant", "", gr, rec)
}

// doRogueKeys is somebody sending keys to a standby with no grant at all.
func (w *world) doRogueKeys(p placed) string {
	keys := w.keysOf(pick(w.rng, w.cfg.Fleet...).Name)
	if err := w.deliver("a rogue CLI", p.c.name, p.name, grant.Signed{}, "", nil, keys, importOK); err != nil {
		return fmt.Sprintf("to %s/%s: %v", p.c.name, p.name, clip(err.Error(), 120))
	}
	return fmt.Sprintf("to %s/%s: imported", p.c.name, p.name)
}

// claimant is the open incident that claims a cloud instance, "" for none:
// its standby (not deleted), or the standby it is about to create.
func (w *world) claimant(provider, name string) string {
	for _, inc := range w.openIncidents() {
		if sb := inc.Standby; sb != nil && sb.Provider == provider && sb.Name == name && sb.State != cloud.StateDeleted {
			return inc.ID
		}
		if it := inc.Intent; it != nil && it.Action == "ensure-standby" && it.Target == provider+"/"+name {
			return inc.ID
		}
	}
	return ""
}
