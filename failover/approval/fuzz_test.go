package approval

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"math/big"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
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

// FuzzParseCanonical: whatever ParseCanonical accepts is a valid approval
// whose canonical encoding is exactly the input, so the bytes a person
// signs and the approval the daemon checks can never differ.
func FuzzParseCanonical(f *testing.F) {
	f.Add([]byte(golden))
	g, _ := baseApproval().Canonical()
	f.Add(g)
	f.Add([]byte(strings.Replace(golden, "pubkeys 2", "pubkeys 02", 1)))
	f.Add([]byte(strings.Replace(golden, "pubkeys 2\n", "pubkeys 3\n", 1) + "pubkey 0xc3\n"))
	f.Add([]byte(strings.ReplaceAll(golden, "\n", "\r\n")))
	f.Add([]byte(strings.Replace(golden, "2026-03-14T15:24:26Z", "2026-03-14T15:24:26+00:00", 1)))
	f.Add([]byte(strings.Replace(golden, "migrate", "failback", 1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := ParseCanonical(data)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLong) {
				t.Fatalf("refusal of another kind: %v", err)
			}
			return
		}
		again, err := a.Canonical()
		if err != nil {
			t.Fatalf("accepted bytes that do not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("accepted non-canonical bytes:\n%q\nre-encoded:\n%q", data, again)
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("accepted an invalid approval: %v", err)
		}
	})
}

// FuzzCanonical: any approval that encodes parses back to the same
// normalised approval, and two approvals that differ after normalisation
// never share canonical bytes (the encoding is injective).
func FuzzCanonical(f *testing.F) {
	b := baseApproval()
	f.Add(b.Incident, b.Standby, b.StandbyCertSHA256, pk1+","+pk2, b.Action, b.Nonce, b.Approver, b.Issued.Unix(), int64(900), "incident")
	f.Add("a\nb", "c", certHash, "0XAB,0xab", "failback", "nnnnnnnnnnnnnnnn", "x", int64(946684800), int64(3600), "pubkeys")
	f.Add("i", "s", strings.ToUpper(certHash), "k 1,k2", "migrate", "nonce nonce nonce", "bob", int64(253402300799), int64(1), "nonce")
	f.Fuzz(func(t *testing.T, incident, standby, cert, pubkeys, action, nonce, approver string, issued, validity int64, field string) {
		a := Approval{Incident: incident, Standby: standby, StandbyCertSHA256: cert, Pubkeys: strings.Split(pubkeys, ","),
			Action: action, Issued: time.Unix(issued, 0), Expires: time.Unix(issued, 0).Add(time.Duration(validity) * time.Second),
			Nonce: nonce, Approver: approver}
		c, err := a.Canonical()
		if err != nil {
			return
		}
		p, err := ParseCanonical(c)
		if err != nil {
			t.Fatalf("canonical bytes do not parse: %v\n%s", err, c)
		}
		n, _ := a.normalize()
		if !reflect.DeepEqual(p, n.Approval) {
			t.Fatalf("round trip changed the approval:\n%+v\n%+v", p, n.Approval)
		}
		// Change one field to something else that still validates: the bytes
		// must change too.
		o := n.Approval
		o.Pubkeys = slices.Clone(o.Pubkeys)
		switch field {
		case "incident":
			o.Incident += "x"
		case "standby":
			o.Standby = "x" + o.Standby
		case "nonce":
			o.Nonce = o.Nonce[1:] + "z"
		case "approver":
			o.Approver += "@"
		case "pubkeys":
			o.Pubkeys = o.Pubkeys[1:]
		case "expires":
			o.Expires = o.Expires.Add(-time.Second)
		default:
			o.Issued = o.Issued.Add(-time.Second)
		}
		oc, err := o.Canonical()
		if err != nil {
			return
		}
		if on, _ := o.normalize(); !reflect.DeepEqual(on.Approval, n.Approval) && bytes.Equal(oc, c) {
			t.Fatalf("two approvals share canonical bytes:\n%+v\n%+v\n%s", n.Approval, on.Approval, c)
		}
	})
}

// fuzzECDSA is an ECDSA P-256 signer whose key is fixed, so that signatures
// in the corpus stay valid from one run to the next.
func fuzzECDSA(t testing.TB) ssh.Signer {
	t.Helper()
	seed := sha256.Sum256([]byte("approval fuzz bob p256"))
	k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), seed[:])
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fuzzEd25519(t testing.TB) ssh.Signer {
	t.Helper()
	seed := sha256.Sum256([]byte("approval fuzz alice ed25519"))
	s, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// FuzzSSHSig mutates genuine SSHSIG signatures (ed25519 and ECDSA P-256)
// byte by byte and in their armor. A mutated signature verifies only when
// it is still a signature by the same allowed key over the same approval:
// the same key, namespace and hash, and for ed25519 the very same signature
// (it is not malleable), for ECDSA (r, s) or its mirror (r, n-s), the one
// malleability ECDSA has. Only the reserved field, which the signature does
// not cover, may differ.
func FuzzSSHSig(f *testing.F) {
	alice, bob := fuzzEd25519(f), fuzzECDSA(f)
	lines := []string{signerLine("alice@example", alice), signerLine("bob@example", bob)}
	signers, err := ParseAllowedSigners(lines)
	if err != nil {
		f.Fatal(err)
	}
	base := baseApproval()
	base.Approver = "bob@example"
	bases := map[bool][]byte{}
	for _, ecdsaKey := range []bool{false, true} {
		a := base
		s := alice
		if ecdsaKey {
			s = bob
		} else {
			a.Approver = "alice@example"
		}
		armored := mustSign(f, a, s)
		blob, err := unarmor(armored)
		if err != nil {
			f.Fatal(err)
		}
		bases[ecdsaKey] = blob
	}
	for _, ecdsaKey := range []bool{false, true} {
		f.Add(ecdsaKey, uint8(0), uint16(0), []byte{}, false)
		f.Add(ecdsaKey, uint8(2), uint16(len(bases[ecdsaKey])-1), []byte{0x01}, false)
		f.Add(ecdsaKey, uint8(1), uint16(10), []byte("SSHSIG"), true)
		f.Add(ecdsaKey, uint8(3), uint16(len(bases[ecdsaKey])-2), []byte{}, false)
	}
	f.Fuzz(func(t *testing.T, ecdsaKey bool, mode uint8, pos uint16, data []byte, rearmor bool) {
		genuine := bases[ecdsaKey]
		blob := genuine
		if mode != 0 || len(data) != 0 {
			blob = mutate(genuine, mode, int(pos), data)
		}
		a := base
		if !ecdsaKey {
			a.Approver = "alice@example"
		}
		sig := armor(blob)
		if rearmor {
			// Another armoring of the same bytes: one long line, CRLF.
			sig = []byte("-----BEGIN SSH SIGNATURE-----\r\n" + base64.StdEncoding.EncodeToString(blob) + "\r\n-----END SSH SIGNATURE-----\r\n")
		}
		v := newVerifier(signers, 1, t0.Add(time.Minute))
		want := baseWant()
		res, err := v.Verify(a, [][]byte{sig}, want)
		if err != nil {
			var re *RefusalError
			if !errors.As(err, &re) {
				t.Fatalf("refusal is not a *RefusalError: %v", err)
			}
			if bytes.Equal(blob, genuine) {
				t.Fatalf("the genuine signature was refused: %v", err)
			}
			return
		}
		if !bytes.Equal(res.Canonical, canonicalOf(t, a)) || len(res.Approvers) != 1 {
			t.Fatalf("accepted %+v", res)
		}
		if bytes.Equal(blob, genuine) {
			return
		}
		// The reserved field is outside the signed data (PROTOCOL.sshsig:
		// verifiers ignore it, as OpenSSH does); every other field must be
		// the genuine one.
		g, m := decodeSig(t, genuine), decodeSig(t, blob)
		if !bytes.Equal(g.PublicKey, m.PublicKey) || g.Namespace != m.Namespace || g.HashAlg != m.HashAlg || g.Version != m.Version {
			t.Fatalf("a changed signature verified with another key, namespace or hash: %+v", m)
		}
		if !ecdsaKey {
			if !bytes.Equal(g.Signature, m.Signature) {
				t.Fatalf("a changed ed25519 signature verified:\n%x\n%x", blob, genuine)
			}
			return
		}
		gr, gs := ecdsaRS(t, g.Signature)
		mr, ms := ecdsaRS(t, m.Signature)
		mirror := new(big.Int).Sub(elliptic.P256().Params().N, gs)
		if gr.Cmp(mr) != 0 || (gs.Cmp(ms) != 0 && mirror.Cmp(ms) != 0) {
			t.Fatalf("a changed ECDSA signature verified: r=%x s=%x, genuine r=%x s=%x", mr, ms, gr, gs)
		}
	})
}

func canonicalOf(t *testing.T, a Approval) []byte {
	t.Helper()
	c, err := a.Canonical()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func decodeSig(t *testing.T, blob []byte) sshsigBlob {
	t.Helper()
	var b sshsigBlob
	if err := ssh.Unmarshal(bytes.TrimPrefix(blob, []byte(sshsigMagic)), &b); err != nil {
		t.Fatalf("a verified signature does not decode: %v", err)
	}
	return b
}

func ecdsaRS(t *testing.T, sigField []byte) (*big.Int, *big.Int) {
	t.Helper()
	var sig ssh.Signature
	if err := ssh.Unmarshal(sigField, &sig); err != nil {
		t.Fatal(err)
	}
	var rs struct{ R, S *big.Int }
	if err := ssh.Unmarshal(sig.Blob, &rs); err != nil {
		t.Fatal(err)
	}
	return rs.R, rs.S
}

// mutate changes b by mode: replace it with data, insert data at pos,
// overwrite from pos with data, or cut it at pos.
func mutate(b []byte, mode uint8, pos int, data []byte) []byte {
	pos %= len(b) + 1
	switch mode % 4 {
	case 0:
		return slices.Clone(data)
	case 1:
		return slices.Concat(b[:pos], data, b[pos:])
	case 2:
		out := slices.Clone(b)
		for i, c := range data {
			if pos+i < len(out) {
				out[pos+i] = c
			} else {
				out = append(out, c)
			}
		}
		return out
	default:
		return slices.Clone(b[:pos])
	}
}

// FuzzAllowedSigners: whatever ParseAllowedSigners accepts has a plain
// principal per key, only the accepted key types, no certificate, and no
// key listed twice; nothing makes it panic.
func FuzzAllowedSigners(f *testing.F) {
	alice, bob := fuzzEd25519(f), fuzzECDSA(f)
	key := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(alice.PublicKey())))
	f.Add(signerLine("alice@example", alice) + "\n" + signerLine("bob@example", bob))
	f.Add(`bob@example namespaces="failoverd-approval",valid-after="20260101",valid-before="20270101Z" ` + key + " bob's laptop")
	f.Add(`carol@example namespaces="!git,*" ` + key)
	f.Add(`# comment` + "\n\n" + `a,b@example ` + key)
	f.Add(`alice@example cert-authority ` + key)
	f.Add(`alice@example valid-after="2026" ` + key)
	f.Add(`alice@example namespaces="[" ` + key)
	f.Add(`alice@example ssh-dss AAAAB3NzaC1kc3MAAACBAP` + "\n" + signerLine("alice@example", alice) + "\n" + signerLine("eve@example", alice))
	f.Fuzz(func(t *testing.T, text string) {
		s, err := ParseAllowedSigners([]string{text})
		if err != nil {
			if s != nil {
				t.Fatal("signers returned with an error")
			}
			return
		}
		seen := map[string]bool{}
		for _, a := range s {
			if err := checkToken("principal", a.Principal, maxFieldLen); err != nil || strings.ContainsAny(a.Principal, ",*?!\"") {
				t.Fatalf("principal %q accepted", a.Principal)
			}
			if _, isCert := a.Key.(*ssh.Certificate); isCert {
				t.Fatal("a certificate accepted")
			}
			if err := checkKeyType(a.Key); err != nil {
				t.Fatalf("key type %s accepted: %v", a.Key.Type(), err)
			}
			k := string(a.Key.Marshal())
			if seen[k] {
				t.Fatalf("key %s listed twice", ssh.FingerprintSHA256(a.Key))
			}
			seen[k] = true
		}
	})
}
