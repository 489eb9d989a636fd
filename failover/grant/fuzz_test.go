package grant_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/grant"
	"github.com/failoverd/failoverd/failover/pki"
)

// fixedAuthority is a CA made from a fixed seed, so that signatures in the
// fuzz corpus stay valid from one run to the next.
func fixedAuthority(t testing.TB, label string) *pki.Authority {
	t.Helper()
	dir := t.TempDir()
	seed := sha256.Sum256([]byte("grant fuzz " + label))
	if err := os.WriteFile(filepath.Join(dir, pki.SeedFile), seed[:], 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := pki.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// FuzzVerify: a grant verifies only with the CA's signature over exactly
// its payload (ed25519 signatures are not malleable) and only against that
// CA; whatever payload the CA signed, Verify never panics, and what it
// accepts is complete, unexpired, covers its own keys, and survives a
// re-signing unchanged. signIt has the CA sign the fuzzed payload, so the
// decoder and the checks behind the signature are fuzzed too.
func FuzzVerify(f *testing.F) {
	ca, other := fixedAuthority(f, "ca"), fixedAuthority(f, "other")
	good, err := grant.Sign(base(), ca)
	if err != nil {
		f.Fatal(err)
	}
	fb := base()
	fb.Action, fb.Owner, fb.Generation = approval.ActionFailback, "home", 2
	failback, err := grant.Sign(fb, ca)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good.Payload, good.Signature, false, int64(0), false)
	f.Add(failback.Payload, failback.Signature, false, int64(900), false)
	f.Add(good.Payload, good.Signature, false, int64(0), true)
	f.Add(good.Payload, []byte{}, true, int64(-60), false)
	f.Add(bytes.Replace(good.Payload, []byte(`"generation":1`), []byte(`"generation":-1`), 1), []byte{}, true, int64(0), false)
	f.Add(append(bytes.Clone(good.Payload), []byte(` {"x":1}`)...), []byte{}, true, int64(0), false)
	f.Add(bytes.Replace(good.Payload, []byte(`"validator"`), []byte(`"Validator"`), 1), []byte{}, true, int64(0), false)
	f.Add(bytes.Replace(good.Payload, []byte(`{`), []byte(`{"extra":true,`), 1), []byte{}, true, int64(0), false)
	f.Add([]byte(`{"validator":"v","incident":"i","standby":"s","action":"migrate","owner":"s","generation":9223372036854775807,"pubkeys":["k"],"approvalSHA256":"`+string(bytes.Repeat([]byte("0"), 64))+`","expires":"9999-12-31T23:59:59Z"}`), []byte{}, true, int64(0), false)
	f.Fuzz(func(t *testing.T, payload, sig []byte, signIt bool, nowDelta int64, otherCA bool) {
		if signIt {
			sig = ca.SignGrant(payload)
		}
		caPEM := ca.CAPEM()
		if otherCA {
			caPEM = other.CAPEM()
		}
		now := t0.Add(time.Duration(nowDelta) * time.Second)
		g, err := grant.Verify(grant.Signed{Payload: payload, Signature: sig}, caPEM, now)
		if err != nil {
			return
		}
		if otherCA {
			t.Fatal("a grant of one CA verified against another")
		}
		if !bytes.Equal(sig, ca.SignGrant(payload)) {
			t.Fatalf("a signature the CA did not make verified: %x", sig)
		}
		if g.Validator == "" || g.Incident == "" || g.Standby == "" || g.Owner == "" || g.Generation <= 0 ||
			len(g.Pubkeys) == 0 || len(g.ApprovalSHA256) != 64 || !now.Before(g.Expires) ||
			(g.Action != approval.ActionMigrate && g.Action != approval.ActionFailback) {
			t.Fatalf("accepted an incomplete or expired grant %+v at %s", g, now)
		}
		if !g.Covers(g.Pubkeys) || !g.Covers(slices.Concat(g.Pubkeys, g.Pubkeys)) {
			t.Fatalf("a grant does not cover its own keys %v", g.Pubkeys)
		}
		again, err := grant.Sign(g, ca)
		if err != nil {
			t.Fatalf("an accepted grant does not sign again: %v", err)
		}
		g2, err := grant.Verify(again, ca.CAPEM(), now)
		if err != nil {
			t.Fatalf("a re-signed grant does not verify: %v", err)
		}
		if !g2.Covers(g.Pubkeys) || g2.Generation != g.Generation || g2.Action != g.Action || g2.Owner != g.Owner ||
			g2.Standby != g.Standby || g2.Incident != g.Incident || g2.ApprovalSHA256 != g.ApprovalSHA256 {
			t.Fatalf("re-signing changed the grant:\n%+v\n%+v", g, g2)
		}
		// The grant travels inside JSON (an approval reply, an import).
		b, err := json.Marshal(grant.Signed{Payload: payload, Signature: sig})
		if err != nil {
			t.Fatal(err)
		}
		var back grant.Signed
		if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, grant.Signed{Payload: payload, Signature: sig}) {
			t.Fatalf("a signed grant does not survive JSON: %v", err)
		}
	})
}

// FuzzCovers: Covers is a set comparison of normalised keys: symmetric,
// blind to order, repeats and 0x hex case, and false when a key is added.
func FuzzCovers(f *testing.F) {
	f.Add(pkA, pkB, "0X"+pkA[2:], "", uint8(0))
	f.Add(pkA, pkA, pkB, "0xzz", uint8(1))
	f.Add("k1", "K1", "0x", "0X0A", uint8(2))
	f.Fuzz(func(t *testing.T, a, b, c, extra string, perm uint8) {
		keys := []string{a, b, c}
		g := grant.Grant{Pubkeys: keys}
		shuffled := slices.Clone(keys)
		for i := range shuffled {
			j := int(perm>>i) % len(shuffled)
			shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
		}
		shuffled = append(shuffled, shuffled[int(perm)%3])
		if !g.Covers(shuffled) || !(grant.Grant{Pubkeys: shuffled}).Covers(keys) {
			t.Fatalf("%v and %v are the same set", keys, shuffled)
		}
		n := approval.NormalizePubkey(extra)
		for _, k := range keys {
			if approval.NormalizePubkey(k) == n {
				return
			}
		}
		if g.Covers(append(slices.Clone(keys), extra)) {
			t.Fatalf("%v covers %v plus %q", keys, keys, extra)
		}
	})
}
