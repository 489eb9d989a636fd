package failover

import (
	"fmt"
	"math/rand"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 21, 8, 59, 34, 387112228, time.UTC)

func obs(status AlertStatus, starts, ends time.Time) Observation {
	return Observation{Validator: "v1", Site: "basement", AlertName: "ValidatorClientDown",
		Fingerprint: "ef617387aa3ff4e3", Status: status, StartsAt: starts, EndsAt: ends}
}

func TestApplyLedger(t *testing.T) {
	firing := obs(AlertFiring, t0, time.Time{})
	// The real resolve sample carries startsAt without its fraction.
	resolved := obs(AlertResolved, t0.Truncate(time.Second), t0.Truncate(time.Second))
	refire := obs(AlertFiring, t0.Add(10*time.Minute), time.Time{})
	oldResolve := obs(AlertResolved, t0.Add(-time.Hour), t0.Add(-30*time.Minute))

	tests := []struct {
		name       string
		seq        []Observation
		wantFiring bool
		changes    int
	}{
		{"firing", []Observation{firing}, true, 1},
		{"duplicate firing", []Observation{firing, firing, firing}, true, 1},
		{"firing then resolve", []Observation{firing, resolved}, false, 2},
		{"resolve overtakes firing", []Observation{resolved, firing}, false, 1},
		{"duplicate resolve", []Observation{firing, resolved, resolved}, false, 2},
		{"new instance after resolve", []Observation{firing, resolved, refire}, true, 3},
		{"late copy of old firing after refire", []Observation{refire, firing}, true, 1},
		{"late resolve of an earlier instance", []Observation{firing, oldResolve}, true, 1},
		{"other validator ignored", []Observation{{Validator: "v2", Fingerprint: "x", Status: AlertFiring, StartsAt: t0}}, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := ValidatorRecord{Name: "v1"}
			changes := 0
			for _, o := range tt.seq {
				if v.Apply([]Observation{o}) {
					changes++
				}
			}
			if changes != tt.changes {
				t.Errorf("changes = %d, want %d", changes, tt.changes)
			}
			if got, _ := v.Firing(); got != tt.wantFiring {
				t.Errorf("firing = %v, want %v", got, tt.wantFiring)
			}
		})
	}
}

// TestApplyOrderIndependent: any order of the same deliveries, with any
// duplicates, leaves the same ledger. Deliveries race and peers duplicate.
func TestApplyOrderIndependent(t *testing.T) {
	deliveries := []Observation{
		obs(AlertFiring, t0, time.Time{}),
		obs(AlertResolved, t0.Truncate(time.Second), t0.Add(5*time.Minute)),
		{Validator: "v1", AlertName: "BeaconDown", Fingerprint: "b", Status: AlertFiring, StartsAt: t0.Add(time.Minute)},
	}
	var want map[string]AlertRecord
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 200; i++ {
		seq := append([]Observation(nil), deliveries...)
		for j := 0; j < rng.Intn(4); j++ {
			seq = append(seq, deliveries[rng.Intn(len(deliveries))])
		}
		rng.Shuffle(len(seq), func(a, b int) { seq[a], seq[b] = seq[b], seq[a] })
		v := ValidatorRecord{Name: "v1"}
		v.Apply(seq)
		if want == nil {
			want = v.Alerts
			continue
		}
		if fmt.Sprint(v.Alerts) != fmt.Sprint(want) {
			t.Fatalf("order %d gave %v, want %v", i, v.Alerts, want)
		}
	}
	if r := want["ef617387aa3ff4e3"]; r.Status != AlertResolved {
		t.Fatalf("resolved alert ended %s", r.Status)
	}
}

func TestUnhandled(t *testing.T) {
	v := ValidatorRecord{Name: "v1"}
	v.Apply([]Observation{obs(AlertFiring, t0, time.Time{})})
	if ok, since := v.Unhandled(); !ok || !since.Equal(t0) {
		t.Fatalf("Unhandled = %v %v", ok, since)
	}
	v.HandledThrough = v.LatestFiringStart()
	if ok, _ := v.Unhandled(); ok {
		t.Fatal("handled alert still unhandled")
	}
	if ok, _ := v.Firing(); !ok {
		t.Fatal("handled alert no longer firing")
	}
	v.Apply([]Observation{{Validator: "v1", Fingerprint: "new", Status: AlertFiring, StartsAt: t0.Add(time.Hour)}})
	if ok, since := v.Unhandled(); !ok || !since.Equal(t0.Add(time.Hour)) {
		t.Fatalf("new outage not unhandled: %v %v", ok, since)
	}
}

func TestLedgerBounded(t *testing.T) {
	v := ValidatorRecord{Name: "v1"}
	for i := 0; i < 3*maxAlertsPerValidator; i++ {
		v.Apply([]Observation{{Validator: "v1", Fingerprint: fmt.Sprint(i), Status: AlertResolved,
			StartsAt: t0, EndsAt: t0.Add(time.Duration(i) * time.Second)}})
	}
	v.Apply([]Observation{{Validator: "v1", Fingerprint: "live", Status: AlertFiring, StartsAt: t0}})
	if len(v.Alerts) > maxAlertsPerValidator {
		t.Fatalf("ledger holds %d", len(v.Alerts))
	}
	if ok, _ := v.Firing(); !ok {
		t.Fatal("pruning dropped a firing alert")
	}
}
