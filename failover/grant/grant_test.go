package grant_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/grant"
	"github.com/failoverd/failoverd/failover/pki"
)

var (
	t0  = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	pkA = "0x" + strings.Repeat("a1", 48)
	pkB = "0x" + strings.Repeat("B2", 48) // upper case on purpose: grants normalise
	sha = strings.Repeat("5e", 32)
)

func authority(t *testing.T) *pki.Authority {
	t.Helper()
	a, err := pki.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func base() grant.Grant {
	return grant.Grant{
		Validator: "eth-1", Incident: "eth-1-1", Standby: "fo-eth-1-1", Action: approval.ActionMigrate,
		Owner: "fo-eth-1-1", Generation: 1, Pubkeys: []string{pkB, pkA}, ApprovalSHA256: sha,
		Expires: t0.Add(15*time.Minute + 700*time.Millisecond),
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	ca := authority(t)
	s, err := grant.Sign(base(), ca)
	if err != nil {
		t.Fatal(err)
	}
	g, err := grant.Verify(s, ca.CAPEM(), t0)
	if err != nil {
		t.Fatalf("a grant the CA signed does not verify: %v", err)
	}
	want := base()
	want.Pubkeys = []string{pkA, strings.ToLower(pkB)}
	want.Expires = t0.Add(15 * time.Minute) // one-second precision, UTC
	if g.Validator != want.Validator || g.Incident != want.Incident || g.Standby != want.Standby || g.Action != want.Action ||
		g.Owner != want.Owner || g.Generation != want.Generation || g.ApprovalSHA256 != want.ApprovalSHA256 || !g.Expires.Equal(want.Expires) {
		t.Fatalf("verified grant %+v, want %+v", g, want)
	}
	if strings.Join(g.Pubkeys, ",") != strings.Join(want.Pubkeys, ",") {
		t.Fatalf("pubkeys %v, want normalised and sorted %v", g.Pubkeys, want.Pubkeys)
	}
	// It travels as JSON between failoverd, the CLI and the agent.
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back grant.Signed
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if _, err := grant.Verify(back, ca.CAPEM(), t0); err != nil {
		t.Fatalf("after a JSON round trip: %v", err)
	}
	// Deterministic: the same grant signs to the same bytes (a CLI that
	// fetches it again from the plan gets what the reply had).
	s2, err := grant.Sign(base(), ca)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(s.Payload, s2.Payload) || !bytes.Equal(s.Signature, s2.Signature) {
		t.Fatal("signing the same grant twice gave different bytes")
	}
}

func TestVerifyRefuses(t *testing.T) {
	ca, other := authority(t), authority(t)
	good, err := grant.Sign(base(), ca)
	if err != nil {
		t.Fatal(err)
	}
	// signRaw signs arbitrary bytes with the CA, as if failoverd had signed
	// a payload Sign itself would never produce.
	signRaw := func(payload string) grant.Signed {
		return grant.Signed{Payload: []byte(payload), Signature: ca.SignGrant([]byte(payload))}
	}
	rawGrant := func(mutate func(m map[string]any)) grant.Signed {
		var m map[string]any
		if err := json.Unmarshal(good.Payload, &m); err != nil {
			t.Fatal(err)
		}
		mutate(m)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return signRaw(string(b))
	}
	fromOther, err := grant.Sign(base(), other)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		s    grant.Signed
		ca   []byte
		now  time.Time
		want string
	}{
		{"payload tampered (generation raised)", grant.Signed{
			Payload: bytes.Replace(good.Payload, []byte(`"generation":1`), []byte(`"generation":2`), 1), Signature: good.Signature,
		}, ca.CAPEM(), t0, "does not verify"},
		{"payload tampered (another standby)", grant.Signed{
			Payload: bytes.Replace(good.Payload, []byte(`"standby":"fo-eth-1-1"`), []byte(`"standby":"fo-evil-1"`), 1), Signature: good.Signature,
		}, ca.CAPEM(), t0, "does not verify"},
		{"signature tampered", grant.Signed{Payload: good.Payload, Signature: flip(good.Signature)}, ca.CAPEM(), t0, "does not verify"},
		{"no signature", grant.Signed{Payload: good.Payload}, ca.CAPEM(), t0, "does not verify"},
		{"empty grant", grant.Signed{}, ca.CAPEM(), t0, "does not verify"},
		{"signed by another CA", fromOther, ca.CAPEM(), t0, "does not verify"},
		{"checked against no CA", good, nil, t0, "no PEM certificate"},
		{"expired (at the expiry)", good, ca.CAPEM(), t0.Add(15 * time.Minute), "expired"},
		{"expired (after)", good, ca.CAPEM(), t0.Add(time.Hour), "expired"},
		{"unknown field", rawGrant(func(m map[string]any) { m["ownerOverride"] = "home" }), ca.CAPEM(), t0, "unknown field"},
		{"zero generation", rawGrant(func(m map[string]any) { m["generation"] = 0 }), ca.CAPEM(), t0, "generation must be positive"},
		{"negative generation", rawGrant(func(m map[string]any) { m["generation"] = -3 }), ca.CAPEM(), t0, "generation must be positive"},
		{"unknown action", rawGrant(func(m map[string]any) { m["action"] = "export" }), ca.CAPEM(), t0, "unknown action"},
		{"no pubkeys", rawGrant(func(m map[string]any) { m["pubkeys"] = []string{} }), ca.CAPEM(), t0, "no public keys"},
		{"no standby", rawGrant(func(m map[string]any) { delete(m, "standby") }), ca.CAPEM(), t0, "required"},
		{"short approval hash", rawGrant(func(m map[string]any) { m["approvalSHA256"] = "abc" }), ca.CAPEM(), t0, "64 hex"},
		{"no expiry", rawGrant(func(m map[string]any) { delete(m, "expires") }), ca.CAPEM(), t0, "no expiry"},
		{"not JSON", signRaw("generation=1"), ca.CAPEM(), t0, "decode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := grant.Verify(c.s, c.ca, c.now)
			if err == nil {
				t.Fatalf("accepted: %+v", g)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
			if g.Generation != 0 || g.Standby != "" {
				t.Fatalf("a refused grant came back with content: %+v", g)
			}
		})
	}
	// Just before the expiry it is still good: the boundary is exact.
	if _, err := grant.Verify(good, ca.CAPEM(), t0.Add(15*time.Minute-time.Nanosecond)); err != nil {
		t.Fatalf("refused a second before expiry: %v", err)
	}
}

func TestSignRefusesIncompleteGrants(t *testing.T) {
	ca := authority(t)
	cases := map[string]func(*grant.Grant){
		"zero generation":     func(g *grant.Grant) { g.Generation = 0 },
		"no validator":        func(g *grant.Grant) { g.Validator = "" },
		"no incident":         func(g *grant.Grant) { g.Incident = "" },
		"no owner":            func(g *grant.Grant) { g.Owner = "" },
		"unknown action":      func(g *grant.Grant) { g.Action = "" },
		"no pubkeys":          func(g *grant.Grant) { g.Pubkeys = nil },
		"no approval hash":    func(g *grant.Grant) { g.ApprovalSHA256 = "" },
		"no expiry":           func(g *grant.Grant) { g.Expires = time.Time{} },
		"negative generation": func(g *grant.Grant) { g.Generation = -1 },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			g := base()
			mutate(&g)
			if s, err := grant.Sign(g, ca); err == nil {
				t.Fatalf("signed an incomplete grant: %s", s.Payload)
			}
		})
	}
}

func TestCovers(t *testing.T) {
	g := base()
	pkC := "0x" + strings.Repeat("c3", 48)
	cases := []struct {
		name string
		keys []string
		want bool
	}{
		{"same keys", []string{pkA, pkB}, true},
		{"other order, other case", []string{strings.ToLower(pkB), "0X" + strings.ToUpper(pkA[2:])}, true},
		{"a key twice", []string{pkA, pkB, pkA}, true},
		{"a subset", []string{pkA}, false},
		{"a superset", []string{pkA, pkB, pkC}, false},
		{"another key instead", []string{pkA, pkC}, false},
		{"none", nil, false},
	}
	for _, c := range cases {
		if got := g.Covers(c.keys); got != c.want {
			t.Errorf("%s: Covers(%v) = %v, want %v", c.name, c.keys, got, c.want)
		}
	}
}

func flip(b []byte) []byte {
	out := bytes.Clone(b)
	if len(out) > 0 {
		out[len(out)/2] ^= 0x01
	}
	return out
}
