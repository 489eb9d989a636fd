package approval

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"strings"
	"testing"
	"time"
)

func sha512Sum(b []byte) []byte { h := sha512.Sum512(b); return h[:] }
func sha256Sum(b []byte) []byte { h := sha256.Sum256(b); return h[:] }

const golden = `failoverd-approval/v1
action migrate
incident eth-val-1/site-a
standby fo-eth-val-1-gcp
standby-cert-sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
issued 2026-03-14T15:09:26Z
expires 2026-03-14T15:24:26Z
nonce 0123456789abcdef0123456789abcdef
approver alice@example
pubkeys 2
pubkey 0xa1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1
pubkey 0xb2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2
`

func TestCanonicalGolden(t *testing.T) {
	got, err := baseApproval().Canonical()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != golden {
		t.Fatalf("canonical encoding changed (this breaks every signed approval):\n%s", got)
	}
}

func TestCanonicalStable(t *testing.T) {
	want, _ := baseApproval().Canonical()
	variants := map[string]func(*Approval){
		"pubkeys reordered": func(a *Approval) { a.Pubkeys = []string{pk1, pk2} },
		"pubkey hex case":   func(a *Approval) { a.Pubkeys = []string{"0X" + strings.ToUpper(pk1[2:]), pk2} },
		"cert hash case":    func(a *Approval) { a.StandbyCertSHA256 = strings.ToUpper(a.StandbyCertSHA256) },
		"other time zone": func(a *Approval) {
			tz := time.FixedZone("X", 5*3600)
			a.Issued, a.Expires = a.Issued.In(tz), a.Expires.In(tz)
		},
		"sub-second part":    func(a *Approval) { a.Issued = a.Issued.Add(999 * time.Millisecond) },
		"monotonic reading":  func(a *Approval) { a.Expires = a.Expires.Round(0) },
		"pubkeys not shared": func(a *Approval) { a.Pubkeys = append([]string(nil), a.Pubkeys...) },
	}
	for name, f := range variants {
		a := baseApproval()
		f(&a)
		got, err := a.Canonical()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %v\n%s", name, err, got)
		}
	}
	// Canonical does not reorder the caller's slice.
	a := baseApproval()
	_, _ = a.Canonical()
	if a.Pubkeys[0] != pk2 {
		t.Fatal("Canonical mutated Pubkeys")
	}
	// Every field is signed: changing any changes the bytes.
	changes := []func(*Approval){
		func(a *Approval) { a.Incident += "x" },
		func(a *Approval) { a.Standby += "x" },
		func(a *Approval) { a.StandbyCertSHA256 = strings.Repeat("1", 64) },
		func(a *Approval) { a.Pubkeys = a.Pubkeys[:1] },
		func(a *Approval) { a.Action = ActionFailback },
		func(a *Approval) { a.Issued = a.Issued.Add(time.Second) },
		func(a *Approval) { a.Expires = a.Expires.Add(time.Second) },
		func(a *Approval) { a.Nonce += "x" },
		func(a *Approval) { a.Approver = "bob@example" },
	}
	for i, f := range changes {
		a := baseApproval()
		f(&a)
		got, err := a.Canonical()
		if err != nil || bytes.Equal(got, want) {
			t.Errorf("change %d: %v", i, err)
		}
	}
}

func TestParseCanonical(t *testing.T) {
	a, err := ParseCanonical([]byte(golden))
	if err != nil {
		t.Fatal(err)
	}
	again, _ := a.Canonical()
	if string(again) != golden {
		t.Fatal("round trip")
	}
	bad := []string{
		"",
		strings.TrimSuffix(golden, "\n"),
		strings.Replace(golden, "v1", "v2", 1),
		strings.Replace(golden, "pubkeys 2", "pubkeys 3", 1),
		strings.Replace(golden, "pubkeys 2", "pubkeys 1", 1),
		strings.Replace(golden, "0xa1a1", "0xA1A1", 1),                // not canonical case
		strings.Replace(golden, "pubkey 0xa1", "pubkey 0xz1", 1) + "", // reorders: not canonical
		strings.Replace(golden, "action migrate\nincident", "incident", 1),
		strings.Replace(golden, "nonce ", "nonce  ", 1),
		strings.Replace(golden, "15:24:26Z", "15:24:26+00:00", 1),
		golden + "extra line\n",
		strings.ReplaceAll(golden, "\n", "\r\n"),
	}
	for i, b := range bad {
		if _, err := ParseCanonical([]byte(b)); !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLong) {
			t.Errorf("case %d accepted or wrong error: %v", i, err)
		}
	}
}
