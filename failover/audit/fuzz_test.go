package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/failoverd/failoverd/failover"
)

// FuzzAppend: whatever a refused approval puts into a record (a reason
// quoting the submitter's text, an address, a nonce, principals), the log
// stays one record per line: a newline or a forged JSON line in a field
// never splits a record or adds one, earlier records are never changed, and
// each line reads back as the record written (invalid UTF-8 aside, which
// JSON writes as U+FFFD).
func FuzzAppend(f *testing.F) {
	f.Add("refused", "approval refused (expired): approval expired at 2026-11-21T09:15:00Z", "192.0.2.1:4000", "0123456789abcdef", "alice@example", int64(1))
	f.Add("refused", "x\n{\"outcome\":\"accepted\",\"incident\":\"eth-1-1\"}\n", "[::1]:1\r\n", "n\u2028n", "bob\x00", int64(-1))
	f.Add("accepted", "", "", "", "", int64(0))
	f.Add("\xff\xfe", "\u2029", "</script>", "\\", "\"", int64(9223372036854775807))
	f.Fuzz(func(t *testing.T, outcome, reason, from, nonce, approver string, generation int64) {
		path := filepath.Join(t.TempDir(), "audit.log")
		l, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		at := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
		first := failover.AuditRecord{At: at, Incident: "eth-1-1", Validator: "eth-1", Action: "migrate", Outcome: "accepted", Generation: 1}
		rec := failover.AuditRecord{At: at.Add(time.Second), Incident: "eth-1-1", Validator: "eth-1", Action: "migrate", Outcome: outcome,
			Reason: reason, From: from, Nonce: nonce, Approvers: []string{approver}, Generation: generation}
		for _, r := range []failover.AuditRecord{first, rec} {
			if err := l.Append(context.Background(), r); err != nil {
				t.Fatal(err)
			}
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		lines := bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
		if len(lines) != 2 || !bytes.HasSuffix(b, []byte("\n")) {
			t.Fatalf("2 records made %d lines:\n%s", len(lines), b)
		}
		// What the record is once it went through JSON: strings are valid
		// UTF-8, the time is UTC.
		want := []failover.AuditRecord{first, rec}
		for i, w := range want {
			wb, _ := json.Marshal(w)
			var norm failover.AuditRecord
			if err := json.Unmarshal(wb, &norm); err != nil {
				t.Fatal(err)
			}
			var got failover.AuditRecord
			if err := json.Unmarshal(lines[i], &got); err != nil {
				t.Fatalf("line %d is not a record: %v\n%s", i+1, err, lines[i])
			}
			if !reflect.DeepEqual(got, norm) {
				t.Fatalf("line %d reads back as\n%+v\nwritten\n%+v", i+1, got, norm)
			}
		}
	})
}
