package approval

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

var t0 = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

const certHash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

var pk1 = "0x" + strings.Repeat("a1", 48)
var pk2 = "0x" + strings.Repeat("b2", 48)
var pk3 = "0x" + strings.Repeat("c3", 48)

func baseApproval() Approval {
	return Approval{
		Incident:          "eth-val-1/site-a",
		Standby:           "fo-eth-val-1-gcp",
		StandbyCertSHA256: certHash,
		Pubkeys:           []string{pk2, pk1},
		Action:            ActionMigrate,
		Issued:            t0,
		Expires:           t0.Add(15 * time.Minute),
		Nonce:             "0123456789abcdef0123456789abcdef",
		Approver:          "alice@example",
	}
}

func baseWant() Want {
	return Want{
		Incident:          "eth-val-1/site-a",
		Standby:           "fo-eth-val-1-gcp",
		StandbyCertSHA256: certHash,
		Pubkeys:           []string{pk1, pk2},
		Action:            ActionMigrate,
	}
}

var keyCache sync.Map

// testSigner returns a deterministic-per-run signer for name and kind.
func testSigner(t testing.TB, name, kind string) ssh.Signer {
	t.Helper()
	if s, ok := keyCache.Load(name + "/" + kind); ok {
		return s.(ssh.Signer)
	}
	var priv crypto.Signer
	var err error
	switch kind {
	case "ed25519":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "p256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "p384":
		priv, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "p521":
		priv, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "rsa":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	case "rsa1024":
		priv, err = rsa.GenerateKey(rand.Reader, 1024)
	default:
		t.Fatalf("kind %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyCache.Store(name+"/"+kind, s)
	return s
}

func signerLine(principal string, s ssh.Signer) string {
	return principal + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
}

// team: alice, bob, carol with ed25519 keys.
func team(t testing.TB, extra ...string) AllowedSigners {
	t.Helper()
	lines := []string{
		"# approvers",
		signerLine("alice@example", testSigner(t, "alice", "ed25519")),
		signerLine("bob@example", testSigner(t, "bob", "ed25519")),
		"",
		signerLine("carol@example", testSigner(t, "carol", "ed25519")),
	}
	lines = append(lines, extra...)
	s, err := ParseAllowedSigners(lines)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustSign(t testing.TB, a Approval, s ssh.Signer) []byte {
	t.Helper()
	sig, err := Sign(a, s)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

func newVerifier(signers AllowedSigners, threshold int, now time.Time) *Verifier {
	return &Verifier{Signers: signers, Threshold: threshold, Now: func() time.Time { return now }, Used: &MemoryNonces{}}
}

var rawKeys sync.Map

// rawPrivate returns the crypto private key behind testSigner(name, kind).
func rawPrivate(t testing.TB, name, kind string) crypto.Signer {
	t.Helper()
	if k, ok := rawKeys.Load(name + "/" + kind); ok {
		return k.(crypto.Signer)
	}
	var priv crypto.Signer
	var err error
	switch kind {
	case "ed25519":
		_, p, e := ed25519.GenerateKey(rand.Reader)
		priv, err = p, e
	case "p256":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	keyCache.Store(name+"/"+kind, s)
	rawKeys.Store(name+"/"+kind, priv)
	return priv
}
