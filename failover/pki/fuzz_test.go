package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
)

func fuzzAuthority(t testing.TB, label string) *Authority {
	t.Helper()
	dir := t.TempDir()
	seed := sha256.Sum256([]byte("pki fuzz " + label))
	if err := os.WriteFile(filepath.Join(dir, SeedFile), seed[:], 0o600); err != nil {
		t.Fatal(err)
	}
	a, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// FuzzLoad: whatever the authority directory holds (a seed of any length,
// a key or certificate file that is garbage, from another CA, or missing),
// LoadOrCreate never panics, never changes a file that exists, and loads
// only a CA whose key and certificate files are the ones its seed derives.
func FuzzLoad(f *testing.F) {
	a := fuzzAuthority(f, "a")
	b := fuzzAuthority(f, "b")
	keyA, _ := marshalKey(a.caKey)
	keyB, _ := marshalKey(b.caKey)
	f.Add(a.seed, keyA, a.caPEM, uint8(7))
	f.Add(a.seed, keyA, a.caPEM, uint8(1))
	f.Add(a.seed, keyB, a.caPEM, uint8(7))
	f.Add(a.seed, keyA, b.caPEM, uint8(5))
	f.Add(a.seed[:31], keyA, a.caPEM, uint8(1))
	f.Add([]byte{}, keyA, a.caPEM, uint8(6))
	f.Add(a.seed, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), []byte("not pem"), uint8(7))
	f.Fuzz(func(t *testing.T, seed, key, cert []byte, present uint8) {
		dir := t.TempDir()
		files := map[string][]byte{}
		for i, fl := range []struct {
			name string
			b    []byte
		}{{SeedFile, seed}, {CAKeyFile, key}, {CACertFile, cert}} {
			if present&(1<<i) != 0 {
				files[fl.name] = fl.b
				if err := os.WriteFile(filepath.Join(dir, fl.name), fl.b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		got, err := LoadOrCreate(dir)
		for name, before := range files {
			after, rerr := os.ReadFile(filepath.Join(dir, name))
			if rerr != nil || !bytes.Equal(after, before) {
				t.Fatalf("%s changed (%v)", name, rerr)
			}
		}
		_, hasSeed := files[SeedFile]
		if err != nil {
			if hasSeed && len(seed) == ed25519.SeedSize && (files[CAKeyFile] == nil || bytes.Equal(files[CAKeyFile], mustKey(t, seed))) &&
				(files[CACertFile] == nil || bytes.Equal(files[CACertFile], mustDerive(t, seed).caPEM)) {
				t.Fatalf("a consistent directory refused: %v", err)
			}
			return
		}
		if hasSeed && len(seed) != ed25519.SeedSize {
			t.Fatalf("loaded a %d-byte seed", len(seed))
		}
		if !hasSeed && (files[CAKeyFile] != nil || files[CACertFile] != nil) {
			t.Fatal("made a new seed next to existing CA files")
		}
		onDisk := map[string][]byte{}
		for _, name := range []string{SeedFile, CAKeyFile, CACertFile} {
			b, rerr := os.ReadFile(filepath.Join(dir, name))
			if rerr != nil {
				t.Fatalf("%s missing after a load: %v", name, rerr)
			}
			onDisk[name] = b
		}
		if !bytes.Equal(onDisk[CAKeyFile], mustKey(t, onDisk[SeedFile])) || !bytes.Equal(onDisk[CACertFile], got.CAPEM()) ||
			!bytes.Equal(got.CAPEM(), mustDerive(t, onDisk[SeedFile]).caPEM) {
			t.Fatal("loaded a CA whose files are not the ones its seed derives")
		}
	})
}

func mustDerive(t *testing.T, seed []byte) *Authority {
	t.Helper()
	a, err := fromSeed("", seed)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustKey(t *testing.T, seed []byte) []byte {
	t.Helper()
	k, err := marshalKey(mustDerive(t, seed).caKey)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// FuzzVerifyGrant: whatever PEM is offered as the CA, a grant signature
// verifies only against a certificate holding the signing CA's own ed25519
// key, and only the CA's signature over exactly the message (ed25519
// signatures are not malleable).
func FuzzVerifyGrant(f *testing.F) {
	ca, other := fuzzAuthority(f, "ca"), fuzzAuthority(f, "other")
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "p256"}, NotBefore: caNotBefore, NotAfter: caNotAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p256.PublicKey, p256)
	if err != nil {
		f.Fatal(err)
	}
	p256PEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	msg := []byte(`{"validator":"eth-1"}`)
	for _, caPEM := range [][]byte{ca.CAPEM(), other.CAPEM(), p256PEM, ca.CAPEM()[:100], append(other.CAPEM(), ca.CAPEM()...)} {
		f.Add(caPEM, msg, []byte{}, true)
	}
	f.Add(ca.CAPEM(), msg, ca.SignGrant([]byte("other")), false)
	f.Fuzz(func(t *testing.T, caPEM, msg, sig []byte, signIt bool) {
		if signIt {
			sig = ca.SignGrant(msg)
		}
		if err := VerifyGrant(caPEM, msg, sig); err != nil {
			return
		}
		block, _ := pem.Decode(caPEM)
		if block == nil {
			t.Fatal("verified against no PEM")
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("verified against a certificate that does not parse: %v", err)
		}
		// The only signatures around are our CA's (signIt) and what the
		// fuzzer makes up, which no key verifies: so a verification means
		// our CA's key and its own signature over exactly msg.
		pub, _ := cert.PublicKey.(ed25519.PublicKey)
		if !pub.Equal(ca.caKey.Public()) {
			t.Fatalf("verified against another key %x", pub)
		}
		if !bytes.Equal(sig, ca.SignGrant(msg)) {
			t.Fatalf("a signature the CA did not make verified: %x", sig)
		}
	})
}
