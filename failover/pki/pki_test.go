package pki

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func mustLoad(t *testing.T, dir string) *Authority {
	t.Helper()
	a, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func parseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("not a certificate PEM: %q", certPEM)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCreatePersistsWithPrivateModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	a := mustLoad(t, dir)
	for _, f := range []string{SeedFile, CAKeyFile, CACertFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	seed, _ := os.ReadFile(filepath.Join(dir, SeedFile))
	if len(seed) != 32 {
		t.Fatalf("seed has %d bytes", len(seed))
	}
	onDisk, _ := os.ReadFile(filepath.Join(dir, CACertFile))
	if !bytes.Equal(onDisk, a.CAPEM()) {
		t.Fatal("ca.crt on disk differs from CAPEM")
	}
	ca := parseCert(t, a.CAPEM())
	if !ca.IsCA || ca.PublicKeyAlgorithm != x509.Ed25519 {
		t.Fatalf("CA: IsCA=%v alg=%v", ca.IsCA, ca.PublicKeyAlgorithm)
	}
	// A second instance in the same dir is the same CA.
	b := mustLoad(t, dir)
	if !bytes.Equal(a.CAPEM(), b.CAPEM()) {
		t.Fatal("reloading gave another CA")
	}
	// Another dir is another CA.
	c := mustLoad(t, t.TempDir())
	if bytes.Equal(a.CAPEM(), c.CAPEM()) {
		t.Fatal("two directories gave the same CA")
	}
}

func TestStandbyCredentialsDeterministic(t *testing.T) {
	dir := t.TempDir()
	a := mustLoad(t, dir)
	c1, k1, err := a.StandbyCredentials("fo-inc-1", t0)
	if err != nil {
		t.Fatal(err)
	}
	c2, k2, err := a.StandbyCredentials("fo-inc-1", t0.Add(300*time.Millisecond)) // same second
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c1, c2) || !bytes.Equal(k1, k2) {
		t.Fatal("same inputs gave different credentials")
	}
	// Across a reload of the same directory (a restarted failoverd).
	b := mustLoad(t, dir)
	c3, k3, err := b.StandbyCredentials("fo-inc-1", t0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c1, c3) || !bytes.Equal(k1, k3) {
		t.Fatal("credentials changed across LoadOrCreate of the same dir")
	}
	// Another name: another key and certificate.
	c4, k4, err := a.StandbyCredentials("fo-inc-2", t0)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(c1, c4) || bytes.Equal(k1, k4) {
		t.Fatal("different names gave the same credentials")
	}
	// Another notBefore: same key, another certificate.
	c5, k5, _ := a.StandbyCredentials("fo-inc-1", t0.Add(time.Hour))
	if bytes.Equal(c1, c5) || !bytes.Equal(k1, k5) {
		t.Fatal("notBefore should change the certificate only")
	}
	// Another CA: another key for the same name.
	o := mustLoad(t, t.TempDir())
	_, k6, _ := o.StandbyCredentials("fo-inc-1", t0)
	if bytes.Equal(k1, k6) {
		t.Fatal("two CAs derived the same standby key")
	}

	cert := parseCert(t, c1)
	if cert.Subject.CommonName != "fo-inc-1" || len(cert.DNSNames) != 1 || cert.DNSNames[0] != "fo-inc-1" {
		t.Fatalf("names: CN %q SAN %v", cert.Subject.CommonName, cert.DNSNames)
	}
	if !cert.NotBefore.Equal(t0) || !cert.NotAfter.Equal(t0.Add(StandbyValidity)) {
		t.Fatalf("validity %v..%v", cert.NotBefore, cert.NotAfter)
	}
	if len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
		t.Fatalf("ext key usage %v", cert.ExtKeyUsage)
	}
	if cert.SerialNumber.Sign() <= 0 || cert.SerialNumber.BitLen() > 128 {
		t.Fatalf("serial %v", cert.SerialNumber)
	}
	pair, err := tls.X509KeyPair(c1, k1)
	if err != nil {
		t.Fatalf("cert and key do not pair: %v", err)
	}
	if _, ok := pair.PrivateKey.(ed25519.PrivateKey); !ok {
		t.Fatalf("key is %T", pair.PrivateKey)
	}
}

func TestStandbyCertVerifiesOnlyForItsName(t *testing.T) {
	a := mustLoad(t, t.TempDir())
	c, _, err := a.StandbyCredentials("fo-inc-1", t0)
	if err != nil {
		t.Fatal(err)
	}
	cert := parseCert(t, c)
	at := t0.Add(24 * time.Hour)
	opts := x509.VerifyOptions{Roots: a.Pool(), DNSName: "fo-inc-1", CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	if _, err := cert.Verify(opts); err != nil {
		t.Fatalf("does not verify for its own name: %v", err)
	}
	opts.DNSName = "fo-inc-2"
	if _, err := cert.Verify(opts); err == nil {
		t.Fatal("verifies for another name")
	}
	opts.DNSName = "fo-inc-1"
	opts.KeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	if _, err := cert.Verify(opts); err == nil {
		t.Fatal("a standby certificate verifies as a client certificate")
	}
	opts.KeyUsages = nil
	opts.Roots = mustLoad(t, t.TempDir()).Pool()
	if _, err := cert.Verify(opts); err == nil {
		t.Fatal("verifies against another CA")
	}
	opts.Roots = a.Pool()
	opts.CurrentTime = t0.Add(StandbyValidity + time.Hour)
	if _, err := cert.Verify(opts); err == nil {
		t.Fatal("verifies after it expired")
	}
}

func TestClientCertificate(t *testing.T) {
	dir := t.TempDir()
	a := mustLoad(t, dir)
	c1, err := a.ClientCertificate()
	if err != nil {
		t.Fatal(err)
	}
	c2, err := mustLoad(t, dir).ClientCertificate()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(c1.Certificate[0], c2.Certificate[0]) {
		t.Fatal("client certificate not deterministic")
	}
	cert, err := x509.ParseCertificate(c1.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if cert.Subject.CommonName != "failoverd" {
		t.Fatalf("CN %q", cert.Subject.CommonName)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: a.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Fatalf("client cert does not verify: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: a.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Fatal("client cert verifies as a server cert")
	}
	// Its key differs from every standby key.
	_, k, _ := a.StandbyCredentials("failoverd", t0)
	pair, _ := tls.X509KeyPair(mustPEM(t, c1), k)
	if pair.Certificate != nil {
		t.Fatal("client key equals a standby key")
	}
}

func mustPEM(t *testing.T, c tls.Certificate) []byte {
	t.Helper()
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
}

func TestBadNames(t *testing.T) {
	a := mustLoad(t, t.TempDir())
	for _, n := range []string{"", "Fo-Upper", "fo_underscore", "-fo", "fo-", "a b", strings.Repeat("a", 254)} {
		if _, _, err := a.StandbyCredentials(n, t0); err == nil {
			t.Errorf("name %q accepted", n)
		}
	}
	if _, _, err := a.StandbyCredentials("fo-x", time.Time{}); err == nil {
		t.Error("zero notBefore accepted")
	}
}

func TestCorruptFiles(t *testing.T) {
	other := t.TempDir()
	mustLoad(t, other)
	otherKey, _ := os.ReadFile(filepath.Join(other, CAKeyFile))
	otherCert, _ := os.ReadFile(filepath.Join(other, CACertFile))

	cases := []struct {
		name, file string
		content    []byte
		want       string
	}{
		{"short seed", SeedFile, []byte("short"), "corrupt"},
		{"long seed", SeedFile, bytes.Repeat([]byte{1}, 33), "corrupt"},
		{"garbage key", CAKeyFile, []byte("not a key"), "corrupt"},
		{"garbage cert", CACertFile, []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "corrupt"},
		{"key of another CA", CAKeyFile, otherKey, "does not belong"},
		{"cert of another CA", CACertFile, otherCert, "does not belong"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			mustLoad(t, dir)
			if err := os.WriteFile(filepath.Join(dir, tc.file), tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreate(dir)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.file) {
				t.Fatalf("err = %v, want one naming %s and saying %q", err, tc.file, tc.want)
			}
		})
	}

	t.Run("unreadable", func(t *testing.T) {
		if os.Geteuid() == 0 {
			t.Skip("root reads everything")
		}
		dir := t.TempDir()
		mustLoad(t, dir)
		if err := os.Chmod(filepath.Join(dir, SeedFile), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreate(dir); err == nil || !strings.Contains(err.Error(), "seed") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("seed lost, CA kept", func(t *testing.T) {
		dir := t.TempDir()
		mustLoad(t, dir)
		os.Remove(filepath.Join(dir, SeedFile))
		if _, err := LoadOrCreate(dir); err == nil || !strings.Contains(err.Error(), "restore the seed") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestMissingDerivedFilesAreRewrittenIdentically(t *testing.T) {
	dir := t.TempDir()
	a := mustLoad(t, dir)
	key, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	os.Remove(filepath.Join(dir, CAKeyFile))
	os.Remove(filepath.Join(dir, CACertFile))
	b := mustLoad(t, dir)
	if !bytes.Equal(a.CAPEM(), b.CAPEM()) {
		t.Fatal("CA changed")
	}
	key2, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if !bytes.Equal(key, key2) {
		t.Fatal("ca.key changed")
	}
}
