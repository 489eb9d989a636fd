package alertmanager

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/failoverd/failoverd/failover"
)

func FuzzDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files: %v", err)
	}
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		``, `{`, `null`, `[]`, `"4"`, `{"version":4}`, `{"version":"3"}`,
		`{"version":"4","alerts":null}`,
		`{"version":"4","alerts":[{}]}`,
		`{"version":"4","alerts":[null]}`,
		`{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"Watchdog"}}]}`,
		`{"version":"4","alerts":[{"status":"resolved","labels":{"alertname":"A","failover":"true","validator":"v1"},"fingerprint":""}]}`,
		`{"version":"4","truncatedAlerts":18446744073709551615,"alerts":[]}`,
		`{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"A"},"startsAt":"0000-00-00"}]}`,
	} {
		f.Add([]byte(s))
	}
	cfg := testConfig()
	m, err := NewMapper(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := Decode(data)
		if err != nil {
			if msg != nil {
				t.Fatalf("Decode returned a message with error %v", err)
			}
			if !errors.Is(err, ErrBadPayload) && !errors.Is(err, ErrVersion) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		for i, a := range msg.Alerts {
			if a.Status != failover.AlertFiring && a.Status != failover.AlertResolved {
				t.Fatalf("alerts[%d].status = %q", i, a.Status)
			}
			if a.Fingerprint == "" {
				t.Fatalf("alerts[%d] has no fingerprint", i)
			}
		}
		got := m.Map(msg, now)
		for _, o := range got.Observations {
			if o.Validator == "" || o.Fingerprint == "" {
				t.Fatalf("incomplete observation %+v", o)
			}
			if _, ok := cfg.Validator(o.Validator); !ok {
				t.Fatalf("observation for %q, not in the fleet", o.Validator)
			}
		}
		for _, h := range got.Heartbeats {
			if h.Site == "" || !h.At.Equal(now) {
				t.Fatalf("bad heartbeat %+v", h)
			}
		}
		// Every alert is accounted for exactly once: an observation (of
		// that alert, in order), an ignore reason, or a heartbeat.
		ignored := 0
		for reason, n := range got.Ignored {
			if n <= 0 {
				t.Fatalf("ignored[%s] = %d", reason, n)
			}
			if reason != ReasonTruncated {
				ignored += n
			}
		}
		if (got.Ignored[ReasonTruncated] > 0) != (msg.TruncatedAlerts > 0) {
			t.Fatalf("truncatedAlerts %d counted as %d", msg.TruncatedAlerts, got.Ignored[ReasonTruncated])
		}
		beats := len(msg.Alerts) - len(got.Observations) - ignored
		if beats < 0 || (beats == 0) != (len(got.Heartbeats) == 0) || len(got.Heartbeats) > beats {
			t.Fatalf("%d alerts gave %d observations, %d ignored and %d heartbeats", len(msg.Alerts), len(got.Observations), ignored, len(got.Heartbeats))
		}
		k := 0
		for _, a := range msg.Alerts {
			if k < len(got.Observations) && got.Observations[k].Fingerprint == a.Fingerprint && got.Observations[k].Status == a.Status {
				k++
			}
		}
		if k != len(got.Observations) {
			t.Fatalf("observations %+v are not the alerts' own, in order", got.Observations)
		}
		// Mapping has no hidden state: the same delivery maps the same.
		if again := m.Map(msg, now); !reflect.DeepEqual(again, got) {
			t.Fatalf("the same delivery mapped twice differently:\n%+v\n%+v", got, again)
		}
	})
}
