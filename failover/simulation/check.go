package simulation

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/cometbft"
	"github.com/failoverd/failoverd/failover/grant"
)

// checkAll holds the world to the invariants after a step. Each reads the
// durable state and the world directly, never through the engine.
func (w *world) checkAll() {
	w.checkOwners()
	w.checkSigners()
	w.checkIncidents()
	w.checkCaps()
}

// checkOwners is invariant 1 as the store records it: one owner per
// validator, a generation that only grows, a standby owner that is the
// validator's own standby, and a gate that never says home while a
// migration of the validator is under way.
func (w *world) checkOwners() {
	for _, vc := range w.cfg.Fleet {
		v := w.validatorRec(vc.Name)
		o := v.Ownership
		if o.Generation < w.maxGen[vc.Name] {
			w.violate("owner", "the generation of %s went down from %d to %d", vc.Name, w.maxGen[vc.Name], o.Generation)
		}
		w.maxGen[vc.Name] = o.Generation
		if !o.AtHome() {
			inc, ok := w.incident(o.Incident)
			if !ok || inc.Validator != vc.Name || inc.Standby == nil || inc.Standby.Name != o.Current() {
				w.violate("owner", "%s is owned by %s (generation %d, incident %q), which is not that incident's standby", vc.Name, o.Current(), o.Generation, o.Incident)
			}
		}
		for _, inc := range w.incidents() {
			if inc.Validator != vc.Name {
				continue
			}
			for _, m := range inc.Migrations {
				if m.DoneAt != nil && o.Generation < m.Generation {
					w.violate("owner", "%s completed a %s to %s at generation %d, but %s is recorded at generation %d (%s)",
						inc.ID, m.Action, m.To, m.Generation, vc.Name, o.Generation, o.Current())
				}
			}
			if m, ok := inc.CurrentMigration(); ok && inc.State == failover.StateMigrated && (o.Current() != m.To || o.Generation != m.Generation) {
				w.violate("owner", "%s is migrated to %s at generation %d, but %s is recorded as owned by %s at generation %d",
					inc.ID, m.To, m.Generation, vc.Name, o.Current(), o.Generation)
			}
		}
		if id := w.migratingWhileHome(vc.Name); id != "" && !w.knownBug("gate-home-while-migrating", true) {
			inc, _ := w.incident(id)
			m, _ := inc.CurrentMigration()
			w.violate("owner", "the gate answers home for %s while %s is migrating its keys to %s (generation %d accepted): a home validator client that restarts now starts signing, and so will the standby",
				vc.Name, inc.ID, m.To, m.Generation)
		}
	}
}

// migratingWhileHome is the validator's open incident if it is migrating
// while the stored owner is still home and the gate answers home.
func (w *world) migratingWhileHome(validator string) string {
	v := w.validatorRec(validator)
	if !v.Ownership.AtHome() || v.OpenIncident == "" {
		return ""
	}
	inc, ok := w.incident(v.OpenIncident)
	if !ok || inc.State != failover.StateMigrating {
		return ""
	}
	// What matters is the gate's answer, not the record: the engine closes
	// the gate while a recorded move has not moved the signing right.
	if home, _ := w.gate(validator, failover.OwnerHome); !home {
		return ""
	}
	return inc.ID
}

// checkSigners is invariant 1 in the world: at most one signer per key, and
// every signer is the recorded owner at the generation its keys came with.
func (w *world) checkSigners() {
	byKey := map[string][]string{}
	for _, h := range w.homes {
		if !h.active {
			continue
		}
		o := w.validatorRec(h.validator).Ownership
		if !o.AtHome() {
			w.violate("owner", "home %s signs while %s owns the signing right (generation %d)", h.validator, o.Current(), o.Generation)
		}
		for _, pk := range w.keysOf(h.validator) {
			byKey[pk] = append(byKey[pk], h.ref())
		}
	}
	for _, key := range sortedKeys(w.agents) {
		a := w.agents[key]
		if !a.active || w.agentFor(a.provider, a.name) == nil {
			continue
		}
		o := w.validatorRec(a.validator).Ownership
		if o.Current() != a.name || o.Generation != a.importGen {
			w.violate("owner", "standby %s signs for %s with keys of generation %d while %s owns generation %d", a.name, a.validator, a.importGen, o.Current(), o.Generation)
		}
		for _, pk := range a.loaded {
			byKey[approval.NormalizePubkey(pk)] = append(byKey[approval.NormalizePubkey(pk)], a.ref())
		}
	}
	for _, pk := range sortedKeys(byKey) {
		if len(byKey[pk]) > 1 {
			w.violate("owner", "key %s has %d signers: %s", short(pk), len(byKey[pk]), strings.Join(byKey[pk], ", "))
		}
	}
}

// startSigner is a validator client starting: no other signer of its keys
// may have signed in the last 3 finished epochs (DESIGN.md rule 4's margin).
func (w *world) startSigner(ref string, keys []string, msg string) {
	now := w.clk.Now()
	for _, pk := range keys {
		s, ok := w.signed[approval.NormalizePubkey(pk)]
		if !ok || s.by == ref {
			continue
		}
		if v, _ := w.member(w.validatorOfKeys([]string{pk})); v.Chain == "berachain" {
			if heightAt(now) < heightAt(s.at)+int64(cometbft.DefaultBlocks) {
				w.violate("owner", "%s, but %s signed key %s at height %d (now %d): two signers within %d blocks",
					msg, s.by, short(pk), heightAt(s.at), heightAt(now), cometbft.DefaultBlocks)
			}
			continue
		}
		if epochAt(now) < epochAt(s.at)+4 {
			w.violate("owner", "%s, but %s signed key %s at %s (epoch %d, now %d): two signers within 3 finished epochs",
				msg, s.by, short(pk), s.at.Format(time.TimeOnly), epochAt(s.at), epochAt(now))
		}
	}
	w.note("  %s", msg)
}

// checkImport is invariant 2, at the moment a standby's validator client
// takes keys: an approval failoverd accepted and recorded names this very
// move, and the keys are exactly the validator's.
func (w *world) checkImport(a *agent, g grant.Grant) {
	inc, ok := w.incident(g.Incident)
	if !ok {
		w.violate("import", "%s imported keys of %s for incident %q, which failoverd does not have: no accepted approval", a.name, g.Validator, g.Incident)
	}
	found := false
	for _, m := range inc.Migrations {
		if m.Action == approval.ActionMigrate && m.Generation == g.Generation && m.ApprovalSHA256 == g.ApprovalSHA256 && m.To == a.name {
			found = true
		}
	}
	if !found {
		w.violate("import", "%s imported keys of %s at generation %d, but incident %s records no accepted migration to it at that generation",
			a.name, g.Validator, g.Generation, inc.ID)
	}
	rec, ok := w.approvals[g.ApprovalSHA256]
	if !ok || !rec.valid || rec.mustRefuse {
		w.violate("import", "%s imported keys under an approval no approver could have made valid (%s)", a.name, rec.kind)
	}
	want := w.keysOf(inc.Validator)
	got := make([]string, len(g.Pubkeys))
	for i, pk := range g.Pubkeys {
		got[i] = approval.NormalizePubkey(pk)
	}
	slices.Sort(want)
	slices.Sort(got)
	if inc.Validator != g.Validator || !slices.Equal(want, got) {
		w.violate("import", "%s imported keys %v for %s (incident of %s), whose keys are %v", a.name, shorts(got), g.Validator, inc.Validator, shorts(want))
	}
	o := w.validatorRec(inc.Validator).Ownership
	if o.Current() != a.name || o.Generation != g.Generation {
		// The approval was accepted and recorded, but the signing right has
		// not moved (yet): the gate keeps the standby's client stopped, so
		// this is not a second signer by itself. Counted, and watched by
		// checkOwners (the gate must not say home meanwhile).
		w.stats.add("imports before the signing right moved", 1)
	}
}

func shorts(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = short(k)
	}
	return out
}

// checkIncidents is invariant 4: no incident waits without a reason, and
// every open incident is one its validator points at (else nothing would
// ever reconcile it). A moved incident ends only through a failback.
func (w *world) checkIncidents() {
	perValidator := map[string]string{}
	for _, inc := range w.openIncidents() {
		if strings.TrimSpace(inc.Reason) == "" {
			w.violate("reason", "%s is %s and says nothing about what it waits for", inc.ID, inc.State)
		}
		if other, dup := perValidator[inc.Validator]; dup {
			w.violate("reason", "%s has two open incidents: %s and %s", inc.Validator, other, inc.ID)
		}
		perValidator[inc.Validator] = inc.ID
		if v := w.validatorRec(inc.Validator); v.OpenIncident != inc.ID {
			w.violate("reason", "%s is open (%s) but %s points at incident %q: nothing will reconcile it", inc.ID, inc.State, inc.Validator, v.OpenIncident)
		}
	}
	w.checkPages()
	for _, inc := range w.incidents() {
		moved, prev := false, failover.State("")
		home := w.homeAgain(inc)
		for _, e := range inc.History {
			if e.To == "" {
				continue
			}
			switch {
			case e.To == failover.StateMigrating:
				moved = true
			case moved && !home.IsZero() && !e.At.Before(home):
				// The failback returned the signing right home; what is
				// left is deleting the standby, which a teardown may finish.
			case moved && e.To == failover.StateRecovering:
				w.violate("reason", "%s went %s -> recovering after its keys moved: only a failback may end it", inc.ID, prev)
			case moved && e.To == failover.StateClosed && prev != failover.StateFailingBack:
				w.violate("reason", "%s closed from %s after its keys moved: only a failback may end it", inc.ID, prev)
			}
			prev = e.To
		}
	}
}

// alertTTL is how long an alert failoverd posts stays active in
// Alertmanager unless posted again (failover/alertmanager's notifyTTL).
const alertTTL = time.Hour

// checkPages: a failed incident pages a person. Alertmanager shows an
// incident's alert as the last post it took said, for an hour. A reconcile
// of a failed incident that completes posts its page unless one went out
// less than a renotify interval ago; so once such a reconcile completed with
// Alertmanager taking posts, the incident's alert must be active and say
// failed.
func (w *world) checkPages() {
	if !w.up() {
		return
	}
	for _, inc := range w.openIncidents() {
		if inc.State != failover.StateFailed || !w.pageDue[inc.Validator] {
			continue
		}
		posts := w.pages[inc.ID]
		n := len(posts)
		if n > 0 && posts[n-1].state != failover.StateFailed && w.clk.Now().Sub(posts[n-1].at) < failover.RenotifyEvery &&
			w.knownBug("page-held-back", true) {
			continue
		}
		if n == 0 || posts[n-1].state != failover.StateFailed || w.clk.Now().Sub(posts[n-1].at) >= alertTTL {
			last := "none"
			if n > 0 {
				last = fmt.Sprintf("%s at %s", posts[n-1].state, posts[n-1].at.Format(time.DateTime))
			}
			w.violate("reason", "%s is failed (%s); a reconcile of it completed since, and Alertmanager shows no active page of it (last post taken: %s)",
				inc.ID, clip(inc.Reason, 160), last)
		}
	}
}

// homeAgain is when the incident's failback returned the signing right
// home (zero if it has not).
func (w *world) homeAgain(inc failover.Incident) time.Time {
	m, ok := inc.CurrentMigration()
	if !ok || m.Action != approval.ActionFailback {
		return time.Time{}
	}
	if m.DoneAt != nil {
		return *m.DoneAt
	}
	// The failback's own record of being done can be lost to a failed
	// write after the swap; the ownership says it all the same.
	if o := w.validatorRec(inc.Validator).Ownership; o.AtHome() && o.Generation >= m.Generation && o.Incident == inc.ID {
		return o.ChangedAt
	}
	return time.Time{}
}

// holdsStandby is the engine's notion of an incident that has, or is about
// to have, a standby.
func holdsStandby(inc failover.Incident) bool {
	if inc.Intent != nil && inc.Intent.Action == "ensure-standby" {
		return true
	}
	return inc.Standby != nil && inc.Standby.State != cloud.StateDeleted
}

// checkCaps is invariant 5 between steps: no more incidents hold standbys
// than caps.maxConcurrentStandbys, and no two nodes serve one incident.
func (w *world) checkCaps() {
	var holders []string
	for _, inc := range w.openIncidents() {
		if holdsStandby(inc) {
			holders = append(holders, inc.ID)
		}
	}
	if limit := w.cfg.Caps.MaxConcurrentStandbys; len(holders) > limit && !w.knownBug("cap-lost-answer", w.lostIntentAmong(holders)) {
		w.violate("caps", "%d incidents hold standbys (%v), caps.maxConcurrentStandbys is %d", len(holders), holders, limit)
	}
	byIncident := map[string][]string{}
	for _, p := range w.allInstances() {
		sb, _ := p.c.exists(p.name)
		id := sb.Labels[cloud.LabelIncident]
		byIncident[id] = append(byIncident[id], p.c.name+"/"+p.name)
	}
	for _, id := range sortedKeys(byIncident) {
		if len(byIncident[id]) > 1 {
			w.violate("caps", "incident %s has %d standbys: %v", id, len(byIncident[id]), byIncident[id])
		}
	}
}

// unreadLost reports whether some incident lost a standby failoverd had
// asked for and never read (the known bug budget-unread-standby-lost).
func (w *world) unreadLost() bool {
	for _, c := range w.clouds {
		names := map[string]int{}
		for _, in := range c.ledger {
			names[in.name]++
		}
		for _, inc := range w.incidents() {
			if sb := inc.Standby; sb != nil && sb.Provider == c.name && names[sb.Name] > 1 && len(inc.PastStandbys) == 0 {
				return true
			}
		}
	}
	return false
}

func (w *world) lostIntentAmong(ids []string) bool {
	for _, id := range ids {
		if w.lostIntent[id] {
			return true
		}
	}
	return false
}

// trackAdmissions remembers when each incident's intent to create a
// standby was first recorded: the engine checks the caps then, and rewrites
// the intent's time at every retry.
func (w *world) trackAdmissions() {
	seen := map[string]bool{}
	for _, inc := range w.openIncidents() {
		if it := inc.Intent; it != nil && it.Action == "ensure-standby" {
			seen[inc.ID] = true
			if _, ok := w.admittedAt[inc.ID]; !ok {
				w.admittedAt[inc.ID] = it.At
			}
		}
	}
	for id := range w.admittedAt {
		if !seen[id] {
			delete(w.admittedAt, id)
		}
	}
}

// checkAdmission is invariant 5 at the moment a standby starts to cost
// money: the concurrent cap holds, and the month's budget was not spent when
// failoverd admitted it (recorded its intent). The engine's own figure may
// lag by one resync interval of every standby's time; that is the slack.
func (w *world) checkAdmission(sb cloud.Standby) {
	live := 0
	for _, p := range w.allInstances() {
		if !planted(p.name) {
			live++
		}
	}
	var holders []string
	for _, inc := range w.openIncidents() {
		if holdsStandby(inc) {
			holders = append(holders, inc.ID)
		}
	}
	if limit := w.cfg.Caps.MaxConcurrentStandbys; live > limit && !w.knownBug("cap-lost-answer", w.lostIntentAmong(holders)) {
		w.violate("caps", "standby %s/%s is the %d-th running standby; caps.maxConcurrentStandbys is %d", sb.Provider, sb.Name, live, limit)
	}
	admitted := w.clk.Now()
	for id, at := range w.admittedAt {
		if cloud.LabelValue(id) == sb.Labels[cloud.LabelIncident] {
			admitted = at
		}
	}
	used := 0.0
	for _, c := range w.clouds {
		used += c.hoursIn(admitted)
	}
	budget := w.cfg.Caps.MonthlyStandbyHours
	slack := w.cfg.Engine.ResyncInterval.Hours() * float64(w.cfg.Caps.MaxConcurrentStandbys)
	books := failover.StandbyHours(w.incidents(), admitted)
	if used >= budget+slack && !w.knownBug("budget-forgets-hours", books < budget) && !w.knownBug("budget-unread-standby-lost", books < budget && w.unreadLost()) {
		var bill, ledger []string
		for _, c := range w.clouds {
			for _, in := range c.ledger {
				gone := "running"
				if !in.gone.IsZero() {
					gone = in.gone.Format(time.DateTime)
				}
				bill = append(bill, fmt.Sprintf("%s/%s %s..%s", in.provider, in.name, in.created.Format(time.DateTime), gone))
			}
		}
		for _, inc := range w.incidents() {
			ledger = append(ledger, fmt.Sprintf("%s %.2fh", inc.ID, failover.StandbyHours([]failover.Incident{inc}, admitted)))
		}
		w.violate("caps", "standby %s/%s admitted at %s with %.2f standby-hours already billed this month (failoverd's own figure from its incidents: %.2f); caps.monthlyStandbyHours is %.0f. Billed: %s. Failoverd's books: %s",
			sb.Provider, sb.Name, admitted.Format(time.RFC3339), used, books, budget,
			strings.Join(bill, ", "), strings.Join(ledger, ", "))
	}
	if !admitted.Equal(w.clk.Now()) {
		now := 0.0
		for _, c := range w.clouds {
			now += c.hoursIn(w.clk.Now())
		}
		if now >= budget {
			w.stats.add("standbys created after the budget ran out (admitted before)", 1)
		}
	}
}

// calmEnd stops every fault and lets people do what the runbooks say, then
// requires that everything comes to rest: no open incident, no standby, every
// home signing again (liveness). A validator whose signing standby vanished
// from the cloud has no documented way back: it is counted, not failed.
func (w *world) calmEnd() {
	w.calm = true
	w.faults = faultRates{}
	w.proc.countdown = 0
	if !w.up() {
		w.eng = nil
		w.startProcess()
	}
	for _, s := range w.sites {
		s.dark, s.cut = false, false
	}
	for _, h := range w.homes {
		h.up = true
	}
	for _, c := range w.clouds {
		for _, z := range w.cfg.ZonesFor(c.name) {
			c.c.SetNoCapacity(z, false)
		}
	}
	const rounds = 60
	for round := 1; round <= rounds; round++ {
		w.step++
		w.trace = append(w.trace, fmt.Sprintf("#%d %s calm end, round %d", w.step, w.clk.Now().Format("01-02 15:04:05"), round))
		for len(w.mail) > 0 && w.up() {
			w.note("  %s", w.deliverMail(0))
		}
		for _, inc := range w.openIncidents() {
			if out := w.personActs(inc, round); out != "" {
				w.note("  %s", out)
			}
		}
		for _, h := range w.homes {
			if w.mayRestore(h) {
				w.note("  a person restores %s", w.doRestoreHome(h))
			}
		}
		w.passTime(5 * time.Minute)
		w.afterStep()
		if w.settled() {
			return
		}
	}
	var open []string
	for _, inc := range w.openIncidents() {
		if !w.resting(inc) {
			open = append(open, fmt.Sprintf("%s (%s: %s)", inc.ID, inc.State, clip(inc.Reason, 160)))
		}
	}
	left := w.leftStandbys()
	var idle []string
	for _, h := range w.homes {
		if !h.active && !w.restingValidator(h.validator) {
			idle = append(idle, h.validator)
		}
	}
	w.violate("liveness", "%d calm rounds after the faults stopped, still open: %v; standbys left: %v; homes not signing: %v",
		rounds, open, left, idle)
}

// personActs is what a person does about an open incident in the calm end,
// following the runbooks.
func (w *world) personActs(inc failover.Incident, round int) string {
	switch {
	case inc.State == failover.StateFailed && inc.KeysMoved() && !w.homeAgain(inc).IsZero():
		// The failback is done, only the standby's delete failed: the
		// signing right is home, so a teardown finishes it (FailoverdIncidentFailed).
		return w.doTeardown(inc)
	case inc.State == failover.StateMigrated || inc.State == failover.StateFailed && inc.KeysMoved():
		if w.stranded(inc) {
			return ""
		}
		return w.doApproveFailback(inc)
	case inc.State == failover.StateMigrating:
		if round%3 == 1 {
			return w.doPlanGrant(inc)
		}
	case inc.State == failover.StateFailed:
		return w.doTeardown(inc)
	case round >= 12 && !inc.KeysMoved() && inc.TornDownBy == "" && inc.State != failover.StateRecovering:
		// A resolve that never arrived: after an hour of calm the person
		// tears the incident down.
		return w.doTeardown(inc)
	}
	return ""
}

// stranded: the incident's keys moved to a standby that the cloud no longer
// has. failoverd cannot fence a VM that is gone, so it never returns the
// signing right home; no runbook covers it.
func (w *world) stranded(inc failover.Incident) bool {
	if !inc.KeysMoved() || inc.Standby == nil {
		return false
	}
	o := w.validatorRec(inc.Validator).Ownership
	if o.AtHome() {
		return false
	}
	c := w.cloudNamed(inc.Standby.Provider)
	if c == nil {
		return true
	}
	_, ok := c.exists(inc.Standby.Name)
	return !ok
}

// leftStandbys are the nodes still running that no resting incident holds.
func (w *world) leftStandbys() []string {
	var left []string
	for _, p := range w.allInstances() {
		if id := w.claimant(p.c.name, p.name); id != "" {
			if inc, ok := w.incident(id); ok && w.resting(inc) {
				continue
			}
		}
		left = append(left, p.c.name+"/"+p.name)
	}
	return left
}

func (w *world) restingValidator(name string) bool {
	v := w.validatorRec(name)
	if v.OpenIncident == "" {
		return false
	}
	inc, ok := w.incident(v.OpenIncident)
	return ok && w.resting(inc)
}

// resting: an open incident that nothing documented can move on, for a
// reason the simulation knows (stranded, or a known engine bug).
func (w *world) resting(inc failover.Incident) bool {
	if w.stranded(inc) {
		return true
	}
	return inc.State == failover.StateFailed && inc.TornDownBy != "" && !inc.KeysMoved() && w.knownBug("teardown-twice", true)
}

func (w *world) settled() bool {
	for _, inc := range w.openIncidents() {
		if !w.resting(inc) {
			return false
		}
	}
	if len(w.leftStandbys()) > 0 {
		return false
	}
	for _, h := range w.homes {
		if !h.active && !w.restingValidator(h.validator) {
			return false
		}
	}
	for _, inc := range w.openIncidents() {
		if w.stranded(inc) {
			w.stats.add("stranded: the signing standby vanished from the cloud", 1)
			w.note("  %s stays %s: its signing standby is gone from the cloud; no runbook brings the signing right home", inc.ID, inc.State)
		}
	}
	return true
}
