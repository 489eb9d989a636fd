package simulation

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/config"
)

// The engine bugs the simulation found, each as a scenario written out step
// by step. While the bug is there the test skips with "engine bug: ..."
// (FAILOVERD_SIM_FAIL_KNOWN=1 makes it fail instead); once the engine is
// fixed the scenario passes, and the test asks for the bug to be dropped
// from knownBugs so that the sweep fails if it ever comes back.

// scripted is a world for a written scenario: seed 1's fleet and clouds, no
// random steps, no faults, and no allowance for known bugs.
func scripted(t *testing.T, tweak func(*config.Config)) *world {
	t.Helper()
	w := &world{seed: 1, opts: Options{Steps: 1}, fx: newFixtures(t), ctx: context.Background(), strict: true,
		startAt: time.Date(2026, 3, 10, 8, 0, 0, 0, time.UTC)}
	if v := w.try(w.setup); v != nil {
		t.Fatalf("setup: %s", v)
	}
	w.cfg.Cloud.Providers = []string{"gcp"}
	w.cfg.Caps.MaxConcurrentStandbys, w.cfg.Caps.MonthlyStandbyHours = 3, 240
	w.cfg.Engine.ConfirmFor, w.cfg.Engine.KeepWarm, w.cfg.Engine.MaxAttempts = 0, 30*time.Minute, 3
	w.cfg.Approval.Threshold = 1
	if tweak != nil {
		tweak(w.cfg)
	}
	return w
}

// try runs f and returns the violation it stopped at, nil if none.
func (w *world) try(f func()) (v *Violation) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(stop); !ok {
				panic(r)
			}
		}
		v = w.violation
	}()
	f()
	return nil
}

// settle ends a scenario step as the schedule ends one, with every alert
// Prometheus has raised delivered.
func (w *world) settle() {
	w.afterStep()
	for len(w.mail) > 0 && w.up() {
		w.deliverMail(0)
	}
}

func (w *world) openOf(validator string) failover.Incident {
	inc, _ := w.incident(w.validatorRec(validator).OpenIncident)
	return inc
}

// outageToReady takes a validator's home down and runs failoverd until its
// standby is ready.
func (w *world) outageToReady(t *testing.T, validator string) failover.Incident {
	t.Helper()
	h := w.homeOf(validator)
	h.up = false
	w.stopHome(h, "its node went down")
	w.settle()
	for range 60 {
		w.passTime(time.Minute)
		w.settle()
		if inc := w.openOf(validator); inc.State == failover.StateReady {
			return inc
		}
	}
	t.Fatalf("%s never got a ready standby:\n%s", validator, strings.Join(w.trace, "\n"))
	return failover.Incident{}
}

// bugPresent ends a scenario that showed the bug.
func bugPresent(t *testing.T, name string, v *Violation, w *world) {
	t.Helper()
	msg := "engine bug: " + knownBugs[name] + "\n  shown as: " + v.String()
	if os.Getenv("FAILOVERD_SIM_FAIL_KNOWN") == "1" {
		t.Fatalf("%s\ntrace:\n%s", msg, strings.Join(w.trace, "\n"))
	}
	t.Skip(msg)
}

// bugGone ends a scenario that no longer shows the bug.
func bugGone(t *testing.T, name string) {
	t.Helper()
	if _, listed := knownBugs[name]; listed {
		t.Errorf("the engine no longer has bug %q: remove it from knownBugs (known.go), so that the sweep fails if it comes back", name)
	}
}

// TestEngineBugGateHomeWhileMigrating: Approve stores the migrating state,
// then moves the signing right in a second write. A crash (or a failed
// write) between the two leaves the gate answering "home" until the
// reconciler finishes the swap. Home, fenced only by a power-off
// confirmation, powers on in that window; its gate opens and it signs. The
// reconciler then hands the signing right to the standby while home goes on
// signing: failoverd's record of who signs is wrong, the standby's import is
// refused (the chain is not silent) and a failback waits for a silence that
// never comes.
func TestEngineBugGateHomeWhileMigrating(t *testing.T) {
	w := scripted(t, nil)
	v := w.try(func() {
		inc := w.outageToReady(t, "eth-1")
		w.passTime(30 * time.Minute) // the chain shows home silent for 3 finished epochs
		w.settle()
		inc = w.openOf("eth-1")
		p, why := w.plan(inc)
		if why != "" {
			t.Fatal(why)
		}
		// failoverd dies right after it stored the migrating state: the
		// first write spends the nonce, the second is the transition.
		w.proc.countdown, w.proc.afterEffect = 2, true
		req, rec := w.request(inc.ID, w.newApproval(inc, p, approval.ActionMigrate, w.keysOf("eth-1")), nil,
			failover.Fencing{Method: failover.FencePoweredOff, ConfirmedBy: "alice@example"}, "valid", true, "alice")
		if _, ok, out := w.submit("migration", req, rec, false); ok || !w.proc.dead {
			t.Fatalf("the crash did not strike inside the approval: %s", out)
		}
		w.eng = nil
		w.startProcess()
		if got := w.openOf("eth-1"); got.State != failover.StateMigrating || !w.validatorRec("eth-1").Ownership.AtHome() {
			t.Fatalf("after the crash: %s is %s, owner %s; the scenario expects migrating with home still the owner",
				got.ID, got.State, w.validatorRec("eth-1").Ownership.Current())
		}
		// Power comes back at home: the node boots, the init container asks
		// the gate, and failoverd answers home.
		w.homeOf("eth-1").up = true
		w.tryStartHome(w.homeOf("eth-1"))
		w.touch()
		// The reconciler finishes the swap.
		w.reconcile("eth-1")
		w.touch()
		w.checkSigners()
	})
	if v != nil {
		bugPresent(t, "gate-home-while-migrating", v, w)
	}
	bugGone(t, "gate-home-while-migrating")
}

// TestEngineBugCapAfterLostAnswer: the engine adds an incident to its
// holder index only when the write of its intent answers. A write that took
// effect but whose answer was lost (a Kubernetes API server timing out after
// the commit) leaves the intent in the store and out of the index: the next
// incident is admitted past the cap, and both create a standby.
func TestEngineBugCapAfterLostAnswer(t *testing.T) {
	w := scripted(t, func(c *config.Config) { c.Caps.MaxConcurrentStandbys = 1 })
	v := w.try(func() {
		for _, name := range []string{"eth-1", "eth-2"} {
			h := w.homeOf(name)
			h.up = false
			w.stopHome(h, "its node went down")
		}
		w.settle()
		w.loseIntentAnswer = "eth-1-1"
		w.reconcile("eth-1") // admitted; its intent is stored, the answer lost
		w.reconcile("eth-2") // admitted too: the index does not know eth-1-1
		w.reconcile("eth-1") // the stored intent is honoured: a second standby
		w.afterStep()
	})
	if v != nil {
		bugPresent(t, "cap-lost-answer", v, w)
	}
	bugGone(t, "cap-lost-answer")
}

// TestEngineBugBudgetForgetsHours: an incident keeps one standby record.
// When its standby is lost (a spot preemption) and made again, the record is
// replaced and the hours of the lost one leave the budget; so do the hours
// of a standby whose create answer was lost and that was deleted before
// failoverd read its creation time. Spot standbys preempted every few hours
// run the month's budget over without limit.
func TestEngineBugBudgetForgetsHours(t *testing.T) {
	w := scripted(t, func(c *config.Config) { c.Caps.MonthlyStandbyHours = 3 })
	v := w.try(func() {
		inc := w.outageToReady(t, "eth-1")
		w.passTime(2 * time.Hour)
		w.settle()
		w.cloudNamed(inc.Standby.Provider).preempt(inc.Standby.Name) // 2 hours billed
		for range 3 {
			w.passTime(time.Minute)
			w.settle()
		}
		w.passTime(90 * time.Minute) // 3.5 hours billed; failoverd counts 1.5
		w.settle()
		h := w.homeOf("eth-2")
		h.up = false
		w.stopHome(h, "its node went down")
		w.settle()
		w.passTime(time.Minute)
		w.settle()
	})
	if v != nil {
		bugPresent(t, "budget-forgets-hours", v, w)
	}
	bugGone(t, "budget-forgets-hours")
}

// TestEngineBugTeardownRecovering: failoverd teardown of an incident that is
// keeping its standby warm after a resolve should delete the standby now
// (README: "failoverd teardown ends an incident now"); the engine tries the
// teardown transition, which recovering does not allow, and returns that
// error instead.
func TestEngineBugTeardownRecovering(t *testing.T) {
	w := scripted(t, nil)
	var err error
	v := w.try(func() {
		inc := w.outageToReady(t, "eth-1")
		w.homeOf("eth-1").up = true // back on its own; its gate opens, its alert resolves
		w.settle()
		w.passTime(time.Second)
		w.settle()
		if got := w.openOf("eth-1"); got.State != failover.StateRecovering {
			t.Fatalf("%s is %s, want recovering", got.ID, got.State)
		}
		_, err = w.eng.Teardown(w.ctx, inc.ID, "ops")
	})
	if v != nil {
		t.Fatalf("scenario: %s", v)
	}
	var te *failover.TransitionError
	if errors.As(err, &te) {
		bugPresent(t, "teardown-recovering", &Violation{Invariant: "engine", Detail: "teardown: " + err.Error()}, w)
	}
	if err != nil {
		t.Fatalf("teardown of a recovering incident: %v", err)
	}
	bugGone(t, "teardown-recovering")
}

// TestEngineBugTeardownTwice: a teardown deletes the standby; when the
// delete fails engine.maxAttempts times the incident fails and pages. The
// runbook's answer to a failed incident is a teardown, but a second teardown
// returns at once (TornDownBy is set) and changes nothing: the incident
// stays failed, claims its validator, and no outage of it ever opens an
// incident again.
func TestEngineBugTeardownTwice(t *testing.T) {
	w := scripted(t, nil)
	v := w.try(func() {
		inc := w.outageToReady(t, "eth-1")
		w.cloudNamed(inc.Standby.Provider).failDeletes = w.cfg.Engine.MaxAttempts
		if _, err := w.eng.Teardown(w.ctx, inc.ID, "ops"); err != nil {
			t.Fatalf("first teardown: %v", err)
		}
		for range 10 {
			w.passTime(5 * time.Second)
			w.settle()
		}
		if got := w.openOf("eth-1"); got.State != failover.StateFailed {
			t.Fatalf("%s is %s after %d failed deletes, want failed", got.ID, got.State, w.cfg.Engine.MaxAttempts)
		}
		if _, err := w.eng.Teardown(w.ctx, inc.ID, "ops"); err != nil {
			t.Fatalf("second teardown: %v", err)
		}
		for range 10 {
			w.passTime(time.Minute)
			w.settle()
		}
		if got, _ := w.incident(inc.ID); got.State.Open() {
			w.violate("liveness", "%s is still %s after a second teardown: %s", got.ID, got.State, got.Reason)
		}
	})
	if v != nil {
		bugPresent(t, "teardown-twice", v, w)
	}
	bugGone(t, "teardown-twice")
}

// TestEngineBugPageHeldBack: failoverd posts FailoverdStandbyReady when the
// standby is ready. The standby is then lost and, the month's budget spent,
// the incident fails; Alertmanager refuses that post. The engine remembers
// when it last posted (the ready alert) but not what, so every reconcile
// for the next 20 minutes (RenotifyEvery) thinks the page is fresh:
// Alertmanager keeps showing "ready" for an incident that failed.
func TestEngineBugPageHeldBack(t *testing.T) {
	w := scripted(t, nil)
	v := w.try(func() {
		inc := w.outageToReady(t, "eth-1")
		w.cfg.Caps.MonthlyStandbyHours = 0.01
		w.cloudNamed(inc.Standby.Provider).preempt(inc.Standby.Name)
		// The standby is gone (ready -> provisioning), there is no budget
		// for another (-> failed); Alertmanager refuses both posts.
		w.refusePosts = 2
		w.reconcile("eth-1")
		if got := w.openOf("eth-1"); got.State != failover.StateFailed {
			t.Fatalf("%s is %s, want failed", got.ID, got.State)
		}
		w.passTime(time.Minute) // a resync: the reconcile completes, Alertmanager takes posts again
		w.checkPages()
	})
	if v != nil {
		bugPresent(t, "page-held-back", v, w)
	}
	bugGone(t, "page-held-back")
}

// TestBudgetKeepsAStandbyLostWhileWarm: a standby kept warm after a
// resolve is not looked at (recovering waits for keepWarm), so when the cloud
// takes it away meanwhile, nothing marks it deleted. The alert fires again,
// the incident provisions, Ensure makes a new node: the hours of the lost
// one must stay on the budget (a path of the budget bug the simulation
// found, after the first fix).
func TestBudgetKeepsAStandbyLostWhileWarm(t *testing.T) {
	w := scripted(t, func(c *config.Config) { c.Caps.MonthlyStandbyHours = 3 })
	v := w.try(func() {
		inc := w.outageToReady(t, "eth-1")
		w.passTime(2 * time.Hour) // 2 hours billed
		w.settle()
		w.homeOf("eth-1").up = true // back: its alert resolves, the standby is kept warm
		w.settle()
		w.passTime(time.Minute)
		w.settle()
		if got := w.openOf("eth-1"); got.State != failover.StateRecovering {
			t.Fatalf("%s is %s, want recovering", got.ID, got.State)
		}
		w.cloudNamed(inc.Standby.Provider).preempt(inc.Standby.Name)
		h := w.homeOf("eth-1")
		h.up = false // down again: the alert fires, the incident provisions again
		w.stopHome(h, "its node went down")
		w.settle()
		for range 3 {
			w.passTime(time.Minute)
			w.settle()
		}
		w.passTime(90 * time.Minute) // 3.5 hours billed in all
		w.settle()
		h = w.homeOf("eth-2")
		h.up = false
		w.stopHome(h, "its node went down")
		w.settle()
		w.passTime(time.Minute)
		w.settle()
	})
	if v != nil {
		t.Fatalf("%s\ntrace:\n%s", v, strings.Join(w.trace, "\n"))
	}
	if got := w.openOf("eth-2"); got.State != failover.StateFailed {
		t.Fatalf("eth-2's incident is %s (%s), want failed: the budget is spent", got.State, got.Reason)
	}
}

// TestEngineBugBudgetUnreadStandbyLost: failoverd asks for a standby and the
// answer is lost (the node exists, failoverd never read its creation time);
// failoverd is down for hours while the node bills; the cloud takes the node
// away; failoverd comes back and creates it again. The record now carries
// the new creation time, and the hours of the first node leave the budget.
func TestEngineBugBudgetUnreadStandbyLost(t *testing.T) {
	w := scripted(t, func(c *config.Config) { c.Caps.MonthlyStandbyHours = 3 })
	v := w.try(func() {
		h := w.homeOf("eth-1")
		h.up = false
		w.stopHome(h, "its node went down")
		w.settle()
		gcp := w.cloudNamed("gcp")
		gcp.loseEnsureAnswers = 1
		w.reconcile("eth-1") // the node is made, the answer lost
		w.afterStep()
		if len(gcp.instances()) != 1 {
			t.Fatalf("want the lost answer's node in the cloud, have %d", len(gcp.instances()))
		}
		w.proc.die("between steps") // failoverd is down...
		w.eng = nil
		w.passTime(4 * time.Hour) // ...for 4 billed hours
		gcp.preempt(cloudName("eth-1-1"))
		w.startProcess()
		w.passTime(time.Second) // a resync: the node is made again
		w.settle()
		h = w.homeOf("eth-2")
		h.up = false
		w.stopHome(h, "its node went down")
		w.settle()
		w.passTime(time.Minute)
		w.settle()
	})
	if v != nil {
		bugPresent(t, "budget-unread-standby-lost", v, w)
	}
	bugGone(t, "budget-unread-standby-lost")
}

func cloudName(incident string) string { return "fo-" + incident }
