package agent

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/beacon/beacontest"
	"github.com/failoverd/failoverd/failover/grant"
	"github.com/failoverd/failoverd/failover/interchange"
	"github.com/failoverd/failoverd/failover/keymanager/keymanagertest"
	"github.com/failoverd/failoverd/failover/keystore"
	"github.com/failoverd/failoverd/failover/pki"
)

// The fuzz fixture is deterministic (a fixed CA seed, fixed approver keys,
// fixed keystores, a fixed clock), so a corpus entry that carried a genuine
// approval and grant in one run still carries them in the next.
const fuzzStandby = "fo-eth-1-1"

var (
	fuzzPK1 = "0x" + strings.Repeat("a1", 48)
	fuzzPK2 = "0x" + strings.Repeat("b2", 48)
	fuzzPK3 = "0x" + strings.Repeat("c3", 48)
	// 30 s into epoch 1000 of beacontest's chain, whose current epoch is 1000.
	fuzzNow = time.Unix(beacontest.MainnetGenesisTime+1000*32*12+30, 0).UTC()
)

type agentFuzz struct {
	ca                         *pki.Authority
	certFile, keyFile, caFile  string
	signers                    approval.AllowedSigners
	clientChain, otherChain    []*x509.Certificate
	valid                      ImportRequest
	validBody                  []byte
	genuineSigs                [][]byte // unarmored SSHSIG blobs the approvers really made
	fence                      FenceRequest
	fenceBody                  []byte
	passwords                  map[string]string
	keystores                  map[string]string
	chainBody, chainTwoKeyBody []byte
}

func fuzzSeed(label string) []byte {
	s := sha256.Sum256([]byte("failoverd agent fuzz " + label))
	return s[:]
}

// fuzzKeystore is an EIP-2335 keystore (pbkdf2, aes-128-ctr) of pubkey
// that password unlocks, with everything random taken from label instead.
func fuzzKeystore(pubkey, password, label string) string {
	salt := fuzzSeed("salt " + label)
	iv := fuzzSeed("iv " + label)[:16]
	secret := fuzzSeed("secret " + label)
	uuid := hex.EncodeToString(fuzzSeed("uuid " + label)[:16])
	const iterations = 256 // a fixture: the validator client only checks the password
	dk, err := pbkdf2.Key(sha256.New, password, salt, iterations, 32)
	if err != nil {
		panic(err)
	}
	block, err := aes.NewCipher(dk[:16])
	if err != nil {
		panic(err)
	}
	ct := make([]byte, len(secret))
	cipher.NewCTR(block, iv).XORKeyStream(ct, secret)
	sum := sha256.Sum256(append(slices.Clone(dk[16:32]), ct...))
	b, _ := json.Marshal(map[string]any{
		"version": 4,
		"uuid":    uuid[:8] + "-" + uuid[8:12] + "-" + uuid[12:16] + "-" + uuid[16:20] + "-" + uuid[20:],
		"path":    "m/12381/3600/0/0/0",
		"pubkey":  strings.TrimPrefix(pubkey, "0x"),
		"crypto": map[string]any{
			"kdf": map[string]any{"function": "pbkdf2", "message": "",
				"params": map[string]any{"dklen": 32, "c": iterations, "prf": "hmac-sha256", "salt": hex.EncodeToString(salt)}},
			"checksum": map[string]any{"function": "sha256", "params": map[string]any{}, "message": hex.EncodeToString(sum[:])},
			"cipher": map[string]any{"function": "aes-128-ctr", "params": map[string]any{"iv": hex.EncodeToString(iv)},
				"message": hex.EncodeToString(ct)},
		},
	})
	return string(b)
}

func newAgentFuzz(f *testing.F) *agentFuzz {
	f.Helper()
	fx := &agentFuzz{}
	caDir := f.TempDir()
	if err := os.WriteFile(filepath.Join(caDir, pki.SeedFile), fuzzSeed("ca"), 0o600); err != nil {
		f.Fatal(err)
	}
	var err error
	if fx.ca, err = pki.LoadOrCreate(caDir); err != nil {
		f.Fatal(err)
	}
	certPEM, keyPEM, err := fx.ca.StandbyCredentials(fuzzStandby, fuzzNow.Add(-time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	dir := f.TempDir()
	fx.certFile, fx.keyFile, fx.caFile = filepath.Join(dir, "agent.crt"), filepath.Join(dir, "agent.key"), filepath.Join(dir, "ca.crt")
	for path, b := range map[string][]byte{fx.certFile: certPEM, fx.keyFile: keyPEM, fx.caFile: fx.ca.CAPEM()} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			f.Fatal(err)
		}
	}
	standbyCert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		f.Fatal(err)
	}
	sum := sha256.Sum256(standbyCert.Certificate[0])
	certSHA := hex.EncodeToString(sum[:])
	block, _ := pem.Decode(fx.ca.CAPEM())
	caCert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		f.Fatal(err)
	}
	client, err := fx.ca.ClientCertificate()
	if err != nil {
		f.Fatal(err)
	}
	clientLeaf, err := x509.ParseCertificate(client.Certificate[0])
	if err != nil {
		f.Fatal(err)
	}
	standbyLeaf, err := x509.ParseCertificate(standbyCert.Certificate[0])
	if err != nil {
		f.Fatal(err)
	}
	// What the TLS layer hands the handler: failoverd's verified client
	// certificate, or another certificate the same CA issued.
	fx.clientChain = []*x509.Certificate{clientLeaf, caCert}
	fx.otherChain = []*x509.Certificate{standbyLeaf, caCert}

	approver, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(fuzzSeed("alice")))
	if err != nil {
		f.Fatal(err)
	}
	line := "alice@example " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(approver.PublicKey())))
	if fx.signers, err = approval.ParseAllowedSigners([]string{line}); err != nil {
		f.Fatal(err)
	}

	fx.passwords = map[string]string{fuzzPK1: "fuzz-password-1", fuzzPK2: "fuzz-password-2", fuzzPK3: "fuzz-password-3"}
	fx.keystores = map[string]string{}
	for _, pk := range []string{fuzzPK1, fuzzPK2, fuzzPK3} {
		fx.keystores[pk] = fuzzKeystore(pk, fx.passwords[pk], pk)
	}

	a := approval.Approval{Incident: "eth-1-1", Standby: fuzzStandby, StandbyCertSHA256: certSHA,
		Pubkeys: []string{fuzzPK1, fuzzPK2}, Action: approval.ActionMigrate, Issued: fuzzNow.Truncate(time.Second),
		Expires: fuzzNow.Truncate(time.Second).Add(15 * time.Minute), Nonce: "agent-fuzz-nonce-0001", Approver: "alice@example"}
	text, err := a.Canonical()
	if err != nil {
		f.Fatal(err)
	}
	sig, err := approval.Sign(a, approver)
	if err != nil {
		f.Fatal(err)
	}
	fx.genuineSigs = [][]byte{sigBlob(string(sig))}
	approvalSum := sha256.Sum256(text)
	g, err := grant.Sign(grant.Grant{Validator: "eth-1", Incident: "eth-1-1", Standby: fuzzStandby, Action: approval.ActionMigrate,
		Owner: fuzzStandby, Generation: 1, Pubkeys: []string{fuzzPK1, fuzzPK2}, ApprovalSHA256: hex.EncodeToString(approvalSum[:]),
		Expires: fuzzNow.Add(15 * time.Minute)}, fx.ca)
	if err != nil {
		f.Fatal(err)
	}
	sp := keymanagertest.Interchange(beacontest.MainnetRoot, map[string]keymanagertest.History{
		fuzzPK1: {Blocks: []uint64{31_000}, Attestations: []keymanagertest.Attestation{{Source: 968, Target: 969}}},
		fuzzPK2: {Blocks: []uint64{31_001}, Attestations: []keymanagertest.Attestation{{Source: 968, Target: 969}}},
	})
	fx.valid = ImportRequest{Approval: string(text), Signatures: []string{string(sig)}, Grant: g,
		Keystores: []string{fx.keystores[fuzzPK1], fx.keystores[fuzzPK2]}, Passwords: []string{fx.passwords[fuzzPK1], fx.passwords[fuzzPK2]},
		SlashingProtection: sp}
	if fx.validBody, err = json.Marshal(fx.valid); err != nil {
		f.Fatal(err)
	}

	fenceSum := sha256.Sum256([]byte("a failback approval"))
	fg, err := grant.Sign(grant.Grant{Validator: "eth-1", Incident: "eth-1-1", Standby: fuzzStandby, Action: approval.ActionFailback,
		Owner: "home", Generation: 2, Pubkeys: []string{fuzzPK1, fuzzPK2}, ApprovalSHA256: hex.EncodeToString(fenceSum[:]),
		Expires: fuzzNow.Add(15 * time.Minute)}, fx.ca)
	if err != nil {
		f.Fatal(err)
	}
	fx.fence = FenceRequest{Grant: fg}
	if fx.fenceBody, err = json.Marshal(fx.fence); err != nil {
		f.Fatal(err)
	}
	fx.chainBody = []byte(`{"pubkeys":["` + fuzzPK1 + `"],"epochs":3}`)
	fx.chainTwoKeyBody = []byte(`{"pubkeys":["` + fuzzPK1 + `","` + strings.ToUpper(fuzzPK2[2:4]) + fuzzPK2[4:] + `"],"epochs":4}`)
	return fx
}

// sigBlob is the binary SSHSIG inside an armored signature (nil when it is
// not armored base64), so that two armorings of one signature compare equal.
func sigBlob(s string) []byte {
	s = strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
	s, ok1 := strings.CutPrefix(s, "-----BEGIN SSH SIGNATURE-----")
	s, ok2 := strings.CutSuffix(s, "-----END SSH SIGNATURE-----")
	if !ok1 || !ok2 {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		return nil
	}
	return b
}

// fuzzAgent is one agent built from the fixture, with its own Keymanager,
// beacon node and state: every input starts from the same world.
type fuzzAgent struct {
	h          http.Handler
	km         *keymanagertest.Server
	bn         *beacontest.Server
	controlDir string
	stateDir   string
}

func (fx *agentFuzz) start(t *testing.T) *fuzzAgent {
	km := keymanagertest.New(t)
	bn := beacontest.New(t)
	for i, pk := range []string{fuzzPK1, fuzzPK2, fuzzPK3} {
		bn.AddValidator(beacontest.Validator{Index: uint64(11 + i), Pubkey: pk})
	}
	a := &fuzzAgent{km: km, bn: bn, controlDir: t.TempDir(), stateDir: t.TempDir()}
	o := Options{CertFile: fx.certFile, KeyFile: fx.keyFile, ClientCAFile: fx.caFile,
		// The execution client is not asked for anything but status; the
		// beacon node answers it with 404s, which a status only reports.
		ExecutionURL: bn.URL, BeaconURL: bn.URL, DataPath: a.stateDir, ControlDir: a.controlDir,
		Timeout: 5 * time.Second, Now: func() time.Time { return fuzzNow }, Version: "fuzz",
		Keys: KeyOptions{AllowedSigners: fx.signers, Threshold: 1, KeymanagerURL: km.URL, KeymanagerToken: km.Token,
			StateDir: a.stateDir, SilentEpochs: 3}}
	h, _, err := build(&o)
	if err != nil {
		t.Fatal(err)
	}
	a.h = h
	return a
}

func (a *fuzzAgent) keymanagerCalls() (posts, deletes int) {
	for _, e := range a.km.Exchanges() {
		switch e.Method {
		case http.MethodPost:
			posts++
		case http.MethodDelete:
			deletes++
		}
	}
	return posts, deletes
}

func (a *fuzzAgent) gateOpen() bool {
	_, err := os.Stat(filepath.Join(a.controlDir, ValidatorStartFile))
	return err == nil
}

// genuineImport says why req does not carry exactly what the approver and
// failoverd signed (nil when it does): the approval text, failoverd's grant,
// at least one real signature, keystores for exactly the granted keys, and
// slashing protection for them on this network.
func (fx *agentFuzz) genuineImport(req ImportRequest) error {
	if req.Approval != fx.valid.Approval {
		return fmt.Errorf("approval differs")
	}
	if !bytes.Equal(req.Grant.Payload, fx.valid.Grant.Payload) || !bytes.Equal(req.Grant.Signature, fx.valid.Grant.Signature) {
		return fmt.Errorf("grant differs")
	}
	real := false
	for _, s := range req.Signatures {
		b := sigBlob(s)
		if b == nil {
			return fmt.Errorf("a signature is not armored")
		}
		for _, g := range fx.genuineSigs {
			real = real || bytes.Equal(b, g)
		}
	}
	if !real {
		return fmt.Errorf("no genuine signature")
	}
	var pks []string
	for _, ks := range req.Keystores {
		k, err := keystore.Parse([]byte(ks))
		if err != nil {
			return fmt.Errorf("keystore: %v", err)
		}
		pks = append(pks, k.Pubkey)
	}
	slices.Sort(pks)
	if !slices.Equal(pks, []string{fuzzPK1, fuzzPK2}) {
		return fmt.Errorf("keystores for %v", pks)
	}
	sp, err := interchange.Parse([]byte(req.SlashingProtection))
	if err != nil {
		return err
	}
	return sp.Validate(beacontest.MainnetRoot, pks)
}

// genuineFence is nil when req carries failoverd's failback grant.
func (fx *agentFuzz) genuineFence(req FenceRequest) error {
	if !bytes.Equal(req.Grant.Payload, fx.fence.Grant.Payload) || !bytes.Equal(req.Grant.Signature, fx.fence.Grant.Signature) {
		return fmt.Errorf("fence grant differs")
	}
	return nil
}

// The routes FuzzAgentEndpoints drives, by the first input byte.
var agentRoutes = []struct{ method, path string }{
	{http.MethodPost, "/v1/keys"},
	{http.MethodPost, "/v1/keys/fence"},
	{http.MethodPost, "/v1/chain"},
	{http.MethodGet, "/v1/status"},
	{http.MethodPost, "/v1/clients/stop"},
}

// FuzzAgentEndpoints sends arbitrary bodies, headers and client identities
// to the agent's real handler. Whatever arrives: no panic; a JSON answer;
// never a 5xx (the local clients are healthy, so only the input can be
// wrong); every route but the key import refuses anything but failoverd's
// client certificate before reading the body; and the validator client is
// touched only by an import that carries the genuine approval and grant or
// a fence that carries the genuine failback grant.
func FuzzAgentEndpoints(f *testing.F) {
	fx := newAgentFuzz(f)
	for _, tlsMode := range []uint8{0, 1, 2} {
		f.Add(uint8(0), tlsMode, "application/json", fx.validBody)
		f.Add(uint8(1), tlsMode, "application/json", fx.fenceBody)
		f.Add(uint8(2), tlsMode, "application/json", fx.chainBody)
	}
	f.Add(uint8(2), uint8(1), "", fx.chainTwoKeyBody)
	// Berachain's key files sent to an Ethereum agent.
	f.Add(uint8(0), uint8(0), "application/json", bytes.Replace(fx.validBody, []byte(`{"approval"`), []byte(`{"priv_validator_key":"{}","approval"`), 1))
	f.Add(uint8(3), uint8(1), "", []byte{})
	f.Add(uint8(4), uint8(1), "text/plain", []byte("stop"))
	for _, s := range []string{``, `null`, `{}`, `[]`, `{"grant":{"payload":"!!"}}`, `{"pubkeys":[],"epochs":-1}`,
		`{"keystores":[""],"passwords":[""]}`, `{"approval":"` + strings.Repeat("x", 100) + `"}`, "\xff\xfe"} {
		for r := range agentRoutes {
			f.Add(uint8(r), uint8(1), "application/json", []byte(s))
		}
	}
	f.Fuzz(func(t *testing.T, route, tlsMode uint8, contentType string, body []byte) {
		rt := agentRoutes[int(route)%len(agentRoutes)]
		a := fx.start(t)
		req := httptest.NewRequest(rt.method, rt.path, bytes.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		switch tlsMode % 4 {
		case 1:
			req.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{fx.clientChain}, PeerCertificates: fx.clientChain[:1]}
		case 2:
			req.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{fx.otherChain}, PeerCertificates: fx.otherChain[:1]}
		case 3:
			req.TLS = &tls.ConnectionState{PeerCertificates: fx.clientChain[:1]} // presented, not verified
		default:
			req.TLS = nil
		}
		rec := httptest.NewRecorder()
		a.h.ServeHTTP(rec, req)

		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s %s answered %d with Content-Type %q", rt.method, rt.path, rec.Code, ct)
		}
		var reply map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil {
			t.Fatalf("%s %s answered %d with a body that is no JSON object: %v\n%s", rt.method, rt.path, rec.Code, err, rec.Body)
		}
		if rec.Code >= 500 {
			t.Fatalf("%s %s answered %d for a client's input: %s", rt.method, rt.path, rec.Code, rec.Body)
		}
		posts, deletes := a.keymanagerCalls()
		if rt.path != "/v1/keys" && tlsMode%4 != 1 {
			if rec.Code != http.StatusForbidden {
				t.Fatalf("%s without failoverd's certificate answered %d", rt.path, rec.Code)
			}
			if posts+deletes != 0 || len(a.bn.Exchanges()) != 0 {
				t.Fatal("an unauthenticated request reached the local clients")
			}
			return
		}
		switch rt.path {
		case "/v1/keys":
			var ir ImportRequest
			if posts+deletes > 0 {
				if err := json.Unmarshal(body, &ir); err != nil {
					t.Fatalf("the validator client was called for a body that does not decode: %v", err)
				}
				if err := fx.genuineImport(ir); err != nil {
					t.Fatalf("the validator client was called for a forged import (%v)", err)
				}
			}
			if rec.Code == http.StatusOK {
				if posts != 1 || !slices.Equal(a.km.ActiveKeys(), []string{fuzzPK1, fuzzPK2}) || !a.gateOpen() {
					t.Fatalf("200 without the keys imported: active %v, gate open %v", a.km.ActiveKeys(), a.gateOpen())
				}
			} else if len(a.km.ActiveKeys()) != 0 || a.gateOpen() {
				t.Fatalf("answered %d but keys %v are active (gate open %v)", rec.Code, a.km.ActiveKeys(), a.gateOpen())
			}
		case "/v1/keys/fence":
			if posts > 0 {
				t.Fatal("a fence imported keys")
			}
			if deletes > 0 {
				var fr FenceRequest
				if err := json.Unmarshal(body, &fr); err != nil {
					t.Fatalf("the validator client was called for a fence body that does not decode: %v", err)
				}
				if err := fx.genuineFence(fr); err != nil {
					t.Fatalf("keys deleted on a forged fence (%v)", err)
				}
			}
		default:
			if posts+deletes > 0 {
				t.Fatalf("%s called the validator client", rt.path)
			}
		}
	})
}

// FuzzAgentImport starts from a genuine key import and changes one field
// (the approval, a signature, the grant, a keystore, a password, the
// slashing protection, the list lengths, or the raw body). The validator
// client sees an import only when the authorisation is still genuine; a
// 200 means exactly the granted keys are active and the gate is open; any
// other answer leaves no key active and the gate closed; an unchanged
// request is imported.
func FuzzAgentImport(f *testing.F) {
	fx := newAgentFuzz(f)
	f.Add(uint8(255), uint8(0), uint16(0), []byte{}) // unchanged
	for field := range uint8(12) {
		for mode := range uint8(4) {
			f.Add(field, mode, uint16(17), []byte("x"))
		}
	}
	f.Add(uint8(10), uint8(0), uint16(0), []byte{}) // keystores swapped, passwords not
	f.Add(uint8(5), uint8(0), uint16(0), []byte(fx.keystores[fuzzPK3]))
	f.Add(uint8(7), uint8(0), uint16(1), []byte("not-the-password"))
	f.Fuzz(func(t *testing.T, field, mode uint8, pos uint16, data []byte) {
		req := fx.valid
		req.Signatures = slices.Clone(fx.valid.Signatures)
		req.Keystores = slices.Clone(fx.valid.Keystores)
		req.Passwords = slices.Clone(fx.valid.Passwords)
		mut := func(b []byte) []byte { return mutateBytes(b, mode, int(pos), data) }
		var body []byte
		switch field % 13 {
		case 0:
			req.Approval = string(mut([]byte(req.Approval)))
		case 1:
			req.Signatures[0] = string(mut([]byte(req.Signatures[0])))
		case 2:
			req.Signatures = append(req.Signatures, string(data))
		case 3:
			req.Grant.Payload = mut(req.Grant.Payload)
		case 4:
			req.Grant.Signature = mut(req.Grant.Signature)
		case 5:
			req.Keystores[0] = string(mut([]byte(req.Keystores[0])))
		case 6:
			req.Keystores[int(pos)%2] = string(mut([]byte(req.Keystores[int(pos)%2])))
		case 7:
			req.Passwords[int(pos)%2] = string(mut([]byte(req.Passwords[int(pos)%2])))
		case 8:
			req.SlashingProtection = string(mut([]byte(req.SlashingProtection)))
		case 9:
			// Drop or repeat one element of one list.
			lists := []*[]string{&req.Signatures, &req.Keystores, &req.Passwords}
			l := lists[int(pos)%3]
			i := int(pos/3) % len(*l)
			if mode%2 == 0 {
				*l = slices.Delete(*l, i, i+1)
			} else {
				*l = append(*l, (*l)[i])
			}
		case 10:
			req.Keystores[0], req.Keystores[1] = req.Keystores[1], req.Keystores[0]
			if mode%2 == 1 {
				req.Passwords[0], req.Passwords[1] = req.Passwords[1], req.Passwords[0]
			}
		case 11:
			body = mut(slices.Clone(fx.validBody))
		}
		if body == nil {
			var err error
			if body, err = json.Marshal(req); err != nil {
				t.Fatal(err)
			}
		}
		a := fx.start(t)
		r := httptest.NewRequest(http.MethodPost, "/v1/keys", bytes.NewReader(body))
		rec := httptest.NewRecorder()
		a.h.ServeHTTP(rec, r)

		var reply ImportReply
		if err := json.Unmarshal(rec.Body.Bytes(), &reply); err != nil {
			t.Fatalf("answered %d with no JSON reply: %v", rec.Code, err)
		}
		if rec.Code >= 500 {
			t.Fatalf("answered %d: %s", rec.Code, rec.Body)
		}
		posts, deletes := a.keymanagerCalls()
		if posts+deletes > 0 {
			var sent ImportRequest
			if err := json.Unmarshal(body, &sent); err != nil {
				t.Fatalf("the validator client was called for a body that does not decode: %v", err)
			}
			if err := fx.genuineImport(sent); err != nil {
				t.Fatalf("the validator client was called for a forged import (%v): %s", err, rec.Body)
			}
		}
		if rec.Code == http.StatusOK {
			if reply.Phase != "imported" || reply.Generation != 1 || !slices.Equal(a.km.ActiveKeys(), []string{fuzzPK1, fuzzPK2}) || !a.gateOpen() {
				t.Fatalf("200 %+v but active keys %v, gate open %v", reply, a.km.ActiveKeys(), a.gateOpen())
			}
		} else if len(a.km.ActiveKeys()) != 0 || a.gateOpen() {
			t.Fatalf("answered %d but keys %v are active (gate open %v)", rec.Code, a.km.ActiveKeys(), a.gateOpen())
		}
		if bytes.Equal(body, fx.validBody) && rec.Code != http.StatusOK {
			t.Fatalf("the genuine import answered %d: %s", rec.Code, rec.Body)
		}
	})
}

// mutateBytes changes b by mode: replace it with data, insert data at pos,
// overwrite from pos with data, or cut it at pos.
func mutateBytes(b []byte, mode uint8, pos int, data []byte) []byte {
	if len(b) > 0 {
		pos %= len(b) + 1
	} else {
		pos = 0
	}
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

// FuzzAgentChain asks POST /v1/chain about lists built from the fixture's
// validators (in either hex case), a key the chain does not know, and a
// raw string, for any number of epochs. With a healthy beacon node the
// answer is 200 or 400, never a 5xx: a 400 only for a list that is empty
// or holds something that is not a BLS key, or a key twice; a 200 reports
// silence exactly when every key is a known validator and the chain has
// the epochs asked for.
func FuzzAgentChain(f *testing.F) {
	fx := newAgentFuzz(f)
	f.Add([]byte{0, 1}, "", 3)
	f.Add([]byte{0, 3}, "", 0)
	f.Add([]byte{2, 0x81}, "", 1000)
	f.Add([]byte{4}, "0x", 3)
	f.Add([]byte{}, "", 3)
	f.Add([]byte{1}, "", 1001)
	f.Fuzz(func(t *testing.T, picks []byte, raw string, epochs int) {
		known := []string{fuzzPK1, fuzzPK2, fuzzPK3}
		unknown := "0x" + strings.Repeat("d4", 48)
		var pubkeys []string
		for _, p := range picks[:min(len(picks), 8)] {
			switch p % 5 {
			case 0, 1, 2:
				pk := known[p%5]
				if p&0x80 != 0 {
					pk = "0x" + strings.ToUpper(pk[2:])
				}
				pubkeys = append(pubkeys, pk)
			case 3:
				pubkeys = append(pubkeys, unknown)
			default:
				pubkeys = append(pubkeys, raw)
			}
		}
		body, err := json.Marshal(ChainRequest{Pubkeys: pubkeys, Epochs: epochs})
		if err != nil {
			t.Fatal(err)
		}
		a := fx.start(t)
		req := httptest.NewRequest(http.MethodPost, "/v1/chain", bytes.NewReader(body))
		req.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{fx.clientChain}}
		rec := httptest.NewRecorder()
		a.h.ServeHTTP(rec, req)

		valid, allKnown := len(pubkeys) > 0, true
		seen := map[string]bool{}
		for _, pk := range pubkeys {
			lk := strings.ToLower(pk)
			valid = valid && len(pk) == 98 && strings.HasPrefix(pk, "0x") && !seen[lk] && isHex(pk[2:])
			seen[lk] = true
			allKnown = allKnown && slices.Contains(known, lk)
		}
		switch {
		case rec.Code >= 500:
			t.Fatalf("answered %d for %v: %s", rec.Code, pubkeys, rec.Body)
		case !valid:
			if rec.Code != http.StatusBadRequest {
				t.Fatalf("answered %d for %q", rec.Code, pubkeys)
			}
		case rec.Code != http.StatusOK:
			t.Fatalf("answered %d for %v: %s", rec.Code, pubkeys, rec.Body)
		default:
			var rep struct {
				Indices      []string `json:"indices"`
				SilentEpochs []uint64 `json:"silentEpochs"`
				NotSilent    string   `json:"notSilent"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
			wantSilent := allKnown && max(epochs, 3) <= 1000
			if silent := rep.NotSilent == "" && len(rep.SilentEpochs) > 0; silent != wantSilent {
				t.Fatalf("silent %v for %v over %d epochs: %s", silent, pubkeys, epochs, rec.Body)
			}
		}
	})
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}
