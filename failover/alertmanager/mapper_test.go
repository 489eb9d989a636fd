package alertmanager

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/config"
)

func testConfig() *config.Config {
	return &config.Config{
		Alerts: config.Alerts{
			ValidatorLabel: "validator",
			SiteLabel:      "site",
			Matchers:       []string{`failover="true"`},
		},
		Heartbeat: config.Heartbeat{AlertName: "Watchdog", SiteLabel: "site", DefaultSite: "home"},
		Fleet: []config.Validator{
			{Name: "eth-mainnet-1", Site: "basement"},
			{Name: "eth-mainnet-2", Site: "garage"},
			{Name: "bera-1"}, // no site: the alert's site label is used
		},
	}
}

var (
	t0  = time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	now = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
)

// alert builds a decoded-looking alert from "k=v" labels.
func alert(status failover.AlertStatus, kv ...string) Alert {
	ls := make(map[string]string, len(kv))
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		ls[k] = v
	}
	a := Alert{Status: status, Labels: ls, StartsAt: t0, Fingerprint: Fingerprint(ls)}
	if status == failover.AlertResolved {
		a.EndsAt = t0.Add(time.Hour)
	}
	return a
}

func down(status failover.AlertStatus, validator string, extra ...string) Alert {
	return alert(status, append([]string{"alertname=ValidatorClientDown", "failover=true", "validator=" + validator}, extra...)...)
}

func obs(a Alert, site string) failover.Observation {
	return failover.Observation{
		Validator: a.Labels["validator"], Site: site, AlertName: a.Labels["alertname"],
		Fingerprint: a.Fingerprint, Status: a.Status, StartsAt: a.StartsAt, EndsAt: a.EndsAt,
	}
}

func msgOf(alerts ...Alert) *Message { return &Message{Version: "4", Alerts: alerts} }

func TestMapSamples(t *testing.T) {
	firingStart := time.Date(2026, 11, 21, 8, 59, 34, 387112228, time.UTC)
	resolvedAt := time.Date(2026, 11, 21, 8, 59, 34, 0, time.UTC)
	tests := []struct {
		file string
		want Mapped
	}{
		{"validator-down-firing.json", Mapped{Observations: []failover.Observation{{
			Validator: "eth-mainnet-1", Site: "basement", AlertName: "ValidatorClientDown",
			Fingerprint: "ef617387aa3ff4e3", Status: failover.AlertFiring, StartsAt: firingStart,
		}}}},
		{"validator-down-resolved.json", Mapped{Observations: []failover.Observation{{
			Validator: "eth-mainnet-1", Site: "basement", AlertName: "ValidatorClientDown",
			Fingerprint: "ef617387aa3ff4e3", Status: failover.AlertResolved, StartsAt: resolvedAt, EndsAt: resolvedAt,
		}}}},
		// The heartbeat is dated by receipt, not by the Watchdog's old startsAt.
		{"watchdog-firing.json", Mapped{Heartbeats: []failover.Heartbeat{{Site: "basement", At: now}}}},
	}
	m, err := NewMapper(testConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			msg, err := Decode(readTestdata(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Map(msg, now); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Map =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestMap(t *testing.T) {
	v1, v2 := down(failover.AlertFiring, "eth-mainnet-1"), down(failover.AlertFiring, "eth-mainnet-2")
	v1Resolved := down(failover.AlertResolved, "eth-mainnet-1")
	bera := down(failover.AlertFiring, "bera-1", "site=den")
	beraNoSite := down(failover.AlertFiring, "bera-1")
	misplaced := down(failover.AlertFiring, "eth-mainnet-1", "site=attic") // fleet says basement
	notMatched := alert(failover.AlertFiring, "alertname=ValidatorClientDown", "failover=false", "validator=eth-mainnet-1")
	noMatchLabel := alert(failover.AlertFiring, "alertname=ValidatorClientDown", "validator=eth-mainnet-1")
	noValidator := alert(failover.AlertFiring, "alertname=NodeDown", "failover=true")
	emptyValidator := alert(failover.AlertFiring, "alertname=NodeDown", "failover=true", "validator=")
	unknown := down(failover.AlertFiring, "eth-holesky-9")
	wd := alert(failover.AlertFiring, "alertname=Watchdog", "site=basement")
	wdOffsite := alert(failover.AlertFiring, "alertname=Watchdog", "site=offsite")
	wdNoSite := alert(failover.AlertFiring, "alertname=Watchdog")
	wdResolved := alert(failover.AlertResolved, "alertname=Watchdog", "site=basement")
	badStatus := down("pending", "eth-mainnet-1")

	tests := []struct {
		name string
		cfg  func(*config.Config)
		msg  *Message
		want Mapped
	}{
		{name: "empty", msg: msgOf(), want: Mapped{}},
		{name: "firing", msg: msgOf(v1), want: Mapped{Observations: []failover.Observation{obs(v1, "basement")}}},
		{name: "resolved keeps endsAt", msg: msgOf(v1Resolved), want: Mapped{Observations: []failover.Observation{obs(v1Resolved, "basement")}}},
		{
			name: "two validators in one payload", msg: msgOf(v1, v2),
			want: Mapped{Observations: []failover.Observation{obs(v1, "basement"), obs(v2, "garage")}},
		},
		{name: "fleet site wins over label", msg: msgOf(misplaced), want: Mapped{Observations: []failover.Observation{obs(misplaced, "basement")}}},
		{name: "label site when fleet has none", msg: msgOf(bera), want: Mapped{Observations: []failover.Observation{obs(bera, "den")}}},
		{name: "default site when fleet and label have none", msg: msgOf(beraNoSite), want: Mapped{Observations: []failover.Observation{obs(beraNoSite, "home")}}},
		{
			name: "no site anywhere",
			cfg:  func(c *config.Config) { c.Heartbeat.DefaultSite = "" },
			msg:  msgOf(beraNoSite),
			want: Mapped{Observations: []failover.Observation{obs(beraNoSite, "")}},
		},
		{name: "not matched", msg: msgOf(notMatched), want: Mapped{Ignored: map[string]int{ReasonNotMatched: 1}}},
		{name: "matcher label absent", msg: msgOf(noMatchLabel), want: Mapped{Ignored: map[string]int{ReasonNotMatched: 1}}},
		{name: "no validator label", msg: msgOf(noValidator), want: Mapped{Ignored: map[string]int{ReasonNoValidatorLabel: 1}}},
		{name: "empty validator label", msg: msgOf(emptyValidator), want: Mapped{Ignored: map[string]int{ReasonNoValidatorLabel: 1}}},
		{name: "unknown validator", msg: msgOf(unknown), want: Mapped{Ignored: map[string]int{ReasonUnknownValidator: 1}}},
		{name: "heartbeat", msg: msgOf(wd), want: Mapped{Heartbeats: []failover.Heartbeat{{Site: "basement", At: now}}}},
		{name: "heartbeat default site", msg: msgOf(wdNoSite), want: Mapped{Heartbeats: []failover.Heartbeat{{Site: "home", At: now}}}},
		{
			name: "heartbeat without any site",
			cfg:  func(c *config.Config) { c.Heartbeat.DefaultSite = "" },
			msg:  msgOf(wdNoSite),
			want: Mapped{Ignored: map[string]int{ReasonHeartbeatNoSite: 1}},
		},
		{name: "heartbeat resolved", msg: msgOf(wdResolved), want: Mapped{Ignored: map[string]int{ReasonHeartbeatResolved: 1}}},
		{
			name: "heartbeat repeats collapse, sites do not",
			msg:  msgOf(wd, wdOffsite, wd),
			want: Mapped{Heartbeats: []failover.Heartbeat{{Site: "basement", At: now}, {Site: "offsite", At: now}}},
		},
		{
			name: "heartbeat needs no matcher",
			cfg:  func(c *config.Config) { c.Alerts.Matchers = []string{`team="staking"`} },
			msg:  msgOf(wd),
			want: Mapped{Heartbeats: []failover.Heartbeat{{Site: "basement", At: now}}},
		},
		{
			name: "heartbeat custom name and site label",
			cfg: func(c *config.Config) {
				c.Heartbeat = config.Heartbeat{AlertName: "DeadMansSwitch", SiteLabel: "cluster"}
			},
			msg: msgOf(wd, alert(failover.AlertFiring, "alertname=DeadMansSwitch", "cluster=rke2-home", "site=basement")),
			want: Mapped{
				Heartbeats: []failover.Heartbeat{{Site: "rke2-home", At: now}},
				Ignored:    map[string]int{ReasonNotMatched: 1}, // Watchdog is now an ordinary alert
			},
		},
		{
			name: "no heartbeat configured",
			cfg:  func(c *config.Config) { c.Heartbeat = config.Heartbeat{} },
			msg:  msgOf(wd),
			want: Mapped{Ignored: map[string]int{ReasonNotMatched: 1}},
		},
		{
			name: "custom validator label and matchers",
			cfg: func(c *config.Config) {
				c.Alerts.ValidatorLabel = "instance_name"
				c.Alerts.Matchers = []string{`severity=~"critical|page"`, `env!="test"`}
			},
			msg: msgOf(
				alert(failover.AlertFiring, "alertname=A", "severity=critical", "instance_name=eth-mainnet-2"),
				alert(failover.AlertFiring, "alertname=A", "severity=page", "env=test", "instance_name=eth-mainnet-2"),
				alert(failover.AlertFiring, "alertname=A", "severity=warning", "instance_name=eth-mainnet-2"),
				alert(failover.AlertFiring, "alertname=A", "severity=page", "validator=eth-mainnet-2"),
			),
			want: Mapped{
				Observations: []failover.Observation{{
					Validator: "eth-mainnet-2", Site: "garage", AlertName: "A", Status: failover.AlertFiring, StartsAt: t0,
					Fingerprint: Fingerprint(map[string]string{"alertname": "A", "severity": "critical", "instance_name": "eth-mainnet-2"}),
				}},
				Ignored: map[string]int{ReasonNotMatched: 2, ReasonNoValidatorLabel: 1},
			},
		},
		{
			// config.Config.Warnings says so at start: every alert naming a
			// fleet validator counts. Label names fall back to the defaults.
			name: "empty alerts config",
			cfg: func(c *config.Config) {
				c.Alerts = config.Alerts{}
			},
			msg: msgOf(v1, notMatched, bera, noValidator, unknown),
			want: Mapped{
				Observations: []failover.Observation{obs(v1, "basement"), obs(notMatched, "basement"), obs(bera, "den")},
				Ignored:      map[string]int{ReasonNoValidatorLabel: 1, ReasonUnknownValidator: 1},
			},
		},
		{
			// Without group_by Alertmanager sends everything in one delivery.
			name: "groupBy-less payload with many alerts",
			msg: msgOf(
				v1, wd, notMatched, v2, noValidator, unknown, v1Resolved, wdResolved, bera,
				unknown, noMatchLabel, wdNoSite, emptyValidator,
			),
			want: Mapped{
				Observations: []failover.Observation{
					obs(v1, "basement"), obs(v2, "garage"), obs(v1Resolved, "basement"), obs(bera, "den"),
				},
				Heartbeats: []failover.Heartbeat{{Site: "basement", At: now}, {Site: "home", At: now}},
				Ignored: map[string]int{
					ReasonNotMatched: 2, ReasonNoValidatorLabel: 2, ReasonUnknownValidator: 2, ReasonHeartbeatResolved: 1,
				},
			},
		},
		{
			name: "truncated alerts are counted",
			msg:  &Message{Version: "4", Alerts: []Alert{v1}, TruncatedAlerts: 12},
			want: Mapped{Observations: []failover.Observation{obs(v1, "basement")}, Ignored: map[string]int{ReasonTruncated: 12}},
		},
		{
			name: "invalid status (not from Decode)",
			msg:  msgOf(badStatus, v2),
			want: Mapped{Observations: []failover.Observation{obs(v2, "garage")}, Ignored: map[string]int{ReasonInvalidStatus: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			if tt.cfg != nil {
				tt.cfg(cfg)
			}
			m, err := NewMapper(cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := m.Map(tt.msg, now)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Map =\n%+v\nwant\n%+v", got, tt.want)
			}
			// Every alert is accounted for exactly once; heartbeats of one
			// site may collapse, so they account for at least one alert each.
			rest := len(tt.msg.Alerts) - len(got.Observations)
			for r, n := range got.Ignored {
				if r != ReasonTruncated {
					rest -= n
				}
			}
			if rest < len(got.Heartbeats) || (rest > 0) != (len(got.Heartbeats) > 0) {
				t.Errorf("%d alerts unaccounted for with %d heartbeats", rest, len(got.Heartbeats))
			}
		})
	}
}

func TestNewMapperErrors(t *testing.T) {
	tests := []struct {
		name     string
		matchers []string
		want     string
	}{
		{"no operator", []string{`failover="true"`, `failover`}, `alerts.matchers[1] "failover"`},
		{"bad regex", []string{`site=~"("`}, `alerts.matchers[0]`},
		{"bad name", []string{`1x="a"`}, `"1x=\"a\""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Alerts.Matchers = tt.matchers
			_, err := NewMapper(cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewMapper error = %v, want it to contain %s", err, tt.want)
			}
		})
	}
}

// The mapper is a snapshot: editing the config afterwards changes nothing.
func TestMapperSnapshot(t *testing.T) {
	cfg := testConfig()
	m, err := NewMapper(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Fleet = nil
	cfg.Alerts.Matchers[0] = `failover="false"`
	got := m.Map(msgOf(down(failover.AlertFiring, "eth-mainnet-1")), now)
	if len(got.Observations) != 1 {
		t.Errorf("Map after config edit = %+v", got)
	}
}

func TestReasons(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Reasons() {
		if r == "" || seen[r] {
			t.Errorf("reason %q empty or repeated", r)
		}
		seen[r] = true
	}
	if want := 7; len(seen) != want {
		t.Errorf("%d reasons, want %d: %v", len(seen), want, seen)
	}
}
