package alertmanager

import (
	"errors"
	"os"
	"path/filepath"
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
	})
}
