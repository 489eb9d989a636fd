package approval

import (
	"bytes"
	"testing"
	"time"
)

// FuzzVerify: arbitrary signature bytes and approval fields never panic and
// never verify, except the one genuine signature over the one genuine
// approval.
func FuzzVerify(f *testing.F) {
	alice := testSigner(f, "alice", "ed25519")
	signers := team(f)
	base := baseApproval()
	baseMsg, _ := base.Canonical()
	good := mustSign(f, base, alice)
	goodBlob, _ := unarmor(good)

	f.Add(good, base.Incident, base.Standby, base.Nonce, pk1, base.Approver, int64(0), int64(15*60), uint8(1))
	f.Add(goodBlob, base.Incident, base.Standby, base.Nonce, pk1, base.Approver, int64(0), int64(15*60), uint8(1))
	f.Add(good[:len(good)/2], "x", "y", "zzzzzzzzzzzzzzzzz", "0x00", "bob@example", int64(-60), int64(3600), uint8(2))
	f.Add([]byte("-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"), "", "", "", "", "", int64(0), int64(0), uint8(0))
	f.Add(goodBlob[:40], base.Incident, base.Standby, base.Nonce, pk2, base.Approver, int64(200), int64(90), uint8(3))

	f.Fuzz(func(t *testing.T, sig []byte, incident, standby, nonce, pubkey, approver string, issuedDelta, validity int64, threshold uint8) {
		a := base
		a.Incident, a.Standby, a.Nonce, a.Approver = incident, standby, nonce, approver
		a.Pubkeys = []string{pubkey, pk2}
		a.Issued = t0.Add(time.Duration(issuedDelta) * time.Second)
		a.Expires = a.Issued.Add(time.Duration(validity) * time.Second)
		w := baseWant()
		w.Incident, w.Standby = incident, standby
		w.Pubkeys = []string{pubkey, pk2}

		attempts := [][][]byte{
			{sig},
			{armor(sig)},
			{sig, good},
			{good, armor(sig)},
		}
		for _, sigs := range attempts {
			v := newVerifier(signers, int(threshold%4), t0.Add(time.Minute))
			res, err := v.Verify(a, sigs, w)
			if err != nil {
				if res.Approvers != nil || v.Used.Seen(a.Nonce) {
					t.Fatalf("refusal with side effects: %v", err)
				}
				continue
			}
			// Accepted: must be exactly the genuine approval, and every
			// signature must be the genuine one.
			if !bytes.Equal(res.Canonical, baseMsg) {
				t.Fatalf("a different approval verified:\n%s", res.Canonical)
			}
			for _, s := range sigs {
				blob, uerr := unarmor(s)
				if uerr != nil || !bytes.Equal(blob, goodBlob) {
					t.Fatalf("forged signature verified: %q", s)
				}
			}
			if !v.Used.Seen(a.Nonce) {
				t.Fatal("accepted without marking the nonce")
			}
		}
		// ParseCanonical never panics either, and round-trips what it accepts.
		if p, err := ParseCanonical(sig); err == nil {
			if again, _ := p.Canonical(); !bytes.Equal(again, sig) {
				t.Fatal("ParseCanonical accepted non-canonical bytes")
			}
		}
		_, _ = ParseAllowedSigners([]string{string(sig)})
	})
}
