package approval

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// sshKeygen returns the path of ssh-keygen, or skips (fails when
// FAILOVERD_E2E_REQUIRED is set).
func sshKeygen(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("ssh-keygen")
	if err != nil {
		if os.Getenv("FAILOVERD_E2E_REQUIRED") != "" {
			t.Fatalf("ssh-keygen required (FAILOVERD_E2E_REQUIRED): %v", err)
		}
		t.Skip("ssh-keygen not installed")
	}
	return p
}

func run(t *testing.T, stdin []byte, name string, args ...string) ([]byte, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// TestSSHKeygenInterop: ssh-keygen -Y sign output verifies with Verify, and
// Sign output verifies with ssh-keygen -Y verify, for ed25519, ECDSA and RSA.
func TestSSHKeygenInterop(t *testing.T) {
	keygen := sshKeygen(t)
	for _, kt := range []struct{ name, args string }{
		{"ed25519", "-t ed25519"},
		{"ecdsa-p256", "-t ecdsa -b 256"},
		{"ecdsa-p384", "-t ecdsa -b 384"},
		{"rsa-3072", "-t rsa -b 3072"},
	} {
		t.Run(kt.name, func(t *testing.T) {
			dir := t.TempDir()
			keyFile := filepath.Join(dir, "id")
			args := append(strings.Fields(kt.args), "-q", "-N", "", "-C", "alice", "-f", keyFile)
			if out, err := run(t, nil, keygen, args...); err != nil {
				t.Fatalf("keygen: %v %s", err, out)
			}
			pubText, err := os.ReadFile(keyFile + ".pub")
			if err != nil {
				t.Fatal(err)
			}
			allowedLine := "alice@example " + strings.TrimSpace(string(pubText))
			allowedFile := filepath.Join(dir, "allowed_signers")
			if err := os.WriteFile(allowedFile, []byte(`alice@example namespaces="failoverd-approval" `+strings.TrimSpace(string(pubText))+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			signers, err := ParseAllowedSigners([]string{allowedLine})
			if err != nil {
				t.Fatal(err)
			}
			a := baseApproval()
			msg, _ := a.Canonical()
			msgFile := filepath.Join(dir, "approval.txt")
			if err := os.WriteFile(msgFile, msg, 0o600); err != nil {
				t.Fatal(err)
			}

			// ssh-keygen signs, we verify.
			if out, err := run(t, nil, keygen, "-Y", "sign", "-q", "-f", keyFile, "-n", Namespace, msgFile); err != nil {
				t.Fatalf("ssh-keygen -Y sign: %v %s", err, out)
			}
			theirSig, err := os.ReadFile(msgFile + ".sig")
			if err != nil {
				t.Fatal(err)
			}
			v := newVerifier(signers, 1, t0.Add(time.Minute))
			res, err := v.Verify(a, [][]byte{theirSig}, baseWant())
			if err != nil {
				t.Fatalf("ssh-keygen signature refused: %v\n%s", err, theirSig)
			}
			if res.Approvers[0].Principal != "alice@example" {
				t.Fatalf("%+v", res)
			}
			// ...and it is bound to these bytes.
			b := baseApproval()
			b.Standby = "other"
			w := baseWant()
			w.Standby = "other"
			if _, err := newVerifier(signers, 1, t0).Verify(b, [][]byte{theirSig}, w); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("ssh-keygen signature over other bytes: %v", err)
			}
			// ssh-keygen with another namespace is refused.
			other := filepath.Join(dir, "other.txt")
			os.WriteFile(other, msg, 0o600)
			if out, err := run(t, nil, keygen, "-Y", "sign", "-q", "-f", keyFile, "-n", "file", other); err != nil {
				t.Fatalf("ssh-keygen -Y sign: %v %s", err, out)
			}
			fileSig, _ := os.ReadFile(other + ".sig")
			if _, err := newVerifier(signers, 1, t0).Verify(a, [][]byte{fileSig}, baseWant()); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("namespace file accepted: %v", err)
			}

			// We sign with the same key file, ssh-keygen verifies.
			pem, err := os.ReadFile(keyFile)
			if err != nil {
				t.Fatal(err)
			}
			signer, err := ssh.ParsePrivateKey(pem)
			if err != nil {
				t.Fatal(err)
			}
			ourSig, err := Sign(a, signer)
			if err != nil {
				t.Fatal(err)
			}
			ourFile := filepath.Join(dir, "ours.sig")
			os.WriteFile(ourFile, ourSig, 0o600)
			verify := func(m []byte, ns string) ([]byte, error) {
				return run(t, m, keygen, "-Y", "verify", "-f", allowedFile, "-I", "alice@example", "-n", ns, "-s", ourFile)
			}
			out, err := verify(msg, Namespace)
			if err != nil || !strings.Contains(string(out), "Good") {
				t.Fatalf("ssh-keygen -Y verify refused our signature: %v %s\n%s", err, out, ourSig)
			}
			t.Logf("ssh-keygen: %s", strings.TrimSpace(string(out)))
			if out, err := verify(append(bytes.Clone(msg), 'x'), Namespace); err == nil {
				t.Fatalf("ssh-keygen accepted our signature over other bytes: %s", out)
			}
			if out, err := verify(msg, "file"); err == nil {
				t.Fatalf("ssh-keygen accepted our signature in another namespace: %s", out)
			}
			// And our signature verifies with us too.
			if _, err := newVerifier(signers, 1, t0).Verify(a, [][]byte{ourSig}, baseWant()); err != nil {
				t.Fatal(err)
			}
			if signer.PublicKey().Type() == ssh.KeyAlgoRSA {
				p, _ := parseSSHSig(theirSig, Namespace)
				q, _ := parseSSHSig(ourSig, Namespace)
				if p.sig.Format != ssh.KeyAlgoRSASHA512 || q.sig.Format != ssh.KeyAlgoRSASHA512 {
					t.Fatalf("rsa formats: theirs %s ours %s", p.sig.Format, q.sig.Format)
				}
			}
		})
	}
}
