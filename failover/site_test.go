package failover_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/config"
)

// siteHarness is the engine harness with metrics that a test can read, and
// helpers for heartbeats and site checks.
type siteHarness struct {
	*harness
	m *failover.Metrics
}

// newSiteHarness: eth-1 and eth-2 at basement, eth-3 at garage, the default
// siteDownAfter (5m) and confirmFor 1m.
func newSiteHarness(t *testing.T, tweak func(*config.Config)) *siteHarness {
	t.Helper()
	h := newHarness(t, func(c *config.Config) {
		c.Fleet[2].Site = "garage"
		if c.Heartbeat.SiteDownAfter != 5*time.Minute {
			t.Fatalf("default siteDownAfter %s, want 5m", c.Heartbeat.SiteDownAfter)
		}
		if tweak != nil {
			tweak(c)
		}
	})
	s := &siteHarness{harness: h}
	s.restart()
	return s
}

// restart replaces the engine by a new one on the same store and cloud, as a
// restarted failoverd (or a new leader) would be.
func (s *siteHarness) restart() {
	s.t.Helper()
	s.m = failover.NewMetrics(nil)
	eng, err := failover.New(failover.Options{Config: s.cfg, Store: s.store, Provider: s.cloud, Sync: s.cloud,
		Notifier: s.notes, Now: s.clk.Now, Metrics: s.m})
	if err != nil {
		s.t.Fatal(err)
	}
	s.eng = eng
}

// beat delivers one heartbeat of each site, now, and returns how many were stored.
func (s *siteHarness) beat(sites ...string) int {
	s.t.Helper()
	var hbs []failover.Heartbeat
	for _, site := range sites {
		hbs = append(hbs, failover.Heartbeat{Site: site, At: s.clk.Now()})
	}
	res, err := s.eng.Observe(s.ctx, nil, hbs)
	if err != nil {
		s.t.Fatal(err)
	}
	return res.Heartbeats
}

func (s *siteHarness) check() {
	s.t.Helper()
	if err := s.eng.CheckSites(s.ctx); err != nil {
		s.t.Fatal(err)
	}
}

func (s *siteHarness) reconcileAll() {
	s.t.Helper()
	for _, vc := range s.cfg.Fleet {
		s.reconcile(vc.Name)
	}
}

func (s *siteHarness) incidents(validator string) []failover.Incident {
	s.t.Helper()
	incs, err := s.store.ListIncidents(s.ctx, failover.ListOptions{Validator: validator})
	if err != nil {
		s.t.Fatal(err)
	}
	return incs
}

func (s *siteHarness) validator(name string) failover.ValidatorRecord {
	s.t.Helper()
	v, err := s.store.GetValidator(s.ctx, name)
	if err != nil {
		s.t.Fatalf("validator %s: %v", name, err)
	}
	return v
}

func (s *siteHarness) siteDown(site string) float64 {
	return testutil.ToFloat64(s.m.SiteDown.WithLabelValues(site))
}

func (s *siteHarness) outages(site string) float64 {
	return testutil.ToFloat64(s.m.SiteOutages.WithLabelValues(site))
}

// wantNoIncident fails if the validator has any incident.
func (s *siteHarness) wantNoIncident(names ...string) {
	s.t.Helper()
	for _, name := range names {
		if incs := s.incidents(name); len(incs) != 0 {
			s.t.Fatalf("%s has incidents: %+v", name, incs)
		}
	}
}

// silenceBasement watches both sites from the start, keeps garage beating
// and lets basement fall silent after its heartbeat at start; it returns
// once basement has been silent for exactly siteDownAfter and checked.
func (s *siteHarness) silenceBasement() {
	s.t.Helper()
	s.check() // failoverd starts watching
	if n := s.beat("basement", "garage"); n != 2 {
		s.t.Fatalf("%d heartbeats stored, want 2", n)
	}
	for range 4 {
		s.clk.Advance(time.Minute)
		s.beat("garage")
		s.check()
		s.reconcileAll()
		s.wantNoIncident("eth-1", "eth-2", "eth-3")
	}
	s.clk.Advance(59 * time.Second)
	s.check()
	s.reconcileAll()
	s.wantNoIncident("eth-1", "eth-2", "eth-3")
	if s.siteDown("basement") != 0 {
		s.t.Fatal("basement down before siteDownAfter")
	}
	s.clk.Advance(time.Second)
	s.check()
}

// TestSiteSilenceOpensIncidentPerValidator: a site that stops sending its
// Watchdog for siteDownAfter gets an incident for each of its validators,
// none elsewhere; the reason says why; the silence already was the
// hold-down; a heartbeat that returns moves the incidents to recovering.
func TestSiteSilenceOpensIncidentPerValidator(t *testing.T) {
	s := newSiteHarness(t, nil)
	s.silenceBasement()
	if s.siteDown("basement") != 1 || s.siteDown("garage") != 0 || s.outages("basement") != 1 {
		t.Fatalf("site_down basement %v garage %v, outages %v", s.siteDown("basement"), s.siteDown("garage"), s.outages("basement"))
	}
	s.reconcileAll()
	s.wantNoIncident("eth-3")
	const cause = "site basement silent: no Watchdog heartbeat since 2026-11-21T09:00:00Z (siteDownAfter 5m)"
	for _, name := range []string{"eth-1", "eth-2"} {
		incs := s.incidents(name)
		if len(incs) != 1 {
			t.Fatalf("%s: %d incidents, want 1", name, len(incs))
		}
		inc := incs[0]
		if inc.Site != "basement" || !inc.FiringSince.Equal(start) {
			t.Fatalf("%s: site %q firing since %s, want basement since %s", inc.ID, inc.Site, inc.FiringSince, start)
		}
		if len(inc.History) == 0 || !strings.Contains(inc.History[0].Cause, cause) {
			t.Fatalf("%s: history does not say why: %+v", inc.ID, inc.History)
		}
		// Five silent minutes are more than confirmFor (1m): the incident
		// did not wait another hold-down before provisioning.
		if inc.State != failover.StateSyncing || inc.Standby == nil {
			t.Fatalf("%s is %s (%s), want syncing with a standby", inc.ID, inc.State, inc.Reason)
		}
	}
	if h := s.wantState("eth-1", failover.StateSyncing).History; h[1].To != failover.StateProvisioning {
		t.Fatalf("history %+v", h)
	}
	// Checks repeat every resync: they change nothing while the site stays silent.
	before := s.validator("eth-1").Version
	s.clk.Advance(30 * time.Second)
	s.beat("garage")
	s.check()
	s.reconcileAll()
	if got := s.validator("eth-1").Version; got != before {
		t.Fatalf("a repeated check rewrote the ledger (%s -> %s)", before, got)
	}
	if s.outages("basement") != 1 || len(s.incidents("eth-1")) != 1 {
		t.Fatal("a repeated check counted or opened again")
	}

	// The basement is back: its heartbeat resolves the outage at once (no
	// wait for the next resync), and the incidents go to recovering.
	if n := s.beat("basement"); n != 1 {
		t.Fatalf("%d heartbeats stored", n)
	}
	for _, name := range []string{"eth-1", "eth-2"} {
		r := s.validator(name).Alerts[failover.SiteDownFingerprint("basement")]
		if r.Status != failover.AlertResolved || r.AlertName != failover.SiteDownAlertName || !r.EndsAt.Equal(s.clk.Now()) {
			t.Fatalf("%s: site outage record %+v after the heartbeat", name, r)
		}
	}
	s.reconcileAll()
	s.wantState("eth-1", failover.StateRecovering)
	s.wantState("eth-2", failover.StateRecovering)
	s.wantNoIncident("eth-3")
	if s.siteDown("basement") != 0 {
		t.Fatal("site_down still 1 after the heartbeat returned")
	}

	// The HA pair's second Alertmanager delivers the same heartbeat, and
	// the first one again a few seconds later: nothing changes.
	versions := map[string]string{}
	hist := map[string]int{}
	for _, name := range []string{"eth-1", "eth-2"} {
		versions[name] = s.validator(name).Version
		hist[name] = len(s.incident(name).History)
	}
	if n := s.beat("basement"); n != 0 {
		t.Fatalf("a duplicate heartbeat was stored (%d)", n)
	}
	s.clk.Advance(5 * time.Second)
	if n := s.beat("basement"); n != 0 {
		t.Fatalf("a heartbeat within heartbeat.resolution was stored (%d)", n)
	}
	s.check()
	s.reconcileAll()
	for _, name := range []string{"eth-1", "eth-2"} {
		if v := s.validator(name).Version; v != versions[name] {
			t.Fatalf("%s: duplicate heartbeats rewrote the ledger", name)
		}
		inc := s.wantState(name, failover.StateRecovering)
		if len(inc.History) != hist[name] {
			t.Fatalf("%s: duplicate heartbeats added history: %+v", name, inc.History[hist[name]:])
		}
	}
	if site, err := s.store.GetSite(s.ctx, "basement"); err != nil || site.HeartbeatsSeen != 2 {
		t.Fatalf("basement %+v %v, want 2 heartbeats stored", site, err)
	}

	// Past the keep-warm time the standbys go and the incidents close.
	s.clk.Advance(s.cfg.Engine.KeepWarm)
	s.beat("basement", "garage")
	s.check()
	s.reconcileAll()
	s.wantState("eth-1", failover.StateClosed)
	s.wantState("eth-2", failover.StateClosed)
	if s.cloud.Live() != 0 {
		t.Fatalf("%d standbys live", s.cloud.Live())
	}
}

// TestSiteNeverHeardOpensNothing: a fresh install with no Watchdog routed to
// failoverd must not open an incident for everybody; the gap is a metric.
func TestSiteNeverHeardOpensNothing(t *testing.T) {
	s := newSiteHarness(t, nil)
	s.check()
	s.clk.Advance(time.Hour)
	s.check()
	s.reconcileAll()
	s.wantNoIncident("eth-1", "eth-2", "eth-3")
	if got := testutil.ToFloat64(s.m.SiteNeverHeard.WithLabelValues("basement")); got != 1 {
		t.Fatalf("site_never_heard basement = %v, want 1", got)
	}
	if s.siteDown("basement") != 0 {
		t.Fatal("a site never heard from is down")
	}
	// Once heard from it is watched.
	s.beat("basement")
	s.check()
	if got := testutil.ToFloat64(s.m.SiteNeverHeard.WithLabelValues("basement")); got != 0 {
		t.Fatalf("site_never_heard basement = %v after a heartbeat", got)
	}
	s.clk.Advance(5 * time.Minute)
	s.check()
	s.reconcileAll()
	if len(s.incidents("eth-1")) != 1 || len(s.incidents("eth-2")) != 1 {
		t.Fatal("a site heard from once and then silent was not found down")
	}
}

// TestSiteFailoverdDowntimeIsNotAnOutage: failoverd itself was down for an
// hour; the stored heartbeat is an hour old. A restarted failoverd waits a
// whole siteDownAfter for a heartbeat before it calls the site down.
func TestSiteFailoverdDowntimeIsNotAnOutage(t *testing.T) {
	s := newSiteHarness(t, nil)
	s.check()
	s.beat("basement", "garage")
	s.clk.Advance(time.Hour) // failoverd is down: no check, no webhook
	s.restart()
	s.check()
	s.clk.Advance(4 * time.Minute)
	s.beat("garage")
	s.check()
	s.reconcileAll()
	s.wantNoIncident("eth-1", "eth-2", "eth-3")
	// The basement's Alertmanager is back in the loop before the window ends.
	s.clk.Advance(59 * time.Second)
	s.beat("basement", "garage")
	s.check()
	s.clk.Advance(4 * time.Minute)
	s.beat("basement", "garage")
	s.check()
	s.reconcileAll()
	s.wantNoIncident("eth-1", "eth-2", "eth-3")
	if s.outages("basement") != 0 {
		t.Fatal("an outage was counted")
	}

	// Another restart, and this time the basement stays silent: it is down
	// once failoverd has watched a whole siteDownAfter, and the silence
	// counts from when failoverd started watching.
	last := s.clk.Now()
	s.clk.Advance(time.Hour)
	s.restart()
	s.check()
	watching := s.clk.Now()
	s.clk.Advance(5*time.Minute - time.Second)
	s.beat("garage")
	s.check()
	s.reconcileAll()
	s.wantNoIncident("eth-1", "eth-2")
	s.clk.Advance(time.Second)
	s.check()
	s.reconcileAll()
	inc := s.incident("eth-1")
	if !inc.FiringSince.Equal(watching) {
		t.Fatalf("firing since %s, want %s (when failoverd started watching)", inc.FiringSince, watching)
	}
	if want := "no Watchdog heartbeat since " + last.Format(time.RFC3339); !strings.Contains(inc.Reason+inc.History[0].Cause, want) {
		t.Fatalf("reason %q, history %+v: want %q", inc.Reason, inc.History, want)
	}
	if len(s.incidents("eth-2")) != 1 {
		t.Fatal("eth-2 has no incident")
	}
	s.wantNoIncident("eth-3")
}

// TestSiteOutageSurvivesRestart: the decision is stored. A new engine on the
// same store (a restart, a new leader) keeps the incidents open while the
// site stays silent, and resolves them when it is heard from.
func TestSiteOutageSurvivesRestart(t *testing.T) {
	s := newSiteHarness(t, nil)
	s.silenceBasement()
	s.reconcileAll()
	s.wantState("eth-1", failover.StateSyncing)

	s.clk.Advance(time.Minute)
	s.restart()
	s.beat("garage")
	s.check()
	s.reconcileAll()
	for _, name := range []string{"eth-1", "eth-2"} {
		if r := s.validator(name).Alerts[failover.SiteDownFingerprint("basement")]; r.Status != failover.AlertFiring {
			t.Fatalf("%s: the restart resolved the outage: %+v", name, r)
		}
		if inc := s.incident(name); inc.State == failover.StateRecovering || inc.State == failover.StateClosed || len(s.incidents(name)) != 1 {
			t.Fatalf("%s after the restart: %s (%s)", name, inc.State, inc.Reason)
		}
	}
	if s.siteDown("basement") != 1 || s.outages("basement") != 0 {
		t.Fatalf("after restart: site_down %v, outages %v (the outage was counted before)", s.siteDown("basement"), s.outages("basement"))
	}
	// Still silent once the new engine has watched for siteDownAfter: same
	// outage, same incidents.
	s.clk.Advance(5 * time.Minute)
	s.beat("garage")
	s.check()
	s.reconcileAll()
	if len(s.incidents("eth-1")) != 1 || s.outages("basement") != 0 {
		t.Fatal("the same outage opened or counted again")
	}
	s.beat("basement")
	s.reconcileAll()
	s.wantState("eth-1", failover.StateRecovering)
	s.wantState("eth-2", failover.StateRecovering)
}

// TestSiteOutageValidatorAlertKeepsIncidentOpen: a validator whose own alert
// still fires when its site is heard from again keeps its incident; the
// site's other validators recover.
func TestSiteOutageValidatorAlertKeepsIncidentOpen(t *testing.T) {
	s := newSiteHarness(t, nil)
	s.check()
	s.beat("basement", "garage")
	// eth-1's validator client dies just as the basement goes dark.
	s.fire("eth-1", "vc-down", start)
	s.reconcile("eth-1")
	s.wantState("eth-1", failover.StateConfirming)
	s.clk.Advance(5 * time.Minute)
	s.beat("garage")
	s.check()
	s.reconcileAll()
	if n := len(s.incidents("eth-1")); n != 1 {
		t.Fatalf("eth-1 has %d incidents, want its one", n)
	}
	s.wantState("eth-1", failover.StateSyncing)
	s.wantState("eth-2", failover.StateSyncing)

	s.beat("basement")
	s.reconcileAll()
	s.wantState("eth-1", failover.StateSyncing) // its own alert still fires
	s.wantState("eth-2", failover.StateRecovering)

	s.resolve("eth-1", "vc-down", start, s.clk.Now())
	s.reconcile("eth-1")
	s.wantState("eth-1", failover.StateRecovering)
}

// TestSiteOutageFlapsAndTeardown: a site that goes dark again while its
// standbys are warm re-uses them (the same incident); a person's teardown
// during an outage is final for that outage.
func TestSiteOutageFlapsAndTeardown(t *testing.T) {
	s := newSiteHarness(t, nil)
	s.silenceBasement()
	s.reconcileAll()
	s.beat("basement")
	s.reconcileAll()
	first := s.wantState("eth-1", failover.StateRecovering)
	created := s.cloud.Created()

	// Dark again for siteDownAfter, within the keep-warm time (10m).
	s.clk.Advance(5 * time.Minute)
	s.beat("garage")
	s.check()
	s.reconcileAll()
	inc := s.incident("eth-1")
	if inc.ID != first.ID || inc.State != failover.StateSyncing && inc.State != failover.StateReady {
		t.Fatalf("flap: %s is %s (%s), want %s re-used", inc.ID, inc.State, inc.Reason, first.ID)
	}
	if s.cloud.Created() != created {
		t.Fatalf("the flap created %d new standbys", s.cloud.Created()-created)
	}
	if s.outages("basement") != 2 {
		t.Fatalf("outages %v, want 2", s.outages("basement"))
	}

	// A person ends eth-1's incident while the site stays dark: the same
	// outage must not open another.
	if _, err := s.eng.Teardown(s.ctx, inc.ID, "alice"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		s.clk.Advance(time.Minute)
		s.beat("garage")
		s.check()
		s.reconcileAll()
	}
	if incs := s.incidents("eth-1"); len(incs) != 1 || incs[0].State != failover.StateClosed {
		t.Fatalf("after teardown: %+v", incs)
	}

	// The next outage after the site came back is a new one for eth-1.
	s.beat("basement")
	s.reconcileAll()
	s.clk.Advance(5 * time.Minute)
	s.beat("garage")
	s.check()
	s.reconcileAll()
	if incs := s.incidents("eth-1"); len(incs) != 2 || !incs[1].State.Open() {
		t.Fatalf("a new outage after the teardown: %+v", incs)
	}
}

// TestSiteOutageDetectionOff: siteDownAfter 0s never finds a site down, and
// switching it off resolves an outage already recorded.
func TestSiteOutageDetectionOff(t *testing.T) {
	s := newSiteHarness(t, nil)
	s.silenceBasement()
	s.reconcileAll()
	s.wantState("eth-1", failover.StateSyncing)
	s.cfg.Heartbeat.SiteDownAfter = 0
	s.restart()
	s.check()
	s.reconcileAll()
	s.wantState("eth-1", failover.StateRecovering)
	s.clk.Advance(time.Hour)
	s.check()
	s.reconcileAll()
	if n := len(s.incidents("eth-1")); n != 1 {
		t.Fatalf("%d incidents with site outage detection off", n)
	}
}

// TestSiteOutageFollowsTheFleet: a validator moved to another site no longer
// carries the outage of the old one.
func TestSiteOutageFollowsTheFleet(t *testing.T) {
	s := newSiteHarness(t, nil)
	s.silenceBasement()
	s.reconcileAll()
	s.cfg.Fleet[1].Site = "garage"
	s.restart()
	s.beat("garage")
	s.check()
	s.reconcileAll()
	s.wantState("eth-2", failover.StateRecovering)
	s.wantState("eth-1", failover.StateSyncing)
}

// TestSiteOutageAfterAClosedIncident: an incident that closed while the site
// was already silent (but not yet known down) did not handle the site
// outage: the outage still opens one.
func TestSiteOutageAfterAClosedIncident(t *testing.T) {
	s := newSiteHarness(t, nil)
	s.check()
	s.beat("basement", "garage")
	s.fire("eth-1", "vc-down", start)
	s.reconcile("eth-1")
	s.clk.Advance(30 * time.Second)
	s.resolve("eth-1", "vc-down", start, s.clk.Now())
	s.reconcile("eth-1")
	s.wantState("eth-1", failover.StateClosed)
	s.clk.Advance(4*time.Minute + 30*time.Second)
	s.beat("garage")
	s.check()
	s.reconcileAll()
	incs := s.incidents("eth-1")
	if len(incs) != 2 || !incs[1].State.Open() || !strings.Contains(incs[1].History[0].Cause, "site basement silent") {
		t.Fatalf("eth-1 incidents after the site went down: %+v", incs)
	}
	if len(s.incidents("eth-2")) != 1 {
		t.Fatal("eth-2 has no incident")
	}
}
