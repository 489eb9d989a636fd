package alertmanager

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/failoverd/failoverd/failover"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeSamples(t *testing.T) {
	tests := []struct {
		file        string
		status      failover.AlertStatus
		alertname   string
		fingerprint string
		startsAt    time.Time
		endsAt      time.Time
	}{
		{
			file: "validator-down-firing.json", status: failover.AlertFiring,
			alertname: "ValidatorClientDown", fingerprint: "ef617387aa3ff4e3",
			startsAt: time.Date(2026, 11, 21, 8, 59, 34, 387112228, time.UTC),
		},
		{
			file: "validator-down-resolved.json", status: failover.AlertResolved,
			alertname: "ValidatorClientDown", fingerprint: "ef617387aa3ff4e3",
			startsAt: time.Date(2026, 11, 21, 8, 59, 34, 0, time.UTC),
			endsAt:   time.Date(2026, 11, 21, 8, 59, 34, 0, time.UTC),
		},
		{
			file: "watchdog-firing.json", status: failover.AlertFiring,
			alertname: "Watchdog", fingerprint: "f4ae89bd19afd408",
			startsAt: time.Date(2026, 11, 21, 8, 59, 34, 387112228, time.UTC),
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			msg, err := Decode(readTestdata(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			if msg.Version != "4" || msg.Receiver != "failoverd" || msg.ExternalURL != "http://vm:19193" {
				t.Errorf("header = %q %q %q", msg.Version, msg.Receiver, msg.ExternalURL)
			}
			if len(msg.Alerts) != 1 {
				t.Fatalf("got %d alerts, want 1", len(msg.Alerts))
			}
			a := msg.Alerts[0]
			if a.Status != tt.status || a.Labels["alertname"] != tt.alertname || a.Fingerprint != tt.fingerprint {
				t.Errorf("alert = %s %s %s", a.Status, a.Labels["alertname"], a.Fingerprint)
			}
			if !a.StartsAt.Equal(tt.startsAt) || !a.EndsAt.Equal(tt.endsAt) {
				t.Errorf("times = %v..%v, want %v..%v", a.StartsAt, a.EndsAt, tt.startsAt, tt.endsAt)
			}
			// Our fingerprint must agree with the one Alertmanager sent.
			if got := Fingerprint(a.Labels); got != a.Fingerprint {
				t.Errorf("Fingerprint(labels) = %s, Alertmanager sent %s", got, a.Fingerprint)
			}
		})
	}
}

func TestDecodeValid(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		alerts int
		check  func(t *testing.T, m *Message)
	}{
		{
			name: "empty alerts", body: `{"version":"4","alerts":[]}`,
		},
		{
			name: "no alerts key", body: `{"version":"4"}`,
		},
		{
			name:   "unknown fields tolerated",
			body:   `{"version":"4","future":{"x":[1,2]},"alerts":[{"status":"firing","labels":{"alertname":"A"},"fingerprint":"abc","extra":true}]}`,
			alerts: 1,
			check: func(t *testing.T, m *Message) {
				if m.Alerts[0].Fingerprint != "abc" {
					t.Errorf("fingerprint = %q, want the one sent", m.Alerts[0].Fingerprint)
				}
			},
		},
		{
			name:   "missing fingerprint computed",
			body:   `{"version":"4","alerts":[{"status":"resolved","labels":{"b":"2","alertname":"A","a":"1"}}]}`,
			alerts: 1,
			check: func(t *testing.T, m *Message) {
				const want = "77a9d9e1f6be4cfb" // model.LabelSet.Fingerprint of the same labels
				if m.Alerts[0].Fingerprint != want {
					t.Errorf("fingerprint = %q, want %q", m.Alerts[0].Fingerprint, want)
				}
			},
		},
		{
			name:   "truncated",
			body:   `{"version":"4","truncatedAlerts":7,"alerts":[{"status":"firing","labels":{"alertname":"A"}}]}`,
			alerts: 1,
			check: func(t *testing.T, m *Message) {
				if m.TruncatedAlerts != 7 {
					t.Errorf("truncatedAlerts = %d", m.TruncatedAlerts)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Alerts) != tt.alerts {
				t.Fatalf("got %d alerts, want %d", len(m.Alerts), tt.alerts)
			}
			if tt.check != nil {
				tt.check(t, m)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		body string
		is   error
		// want are substrings the message must contain: it goes back to the sender.
		want []string
	}{
		{"empty body", ``, ErrBadPayload, []string{"unexpected end"}},
		{"syntax", `{"version":"4",}`, ErrBadPayload, []string{"offset 16"}},
		{"trailing garbage", `{"version":"4"} x`, ErrBadPayload, []string{"offset"}},
		{"array", `[]`, ErrBadPayload, []string{"offset"}},
		{"wrong type", `{"version":"4","truncatedAlerts":"x"}`, ErrBadPayload, []string{"offset", "truncatedAlerts"}},
		{"bad time", `{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"A"},"startsAt":"yesterday"}]}`, ErrBadPayload, []string{"yesterday"}},
		{"null", `null`, ErrVersion, []string{`""`, `"4"`}},
		{"version 3", `{"version":"3","alerts":[]}`, ErrVersion, []string{`"3"`, `"4"`}},
		{"no version", `{"alerts":[]}`, ErrVersion, []string{`""`}},
		{
			"bad status",
			`{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"A"}},{"status":"pending","labels":{"alertname":"A"}}]}`,
			ErrBadPayload, []string{"alerts[1].status", "pending"},
		},
		{"no status", `{"version":"4","alerts":[{"labels":{"alertname":"A"}}]}`, ErrBadPayload, []string{"alerts[0].status"}},
		{"no labels", `{"version":"4","alerts":[{"status":"firing"}]}`, ErrBadPayload, []string{"alerts[0].labels"}},
		{"empty labels", `{"version":"4","alerts":[{"status":"firing","labels":{}}]}`, ErrBadPayload, []string{"alerts[0].labels"}},
		{"no alertname", `{"version":"4","alerts":[{"status":"firing","labels":{"a":"b"}}]}`, ErrBadPayload, []string{"alerts[0].labels", "alertname"}},
		{"empty alertname", `{"version":"4","alerts":[{"status":"firing","labels":{"alertname":""}}]}`, ErrBadPayload, []string{"alertname"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.body))
			if err == nil {
				t.Fatalf("Decode = %+v, want error", m)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// The expected values come from prometheus/common/model.LabelSet.Fingerprint,
// the function Alertmanager uses; the samples' real fingerprints are checked
// in TestDecodeSamples.
func TestFingerprintMatchesAlertmanager(t *testing.T) {
	// More labels than the on-stack buffer holds.
	big := map[string]string{"alertname": "Big"}
	for i := range 40 {
		big[strings.Repeat("l", i+1)] = strings.Repeat("v", i)
	}
	tests := []struct {
		labels map[string]string
		want   string
	}{
		{map[string]string{}, "cbf29ce484222325"},
		{map[string]string{"alertname": "A"}, "d2c6efc389df0927"},
		{map[string]string{"alertname": "A", "validator": "v1", "site": "basement"}, "e516108b1d3535e0"},
		{map[string]string{"z": "", "a": "\xff", "alertname": "x\x00y"}, "f4fed98137ea3827"},
		{big, "4b3d99c9c2fc8f90"},
	}
	for i, tt := range tests {
		for range 3 { // map order varies between runs; the result must not
			if got := Fingerprint(tt.labels); got != tt.want {
				t.Errorf("set %d: Fingerprint = %s, want %s", i, got, tt.want)
			}
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	data := readTestdata(b, "validator-down-firing.json")
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Decode(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeNoFingerprint covers the path that hashes the labels.
func BenchmarkDecodeNoFingerprint(b *testing.B) {
	data := []byte(strings.Replace(string(readTestdata(b, "validator-down-firing.json")),
		`"fingerprint": "ef617387aa3ff4e3"`, `"fingerprint": ""`, 1))
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		m, err := Decode(data)
		if err != nil || m.Alerts[0].Fingerprint != "ef617387aa3ff4e3" {
			b.Fatal(err)
		}
	}
}
