package approval

import (
	"bytes"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

type failingNonces struct{ MemoryNonces }

func (f *failingNonces) Mark(string) error { return errors.New("disk full") }

// racingNonces says "not seen" but Mark finds it already used (another daemon).
type racingNonces struct{ MemoryNonces }

func (r *racingNonces) Mark(string) error { return refuse(CodeReplayed, "already in store") }

// resign re-signs the blob of an armored signature with a different namespace
// / hash / algorithm: builds raw SSHSIG blobs for negative cases.
func rawSig(t *testing.T, s ssh.Signer, msg []byte, namespace, hashAlg, algo string, h []byte) []byte {
	t.Helper()
	data := append([]byte(sshsigMagic), ssh.Marshal(struct {
		Namespace string
		Reserved  []byte
		HashAlg   string
		Hash      []byte
	}{namespace, nil, hashAlg, h})...)
	var sig *ssh.Signature
	var err error
	if algo != "" {
		sig, err = s.(ssh.AlgorithmSigner).SignWithAlgorithm(nil, data, algo)
	} else {
		sig, err = s.Sign(nil, data)
	}
	if err != nil {
		t.Fatal(err)
	}
	return armor(append([]byte(sshsigMagic), ssh.Marshal(sshsigBlob{
		Version: 1, PublicKey: s.PublicKey().Marshal(), Namespace: namespace, HashAlg: hashAlg, Signature: ssh.Marshal(sig),
	})...))
}

func TestRefusals(t *testing.T) {
	alice := testSigner(t, "alice", "ed25519")
	alice2 := testSigner(t, "alice2", "ed25519")
	bob := testSigner(t, "bob", "ed25519")
	dave := testSigner(t, "dave", "ed25519")
	rsaKey := testSigner(t, "rsa", "rsa")
	signers := team(t, signerLine("alice@example", alice2), signerLine("rob@example", rsaKey))
	msg, _ := baseApproval().Canonical()

	with := func(f func(*Approval)) Approval { a := baseApproval(); f(&a); return a }
	wantWith := func(f func(*Want)) Want { w := baseWant(); f(&w); return w }

	type tc struct {
		name      string
		a         Approval
		sigs      func() [][]byte // default: alice signs a
		want      Want
		threshold int
		now       time.Time
		used      UsedNonces
		signers   AllowedSigners
		pre       func(v *Verifier, a Approval, sigs [][]byte) // e.g. first use
		code      *RefusalError
		msgHas    string
	}
	cases := []tc{
		{name: "expired", now: t0.Add(16 * time.Minute), code: ErrExpired, msgHas: "expired at"},
		{name: "expired exactly at expiry", now: t0.Add(15 * time.Minute), code: ErrExpired},
		{name: "not yet valid (issued 5m ahead)", now: t0.Add(-5 * time.Minute), code: ErrNotYetValid, msgHas: "clock"},
		{name: "valid for more than 1h", a: with(func(a *Approval) { a.Expires = a.Issued.Add(61 * time.Minute) }), sigs: func() [][]byte {
			// Sign refuses to make it; sign the bytes directly.
			m := bytes.Replace(msg, []byte("expires 2026-03-14T15:24:26Z"), []byte("expires 2026-03-14T16:10:26Z"), 1)
			s, err := sshsigSign(m, Namespace, alice)
			if err != nil {
				t.Fatal(err)
			}
			return [][]byte{s}
		}, code: ErrTooLong, msgHas: "1h1m0s"},
		{name: "replayed nonce", pre: func(v *Verifier, a Approval, s [][]byte) {
			if _, err := v.Verify(a, s, baseWant()); err != nil {
				t.Fatalf("first use: %v", err)
			}
		}, code: ErrReplayed, msgHas: "already used"},
		{name: "replayed nonce, different approval", pre: func(v *Verifier, _ Approval, _ [][]byte) {
			o := with(func(a *Approval) { a.Pubkeys = []string{pk1} })
			if _, err := v.Verify(o, [][]byte{mustSign(t, o, alice)}, wantWith(func(w *Want) { w.Pubkeys = []string{pk1} })); err != nil {
				t.Fatalf("first use: %v", err)
			}
		}, code: ErrReplayed},
		{name: "nonce store says replayed on mark", used: &racingNonces{}, code: ErrReplayed},
		{name: "nonce store fails", used: &failingNonces{}, code: ErrNonceStore, msgHas: "disk full"},
		{name: "wrong incident", want: wantWith(func(w *Want) { w.Incident = "eth-val-2/site-a" }), code: ErrWrongIncident, msgHas: "eth-val-2/site-a"},
		{name: "wrong standby", want: wantWith(func(w *Want) { w.Standby = "fo-eth-val-1-aws" }), code: ErrWrongStandby},
		{name: "wrong standby cert", want: wantWith(func(w *Want) { w.StandbyCertSHA256 = strings.Repeat("0", 64) }), code: ErrWrongStandbyCert},
		{name: "pubkeys: one missing", want: wantWith(func(w *Want) { w.Pubkeys = []string{pk1, pk2, pk3} }), code: ErrPubkeysDiffer, msgHas: "missing [" + pk3},
		{name: "pubkeys: one extra", want: wantWith(func(w *Want) { w.Pubkeys = []string{pk1} }), code: ErrPubkeysDiffer, msgHas: "not expected [" + pk2},
		{name: "pubkeys: one swapped", want: wantWith(func(w *Want) { w.Pubkeys = []string{pk1, pk3} }), code: ErrPubkeysDiffer},
		{name: "wrong action", want: wantWith(func(w *Want) { w.Action = ActionFailback }), code: ErrWrongAction},
		{name: "unknown signer", a: with(func(a *Approval) { a.Approver = "dave@example" }),
			sigs: func() [][]byte {
				return [][]byte{mustSign(t, with(func(a *Approval) { a.Approver = "dave@example" }), dave)}
			}, code: ErrUnknownSigner, msgHas: ssh.FingerprintSHA256(dave.PublicKey())},
		{name: "unknown signer next to a good one", sigs: func() [][]byte {
			return [][]byte{mustSign(t, baseApproval(), alice), mustSign(t, baseApproval(), dave)}
		}, code: ErrUnknownSigner},
		{name: "signer key expired (valid-before)", signers: mustParse(t, `alice@example valid-before="20260101Z" `+keyText(alice)), code: ErrUnknownSigner, msgHas: "not valid since"},
		{name: "signer key not for this namespace", signers: mustParse(t, `alice@example namespaces="git,file" `+keyText(alice)), code: ErrUnknownSigner, msgHas: "namespace"},
		{name: "bad signature: signed another approval", sigs: func() [][]byte {
			return [][]byte{mustSign(t, with(func(a *Approval) { a.Nonce = "ffffffffffffffffffffffffffffffff" }), alice)}
		}, code: ErrBadSignature, msgHas: "does not verify"},
		{name: "bad signature: flipped bit", sigs: func() [][]byte {
			blob, _ := unarmor(mustSign(t, baseApproval(), alice))
			blob[len(blob)-3] ^= 1
			return [][]byte{armor(blob)}
		}, code: ErrBadSignature},
		{name: "bad signature: key swapped in blob", sigs: func() [][]byte {
			blob, _ := unarmor(mustSign(t, baseApproval(), alice))
			blob = bytes.Replace(blob, alice.PublicKey().Marshal(), bob.PublicKey().Marshal(), 1)
			return [][]byte{armor(blob)}
		}, code: ErrBadSignature},
		{name: "bad signature: garbage", sigs: func() [][]byte { return [][]byte{[]byte("hello")} }, code: ErrBadSignature, msgHas: "armored"},
		{name: "bad signature: empty", sigs: func() [][]byte { return [][]byte{nil} }, code: ErrBadSignature},
		{name: "bad signature: truncated", sigs: func() [][]byte {
			blob, _ := unarmor(mustSign(t, baseApproval(), alice))
			return [][]byte{armor(blob[:len(blob)-10])}
		}, code: ErrBadSignature},
		{name: "bad signature: trailing bytes", sigs: func() [][]byte {
			blob, _ := unarmor(mustSign(t, baseApproval(), alice))
			return [][]byte{armor(append(blob, 0))}
		}, code: ErrBadSignature},
		{name: "bad signature: version 2", sigs: func() [][]byte {
			blob, _ := unarmor(mustSign(t, baseApproval(), alice))
			blob[9] = 2
			return [][]byte{armor(blob)}
		}, code: ErrBadSignature, msgHas: "version"},
		{name: "bad signature: other namespace", sigs: func() [][]byte {
			h := sha512Sum(msg)
			return [][]byte{rawSig(t, alice, msg, "git", "sha512", "", h)}
		}, code: ErrBadSignature, msgHas: "namespace"},
		{name: "bad signature: sha256", sigs: func() [][]byte {
			h := sha256Sum(msg)
			return [][]byte{rawSig(t, alice, msg, Namespace, "sha256", "", h)}
		}, code: ErrBadSignature, msgHas: "sha256"},
		{name: "bad signature: rsa with SHA-1 (ssh-rsa)", a: with(func(a *Approval) { a.Approver = "rob@example" }), sigs: func() [][]byte {
			m, _ := with(func(a *Approval) { a.Approver = "rob@example" }).Canonical()
			return [][]byte{rawSig(t, rsaKey, m, Namespace, "sha512", ssh.KeyAlgoRSA, sha512Sum(m))}
		}, code: ErrBadSignature, msgHas: "rsa-sha2"},
		{name: "no signatures", sigs: func() [][]byte { return nil }, code: ErrBelowThreshold},
		{name: "below threshold 2-of-3", threshold: 2, code: ErrBelowThreshold, msgHas: "1 distinct"},
		{name: "duplicate signature counts once", threshold: 2, sigs: func() [][]byte {
			s := mustSign(t, baseApproval(), alice)
			return [][]byte{s, s, mustSign(t, baseApproval(), alice)}
		}, code: ErrBelowThreshold},
		{name: "same principal, two keys, counts once", threshold: 2, sigs: func() [][]byte {
			return [][]byte{mustSign(t, baseApproval(), alice), mustSign(t, baseApproval(), alice2)}
		}, code: ErrBelowThreshold},
		{name: "approver did not sign", a: with(func(a *Approval) { a.Approver = "carol@example" }), sigs: func() [][]byte {
			return [][]byte{mustSign(t, with(func(a *Approval) { a.Approver = "carol@example" }), bob)}
		}, code: ErrApproverMismatch},
		{name: "malformed: empty nonce", a: with(func(a *Approval) { a.Nonce = "" }), sigs: func() [][]byte { return [][]byte{[]byte("x")} }, code: ErrMalformed},
		{name: "malformed: newline in incident", a: with(func(a *Approval) { a.Incident = "eth-val-1/site-a\nstandby x" }), sigs: func() [][]byte { return [][]byte{[]byte("x")} }, code: ErrMalformed},
		{name: "malformed: duplicate pubkey", a: with(func(a *Approval) { a.Pubkeys = []string{pk1, pk2, "0X" + strings.ToUpper(pk1[2:])} }), sigs: func() [][]byte { return [][]byte{[]byte("x")} }, code: ErrMalformed},
		{name: "malformed: duplicate pubkey (same case)", a: with(func(a *Approval) { a.Pubkeys = []string{pk1, pk2, pk1} }), sigs: func() [][]byte { return [][]byte{[]byte("x")} }, code: ErrMalformed},
		{name: "malformed: expires before issued", a: with(func(a *Approval) { a.Expires = a.Issued.Add(-time.Second) }), sigs: func() [][]byte { return [][]byte{[]byte("x")} }, code: ErrMalformed},
		{name: "malformed: unknown action", a: with(func(a *Approval) { a.Action = "steal" }), sigs: func() [][]byte { return [][]byte{[]byte("x")} }, code: ErrMalformed},
		{name: "config: no nonce store", used: UsedNonces(nil), code: ErrVerifierConfig},
		{name: "config: threshold above approvers", threshold: 6, code: ErrVerifierConfig},
		{name: "config: no approvers", signers: AllowedSigners{}, code: ErrVerifierConfig},
		{name: "config: empty want", want: Want{Action: ActionMigrate}, code: ErrVerifierConfig},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := c.a
			if a.Incident == "" && a.Nonce == "" && a.Approver == "" {
				a = baseApproval()
			}
			var sigs [][]byte
			if c.sigs != nil {
				sigs = c.sigs()
			} else {
				sigs = [][]byte{mustSign(t, a, alice)}
			}
			want := c.want
			if want.Incident == "" && want.Standby == "" && len(want.Pubkeys) == 0 && want.Action == "" {
				want = baseWant()
			}
			now := c.now
			if now.IsZero() {
				now = t0.Add(time.Minute)
			}
			s := signers
			if c.signers != nil {
				s = c.signers
			}
			v := newVerifier(s, c.threshold, now)
			if c.used != nil || c.name == "config: no nonce store" {
				v.Used = c.used
			}
			if c.pre != nil {
				c.pre(v, a, sigs)
			}
			res, err := v.Verify(a, sigs, want)
			if err == nil {
				t.Fatalf("accepted: %+v", res)
			}
			if !errors.Is(err, c.code) {
				t.Fatalf("refused with %v, want code %s", err, c.code.Code)
			}
			var re *RefusalError
			if !errors.As(err, &re) || re.Message == "" {
				t.Fatalf("not a RefusalError with a message: %#v", err)
			}
			if c.msgHas != "" && !strings.Contains(err.Error(), c.msgHas) {
				t.Fatalf("message %q does not contain %q", err, c.msgHas)
			}
			if len(res.Approvers) != 0 {
				t.Fatalf("refusal returned approvers %v", res.Approvers)
			}
			// A refusal never consumes the nonce (except when it was already used).
			if c.code != ErrReplayed && v.Used != nil && v.Used.Seen(a.Nonce) {
				if _, fails := v.Used.(*failingNonces); !fails {
					t.Fatalf("refusal marked nonce used")
				}
			}
			t.Logf("%v", err)
		})
	}
}

func mustParse(t *testing.T, lines ...string) AllowedSigners {
	t.Helper()
	s, err := ParseAllowedSigners(lines)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func keyText(s ssh.Signer) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
}

func TestSuccessThreshold1AllKeyTypes(t *testing.T) {
	for _, kind := range []string{"ed25519", "p256", "p384", "p521", "rsa"} {
		t.Run(kind, func(t *testing.T) {
			k := testSigner(t, "single-"+kind, kind)
			signers := mustParse(t, signerLine("alice@example", k), signerLine("bob@example", testSigner(t, "bob", "ed25519")))
			v := newVerifier(signers, 0, t0.Add(time.Minute))
			a := baseApproval()
			sig := mustSign(t, a, k)
			if !bytes.HasPrefix(sig, []byte("-----BEGIN SSH SIGNATURE-----\n")) || !bytes.HasSuffix(sig, []byte("-----END SSH SIGNATURE-----\n")) {
				t.Fatalf("not armored: %s", sig)
			}
			if kind == "rsa" {
				p, err := parseSSHSig(sig, Namespace)
				if err != nil || p.sig.Format != ssh.KeyAlgoRSASHA512 {
					t.Fatalf("rsa format %v %v", p, err)
				}
			}
			res, err := v.Verify(a, [][]byte{sig}, baseWant())
			if err != nil {
				t.Fatal(err)
			}
			if got := res.Principals(); !slices.Equal(got, []string{"alice@example"}) {
				t.Fatalf("approvers %v", got)
			}
			if res.Approvers[0].Fingerprint != ssh.FingerprintSHA256(k.PublicKey()) || res.Approvers[0].KeyType != k.PublicKey().Type() {
				t.Fatalf("approver %+v", res.Approvers[0])
			}
			if !v.Used.Seen(a.Nonce) {
				t.Fatal("nonce not marked")
			}
			if _, err := v.Verify(a, [][]byte{sig}, baseWant()); !errors.Is(err, ErrReplayed) {
				t.Fatalf("second use: %v", err)
			}
		})
	}
}

func TestSuccess2of3(t *testing.T) {
	signers := team(t)
	a := baseApproval()
	alice, bob, carol := testSigner(t, "alice", "ed25519"), testSigner(t, "bob", "ed25519"), testSigner(t, "carol", "ed25519")
	for _, sigs := range [][][]byte{
		{mustSign(t, a, alice), mustSign(t, a, bob)},
		{mustSign(t, a, carol), mustSign(t, a, alice)},
		{mustSign(t, a, alice), mustSign(t, a, alice), mustSign(t, a, carol)}, // duplicate counts once, still 2
		{mustSign(t, a, alice), mustSign(t, a, bob), mustSign(t, a, carol)},
	} {
		v := newVerifier(signers, 2, t0.Add(14*time.Minute))
		res, err := v.Verify(a, sigs, baseWant())
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Approvers) < 2 || !slices.Contains(res.Principals(), "alice@example") {
			t.Fatalf("approvers %v", res.Principals())
		}
		if !slices.IsSorted(res.Principals()) {
			t.Fatalf("unsorted %v", res.Principals())
		}
	}
}

func TestSuccessVariants(t *testing.T) {
	alice := testSigner(t, "alice", "ed25519")
	a := baseApproval()
	sig := mustSign(t, a, alice)
	t.Run("pubkey order and hex case in want", func(t *testing.T) {
		w := baseWant()
		w.Pubkeys = []string{"0X" + strings.ToUpper(pk2[2:]), pk1}
		if _, err := newVerifier(team(t), 1, t0).Verify(a, [][]byte{sig}, w); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("cert hash case", func(t *testing.T) {
		w := baseWant()
		w.StandbyCertSHA256 = strings.ToUpper(certHash)
		if _, err := newVerifier(team(t), 1, t0).Verify(a, [][]byte{sig}, w); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("issued within clock skew", func(t *testing.T) {
		if _, err := newVerifier(team(t), 1, t0.Add(-119*time.Second)).Verify(a, [][]byte{sig}, baseWant()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("last second before expiry", func(t *testing.T) {
		if _, err := newVerifier(team(t), 1, a.Expires.Add(-time.Nanosecond)).Verify(a, [][]byte{sig}, baseWant()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("CRLF and surrounding whitespace in armor", func(t *testing.T) {
		crlf := "\n  " + strings.ReplaceAll(string(sig), "\n", "\r\n") + "\n\n"
		if _, err := newVerifier(team(t), 1, t0).Verify(a, [][]byte{[]byte(crlf)}, baseWant()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("via canonical bytes", func(t *testing.T) {
		msg, _ := a.Canonical()
		res, err := newVerifier(team(t), 1, t0).VerifyCanonical(msg, [][]byte{sig}, baseWant())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(res.Canonical, msg) {
			t.Fatal("canonical differs")
		}
	})
	t.Run("NewApproval defaults", func(t *testing.T) {
		now := time.Now()
		na, err := NewApproval("i-1", "sb-1", certHash, []string{pk1}, ActionFailback, "bob@example", now, 0)
		if err != nil {
			t.Fatal(err)
		}
		if na.Expires.Sub(na.Issued) != DefaultValidity || len(na.Nonce) != 32 {
			t.Fatalf("%+v", na)
		}
		w := Want{Incident: "i-1", Standby: "sb-1", StandbyCertSHA256: certHash, Pubkeys: []string{pk1}, Action: ActionFailback}
		if _, err := newVerifier(team(t), 1, now).Verify(na, [][]byte{mustSign(t, na, testSigner(t, "bob", "ed25519"))}, w); err != nil {
			t.Fatal(err)
		}
		nb, _ := NewApproval("i-1", "sb-1", certHash, []string{pk1}, ActionFailback, "bob@example", now, 0)
		if nb.Nonce == na.Nonce {
			t.Fatal("nonce reused")
		}
		if _, err := NewApproval("i-1", "sb-1", certHash, []string{pk1}, ActionFailback, "bob@example", now, 2*time.Hour); !errors.Is(err, ErrTooLong) {
			t.Fatalf("2h validity: %v", err)
		}
	})
}

// TestAgentSigners signs through the ssh-agent protocol (agent.ServeAgent on
// one end of a pipe, agent.NewClient on the other), as the CLI does.
func TestAgentSigners(t *testing.T) {
	keyring := agent.NewKeyring()
	signers := AllowedSigners{}
	for _, kind := range []string{"ed25519", "p256", "rsa"} {
		priv := rawPrivate(t, "agent-"+kind, kind)
		k := testSigner(t, "agent-"+kind, kind)
		if err := keyring.Add(agent.AddedKey{PrivateKey: priv}); err != nil {
			t.Fatal(err)
		}
		signers = append(signers, AllowedSigner{Principal: kind + "@example", Key: k.PublicKey()})
	}
	c1, c2 := net.Pipe()
	defer c1.Close()
	go agent.ServeAgent(keyring, c2)
	client := agent.NewClient(c1)
	list, err := client.Signers()
	if err != nil || len(list) != 3 {
		t.Fatalf("signers %d %v", len(list), err)
	}
	for _, s := range list {
		var principal string
		for _, e := range signers {
			if bytes.Equal(e.Key.Marshal(), s.PublicKey().Marshal()) {
				principal = e.Principal
			}
		}
		a := baseApproval()
		a.Approver = principal
		sig, err := Sign(a, s)
		if err != nil {
			t.Fatalf("%s: %v", principal, err)
		}
		res, err := newVerifier(signers, 1, t0).Verify(a, [][]byte{sig}, baseWant())
		if err != nil || res.Approvers[0].Principal != principal {
			t.Fatalf("%s: %v %v", principal, res, err)
		}
	}
}

// noAlgSigner hides SignWithAlgorithm.
type noAlgSigner struct{ s ssh.Signer }

func (n noAlgSigner) PublicKey() ssh.PublicKey { return n.s.PublicKey() }
func (n noAlgSigner) Sign(r io.Reader, d []byte) (*ssh.Signature, error) {
	return n.s.Sign(nil, d)
}

func TestSignRefuses(t *testing.T) {
	a := baseApproval()
	a.Nonce = "short"
	if _, err := Sign(a, testSigner(t, "alice", "ed25519")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("malformed approval signed: %v", err)
	}
	if _, err := Sign(baseApproval(), testSigner(t, "weak", "rsa1024")); err == nil {
		t.Fatal("RSA-1024 signed")
	}
	if _, err := Sign(baseApproval(), noAlgSigner{testSigner(t, "rsa", "rsa")}); err == nil || !strings.Contains(err.Error(), "rsa-sha2-512") {
		t.Fatalf("RSA signer without SignWithAlgorithm: %v", err)
	}
	if _, err := Sign(baseApproval(), nil); err == nil {
		t.Fatal("nil signer")
	}
}

func TestParseAllowedSigners(t *testing.T) {
	alice := keyText(testSigner(t, "alice", "ed25519"))
	p256 := keyText(testSigner(t, "x", "p256"))
	good := []string{
		"# comment\n\nalice@example " + alice + " alice laptop",
		"  bob@example   " + p256,
		`carol@example namespaces="failoverd-approval,file",valid-after="20250101",valid-before="20300101123000Z" ` + keyText(testSigner(t, "carol", "ed25519")),
	}
	s, err := ParseAllowedSigners(good)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Principals(), []string{"alice@example", "bob@example", "carol@example"}) {
		t.Fatalf("%v", s.Principals())
	}
	if c := s[2]; len(c.Namespaces) != 2 || c.ValidBefore.UTC() != time.Date(2030, 1, 1, 12, 30, 0, 0, time.UTC) || c.ValidAfter.IsZero() {
		t.Fatalf("%+v", c)
	}
	bad := map[string]string{
		"no key":             "alice@example",
		"bad key":            "alice@example ssh-ed25519 AAAAnotbase64!!",
		"principal list":     "alice@example,bob@example " + alice,
		"principal pattern":  "*@example " + alice,
		"cert-authority":     "alice@example cert-authority " + alice,
		"unknown option":     "alice@example no-touch-required,frobnicate " + alice,
		"duplicate key":      "alice@example " + alice + "\nbob@example " + alice,
		"dsa/unknown type":   "alice@example ssh-dss AAAAB3NzaC1kc3MAAACBAP",
		"rsa 1024":           "alice@example " + keyText(testSigner(t, "weak", "rsa1024")),
		"bad valid-before":   `alice@example valid-before="2030" ` + alice,
		"empty namespaces":   `alice@example namespaces="" ` + alice,
		"control in princ.":  "al\x01ce " + alice,
		"two keys one line?": "alice@example " + alice + " " + alice + "\nx",
	}
	for name, line := range bad {
		if _, err := ParseAllowedSigners([]string{line}); err == nil {
			t.Errorf("%s: accepted %q", name, line)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestRefusalErrorIs(t *testing.T) {
	err := error(&RefusalError{Code: CodeExpired, Message: "x"})
	if !errors.Is(err, ErrExpired) || errors.Is(err, ErrReplayed) {
		t.Fatal("Is")
	}
	if !strings.Contains(err.Error(), "expired") {
		t.Fatal(err)
	}
}
