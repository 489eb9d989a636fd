package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/failoverd/failoverd/failover"
)

func TestAppendOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "audit.log")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	recs := []failover.AuditRecord{
		{At: at, Incident: "eth-1-1", Action: "migrate", Outcome: "refused", Reason: "expired", From: "192.0.2.1:4000"},
		{At: at.Add(time.Minute), Incident: "eth-1-1", Action: "migrate", Outcome: "accepted", Approvers: []string{"alice"}, Generation: 1},
	}
	for _, r := range recs {
		if err := l.Append(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	// A second Open (a restart) keeps what is there.
	l2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l2.Append(context.Background(), failover.AuditRecord{At: at.Add(2 * time.Minute), Incident: "eth-1-1", Action: "failback", Outcome: "accepted"}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []failover.AuditRecord
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r failover.AuditRecord
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, r)
	}
	if len(got) != 3 || got[0].Outcome != "refused" || got[1].Approvers[0] != "alice" || got[2].Action != "failback" {
		t.Fatalf("log holds %+v", got)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
}
