package approval

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// SSHSIG (OpenSSH PROTOCOL.sshsig), as produced by `ssh-keygen -Y sign`.
const (
	sshsigMagic   = "SSHSIG"
	sshsigVersion = 1
	sshsigHash    = "sha512"
	armorBegin    = "-----BEGIN SSH SIGNATURE-----"
	armorEnd      = "-----END SSH SIGNATURE-----"
	maxArmoredLen = 64 << 10
)

// sshsigBlob is the binary signature (PROTOCOL.sshsig section 2) after the
// 6-byte magic.
type sshsigBlob struct {
	Version   uint32
	PublicKey []byte
	Namespace string
	Reserved  []byte
	HashAlg   string
	Signature []byte
}

// signedData is the data passed to the SSH signing function (section 3):
// MAGIC || string namespace || string reserved || string hash_alg || string H(msg).
func signedData(namespace string, message []byte) []byte {
	h := sha512.Sum512(message)
	return append([]byte(sshsigMagic), ssh.Marshal(struct {
		Namespace string
		Reserved  []byte
		HashAlg   string
		Hash      []byte
	}{namespace, nil, sshsigHash, h[:]})...)
}

// sshsigSign makes an armored SSHSIG signature of message. RSA keys sign with
// rsa-sha2-512 (never SHA-1); the signer must implement ssh.AlgorithmSigner,
// as agent and key-file signers from x/crypto do.
func sshsigSign(message []byte, namespace string, signer ssh.Signer) ([]byte, error) {
	if signer == nil {
		return nil, errors.New("approval: nil signer")
	}
	pub := signer.PublicKey()
	if err := checkKeyType(pub); err != nil {
		return nil, fmt.Errorf("approval: signing key: %w", err)
	}
	data := signedData(namespace, message)
	var sig *ssh.Signature
	var err error
	if pub.Type() == ssh.KeyAlgoRSA {
		as, ok := signer.(ssh.AlgorithmSigner)
		if !ok {
			return nil, errors.New("approval: RSA signer cannot sign with rsa-sha2-512 (it does not implement ssh.AlgorithmSigner)")
		}
		sig, err = as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = signer.Sign(rand.Reader, data)
	}
	if err != nil {
		return nil, fmt.Errorf("approval: sign: %w", err)
	}
	// Check our own output: a broken agent or signer must not produce an
	// approval that fails only on the daemon.
	if err := checkSigFormat(pub, sig); err != nil {
		return nil, fmt.Errorf("approval: signer produced %w", err)
	}
	if err := pub.Verify(data, sig); err != nil {
		return nil, fmt.Errorf("approval: signer produced a signature that does not verify: %w", err)
	}
	blob := append([]byte(sshsigMagic), ssh.Marshal(sshsigBlob{
		Version:   sshsigVersion,
		PublicKey: pub.Marshal(),
		Namespace: namespace,
		HashAlg:   sshsigHash,
		Signature: ssh.Marshal(sig),
	})...)
	return armor(blob), nil
}

func armor(blob []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(blob)
	var b bytes.Buffer
	b.WriteString(armorBegin + "\n")
	for len(enc) > 70 {
		b.WriteString(enc[:70] + "\n")
		enc = enc[70:]
	}
	b.WriteString(enc + "\n")
	b.WriteString(armorEnd + "\n")
	return b.Bytes()
}

func unarmor(in []byte) ([]byte, error) {
	if len(in) > maxArmoredLen {
		return nil, errors.New("signature too large")
	}
	s := strings.TrimSpace(strings.ReplaceAll(string(in), "\r\n", "\n"))
	body, ok := strings.CutPrefix(s, armorBegin+"\n")
	if !ok {
		return nil, errors.New("not an armored SSH signature (missing " + armorBegin + ")")
	}
	body, ok = strings.CutSuffix(body, "\n"+armorEnd)
	if !ok {
		return nil, errors.New("not an armored SSH signature (missing " + armorEnd + ")")
	}
	body = strings.ReplaceAll(body, "\n", "")
	blob, err := base64.StdEncoding.Strict().DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("signature base64: %w", err)
	}
	return blob, nil
}

// parsedSig is a structurally valid SSHSIG for our namespace and hash.
type parsedSig struct {
	key ssh.PublicKey
	sig ssh.Signature
}

// parseSSHSig decodes an armored SSHSIG and checks its structure, namespace,
// hash algorithm and key/signature types. It does not verify the signature.
func parseSSHSig(armored []byte, namespace string) (*parsedSig, error) {
	blob, err := unarmor(armored)
	if err != nil {
		return nil, err
	}
	rest, ok := bytes.CutPrefix(blob, []byte(sshsigMagic))
	if !ok {
		return nil, errors.New("signature blob does not start with SSHSIG")
	}
	if len(rest) < 4 {
		return nil, errors.New("signature blob truncated")
	}
	if v := uint32(rest[0])<<24 | uint32(rest[1])<<16 | uint32(rest[2])<<8 | uint32(rest[3]); v != sshsigVersion {
		return nil, fmt.Errorf("unsupported SSHSIG version %d", v)
	}
	var b sshsigBlob
	if err := ssh.Unmarshal(rest, &b); err != nil { // rejects trailing bytes
		return nil, fmt.Errorf("signature blob: %w", err)
	}
	if b.Namespace != namespace {
		return nil, fmt.Errorf("signature is for namespace %q, not %q (sign with ssh-keygen -Y sign -n %s)", b.Namespace, namespace, namespace)
	}
	if b.HashAlg != sshsigHash {
		return nil, fmt.Errorf("signature uses hash %q; only %q is accepted", b.HashAlg, sshsigHash)
	}
	key, err := ssh.ParsePublicKey(b.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("signature public key: %w", err)
	}
	if err := checkKeyType(key); err != nil {
		return nil, err
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal(b.Signature, &sig); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	if err := checkSigFormat(key, &sig); err != nil {
		return nil, err
	}
	return &parsedSig{key: key, sig: sig}, nil
}

// verify checks the signature over message. Reserved is always empty in the
// signed data, as OpenSSH does.
func (p *parsedSig) verify(message []byte, namespace string) error {
	return p.key.Verify(signedData(namespace, message), &p.sig)
}

// checkKeyType allows the key types OpenSSH signs with today and refuses DSA,
// certificates, unknown types and RSA keys below 2048 bits.
func checkKeyType(k ssh.PublicKey) error {
	switch k.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256:
		return nil
	case ssh.KeyAlgoRSA:
		// Re-parse: agent keys (*agent.Key) do not expose the crypto key.
		parsed, err := ssh.ParsePublicKey(k.Marshal())
		if err != nil {
			return fmt.Errorf("RSA key: %w", err)
		}
		cpk, ok := parsed.(ssh.CryptoPublicKey)
		if !ok {
			return errors.New("RSA key without a crypto public key")
		}
		rk, ok := cpk.CryptoPublicKey().(*rsa.PublicKey)
		if !ok || rk.N.BitLen() < 2048 {
			return errors.New("RSA keys must be at least 2048 bits")
		}
		return nil
	default:
		return fmt.Errorf("key type %q is not accepted for approvals (use ed25519, ecdsa or rsa >= 2048 bits)", k.Type())
	}
}

// checkSigFormat requires the signature algorithm to belong to the key type;
// for RSA only rsa-sha2-512 and rsa-sha2-256 (never SHA-1 "ssh-rsa").
func checkSigFormat(k ssh.PublicKey, sig *ssh.Signature) error {
	if len(sig.Rest) != 0 && k.Type() != ssh.KeyAlgoSKED25519 && k.Type() != ssh.KeyAlgoSKECDSA256 {
		return errors.New("signature has trailing data")
	}
	if k.Type() == ssh.KeyAlgoRSA {
		if sig.Format != ssh.KeyAlgoRSASHA512 && sig.Format != ssh.KeyAlgoRSASHA256 {
			return fmt.Errorf("RSA signature algorithm %q is not accepted (need rsa-sha2-512 or rsa-sha2-256)", sig.Format)
		}
		return nil
	}
	if sig.Format != k.Type() {
		return fmt.Errorf("signature algorithm %q does not match key type %q", sig.Format, k.Type())
	}
	return nil
}
