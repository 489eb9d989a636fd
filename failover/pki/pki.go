// Package pki is failoverd's own small certificate authority for the mutual
// TLS between failoverd and its standby agents.
//
// Everything derives from one secret: a 32-byte seed, made once and kept in
// the data directory. The CA key, each standby's key and failoverd's client
// key are ed25519 keys derived from the seed with HKDF-SHA256, and every
// certificate is built from fixed inputs. ed25519 signatures are
// deterministic, so the same inputs always give byte-identical PEM: a retried
// or restarted cloud create sends the identical bootstrap (AWS ClientToken
// and GCP requestId idempotency compare the parameters), and a standby
// re-created under the same name gets the same credentials.
//
// Revocation is by rotation: a new seed (a new directory) makes a new CA,
// and every existing standby stops being trusted.
package pki

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// File names inside the authority's directory.
const (
	SeedFile   = "seed"
	CAKeyFile  = "ca.key"
	CACertFile = "ca.crt"
)

// ClientCommonName is the common name of failoverd's client certificate; the
// standby agent refuses any other.
const ClientCommonName = "failoverd"

// StandbyValidity is how long a standby's server certificate is valid from
// its notBefore.
const StandbyValidity = 365 * 24 * time.Hour

// The CA and the client certificate have fixed validity dates so that they
// too derive from the seed alone.
var (
	caNotBefore = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	caNotAfter  = time.Date(2124, 1, 1, 0, 0, 0, 0, time.UTC)
)

// HKDF info strings; changing any of them changes every credential.
const (
	infoCA      = "failoverd ca"
	infoClient  = "failoverd client"
	infoStandby = "failoverd standby "
)

// Authority is a loaded CA. It is safe for concurrent use (it is immutable).
type Authority struct {
	dir    string
	seed   []byte
	caKey  ed25519.PrivateKey
	caCert *x509.Certificate
	caPEM  []byte
	pool   *x509.CertPool
}

// LoadOrCreate loads the authority kept in dir, creating dir (0700) and the
// seed, ca.key and ca.crt (0600) on first use. A seed that exists is never
// replaced: ca.key and ca.crt derive from it and are rewritten identically
// when missing (a crash between the writes loses nothing), and refused when
// they exist but do not match it.
func LoadOrCreate(dir string) (*Authority, error) {
	a, err := loadOrCreate(dir)
	if errors.Is(err, fs.ErrExist) {
		// Another process created a file between our read and our write:
		// read again, now that it exists.
		a, err = loadOrCreate(dir)
	}
	return a, err
}

func loadOrCreate(dir string) (*Authority, error) {
	if dir == "" {
		return nil, errors.New("pki: no directory given")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: create %s: %w", dir, err)
	}
	seedPath := filepath.Join(dir, SeedFile)
	seed, err := os.ReadFile(seedPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// A CA without its seed cannot be re-derived: refuse rather than
		// silently replace credentials that standbys may already trust.
		for _, f := range []string{CAKeyFile, CACertFile} {
			if _, serr := os.Stat(filepath.Join(dir, f)); serr == nil {
				return nil, fmt.Errorf("pki: %s exists but %s does not; restore the seed, or move the directory away to start a new CA (every running standby then stops being trusted)",
					filepath.Join(dir, f), seedPath)
			}
		}
		seed = make([]byte, ed25519.SeedSize)
		if _, err := rand.Read(seed); err != nil {
			return nil, fmt.Errorf("pki: random seed: %w", err)
		}
		if err := writeFileAtomic(seedPath, seed); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("pki: read seed: %w", err)
	case len(seed) != ed25519.SeedSize:
		return nil, fmt.Errorf("pki: %s is corrupt: %d bytes, want %d", seedPath, len(seed), ed25519.SeedSize)
	}

	a, err := fromSeed(dir, seed)
	if err != nil {
		return nil, err
	}
	keyPEM, err := marshalKey(a.caKey)
	if err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		want []byte
	}{{CAKeyFile, keyPEM}, {CACertFile, a.caPEM}} {
		path := filepath.Join(dir, f.name)
		got, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := writeFileAtomic(path, f.want); err != nil {
				return nil, err
			}
		case err != nil:
			return nil, fmt.Errorf("pki: read %s: %w", path, err)
		case !bytes.Equal(got, f.want):
			if err := checkPEM(f.name, got); err != nil {
				return nil, fmt.Errorf("pki: %s is corrupt: %w", path, err)
			}
			return nil, fmt.Errorf("pki: %s does not belong to the seed in %s (files from different CAs mixed?)", path, seedPath)
		}
	}
	return a, nil
}

// fromSeed derives the CA from the seed.
func fromSeed(dir string, seed []byte) (*Authority, error) {
	caKey, err := deriveKey(seed, infoCA)
	if err != nil {
		return nil, err
	}
	pub := caKey.Public().(ed25519.PublicKey)
	skid := sha256.Sum256(pub)
	fp := hex.EncodeToString(skid[:4])
	tmpl := &x509.Certificate{
		SerialNumber:          serial("ca"),
		Subject:               pkix.Name{Organization: []string{"failoverd"}, CommonName: "failoverd standby CA " + fp},
		NotBefore:             caNotBefore,
		NotAfter:              caNotAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, caKey)
	if err != nil {
		return nil, fmt.Errorf("pki: create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: parse CA certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &Authority{
		dir:    dir,
		seed:   seed,
		caKey:  caKey,
		caCert: cert,
		caPEM:  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pool:   pool,
	}, nil
}

// CAPEM is the CA certificate, PEM encoded: what a standby's agent trusts
// for client certificates (--client-ca).
func (a *Authority) CAPEM() []byte { return bytes.Clone(a.caPEM) }

// Pool is a pool holding only the CA: what failoverd trusts for standby
// server certificates.
func (a *Authority) Pool() *x509.CertPool { return a.pool.Clone() }

// Dir is the directory the authority lives in.
func (a *Authority) Dir() string { return a.dir }

var standbyName = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$`)

// StandbyCredentials returns the server certificate and private key (both
// PEM) of the standby named standbyName, valid from notBefore for
// StandbyValidity. The output depends only on the seed, the name and
// notBefore (to the second): the same inputs give byte-identical PEM.
// The certificate is for TLS server authentication only, with the name as
// its DNS SAN, so a standby cannot pose as failoverd or as another standby.
func (a *Authority) StandbyCredentials(name string, notBefore time.Time) (certPEM, keyPEM []byte, err error) {
	if !standbyName.MatchString(name) {
		return nil, nil, fmt.Errorf("pki: standby name %q is not a lowercase DNS name", name)
	}
	if notBefore.IsZero() {
		return nil, nil, errors.New("pki: standby credentials need a notBefore time")
	}
	notBefore = notBefore.UTC().Truncate(time.Second)
	key, err := deriveKey(a.seed, infoStandby+name)
	if err != nil {
		return nil, nil, err
	}
	h := sha256.Sum256([]byte(name))
	tmpl := &x509.Certificate{
		SerialNumber: positive(h[:16]),
		Subject:      pkix.Name{Organization: []string{"failoverd"}, CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    notBefore,
		NotAfter:     notBefore.Add(StandbyValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	return a.issue(tmpl, key)
}

// ClientCertificate is failoverd's client certificate (CN "failoverd", TLS
// client authentication only), derived from the seed like everything else.
func (a *Authority) ClientCertificate() (tls.Certificate, error) {
	key, err := deriveKey(a.seed, infoClient)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial("client " + ClientCommonName),
		Subject:      pkix.Name{Organization: []string{"failoverd"}, CommonName: ClientCommonName},
		NotBefore:    caNotBefore,
		NotAfter:     caNotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	certPEM, keyPEM, err := a.issue(tmpl, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.X509KeyPair(certPEM, keyPEM)
}

func (a *Authority) issue(tmpl *x509.Certificate, key ed25519.PrivateKey) (certPEM, keyPEM []byte, err error) {
	// rand is unused by ed25519 signing; it is passed because the API wants one.
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.caCert, key.Public(), a.caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("pki: issue certificate for %s: %w", tmpl.Subject.CommonName, err)
	}
	keyPEM, err = marshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

func deriveKey(seed []byte, info string) (ed25519.PrivateKey, error) {
	k, err := hkdf.Key(sha256.New, seed, nil, info, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("pki: derive key: %w", err)
	}
	return ed25519.NewKeyFromSeed(k), nil
}

func marshalKey(k ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("pki: marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func serial(s string) *big.Int {
	h := sha256.Sum256([]byte(s))
	return positive(h[:16])
}

// positive makes a certificate serial from b; serials must be positive.
func positive(b []byte) *big.Int {
	n := new(big.Int).SetBytes(b)
	if n.Sign() == 0 {
		n.SetInt64(1)
	}
	return n
}

// checkPEM says what is wrong with a CA file that does not match the seed.
func checkPEM(name string, b []byte) error {
	block, _ := pem.Decode(b)
	if block == nil {
		return errors.New("no PEM block")
	}
	switch name {
	case CAKeyFile:
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return err
		}
		if _, ok := k.(ed25519.PrivateKey); !ok {
			return fmt.Errorf("key is %T, want ed25519", k)
		}
	case CACertFile:
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return err
		}
	}
	return nil
}

// writeFileAtomic writes a new 0600 file through a temporary file and a
// hard link, so that a crash leaves either nothing or the whole file, and an
// existing file is never replaced (the error then wraps fs.ErrExist).
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	return nil
}

// grantDomain prefixes every grant the CA signs. A certificate signature
// covers DER (it starts with 0x30), so no grant signature can ever pass for
// a certificate's, or the other way round.
const grantDomain = "failoverd-grant/v1\n"

// SignGrant signs a grant's canonical bytes with the CA key: the agent,
// which trusts the CA certificate, can then tell that failoverd itself
// accepted an approval. Deterministic (ed25519).
func (a *Authority) SignGrant(msg []byte) []byte {
	return ed25519.Sign(a.caKey, append([]byte(grantDomain), msg...))
}

// VerifyGrant checks a grant signature against the CA certificate in caPEM.
func VerifyGrant(caPEM, msg, sig []byte) error {
	block, _ := pem.Decode(caPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return errors.New("pki: the CA file holds no PEM certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("pki: parse CA certificate: %w", err)
	}
	pub, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return errors.New("pki: the CA key is not ed25519")
	}
	if !ed25519.Verify(pub, append([]byte(grantDomain), msg...), sig) {
		return errors.New("pki: the grant signature does not verify against failoverd's CA")
	}
	return nil
}
