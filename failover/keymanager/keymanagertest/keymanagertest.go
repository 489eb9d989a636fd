// Package keymanagertest is a local Keymanager API server on 127.0.0.1 that
// follows shared/specs/keymanager-apis for the local keystore routes
// (GET/POST/DELETE /eth/v1/keystores): bearer-token auth (401 without a
// token, 403 with a wrong one), in-memory keystores, EIP-2335 keystores that
// really are checked against their password (pbkdf2 checksum), EIP-3076
// slashing protection kept after a delete and returned for deleted and
// not_active keys, and request bodies checked against the spec's shapes
// (400 with an ErrorResponse otherwise).
//
// Failures are configurable: a key whose delete answers status error, every
// route answering a given HTTP status, and a delay before every answer.
// Every exchange is recorded for tests that check them against the spec.
package keymanagertest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultRoot is the genesis_validators_root the server's slashing
// protection carries unless SetRoot changes it (mainnet's).
const DefaultRoot = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"

var (
	pubkeyRE = regexp.MustCompile(`^0x[a-fA-F0-9]{96}$`)
	rootRE   = regexp.MustCompile(`^0x[a-fA-F0-9]{64}$`)
	uintRE   = regexp.MustCompile(`^(0|[1-9][0-9]{0,19})$`)
)

// Attestation is a signed attestation in slashing protection.
type Attestation struct{ Source, Target uint64 }

// History is a key's slashing protection.
type History struct {
	Blocks       []uint64
	Attestations []Attestation
}

type key struct {
	pubkey   string // as first seen
	path     string
	readonly bool
	active   bool
	history  History
	password string // set for keys imported or added with a password
}

// Exchange is one recorded request and reply.
type Exchange struct {
	Method       string
	Path         string
	Header       http.Header
	RequestBody  []byte
	Status       int
	ResponseBody []byte
}

// Server is the fake keymanager.
type Server struct {
	URL   string
	Token string

	srv *httptest.Server
	tls bool

	mu        sync.Mutex
	root      string
	keys      map[string]*key // lower-case pubkey
	keyErrors map[string]string
	fail      int
	delay     time.Duration
	log       []Exchange
}

// Option configures New.
type Option func(*Server)

// WithTLS serves HTTPS (use Server.Client() for a client trusting it).
func WithTLS() Option { return func(s *Server) { s.tls = true } }

// New starts a server on 127.0.0.1, closed by t.Cleanup.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	tok := make([]byte, 32)
	_, _ = rand.Read(tok)
	s := &Server{
		Token:     hex.EncodeToString(tok),
		root:      DefaultRoot,
		keys:      map[string]*key{},
		keyErrors: map[string]string{},
	}
	for _, o := range opts {
		o(s)
	}
	s.srv = httptest.NewUnstartedServer(nil)
	s.srv.Config.Handler = http.HandlerFunc(s.serve)
	s.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // TLS handshake noise from tests that distrust the cert
	if s.tls {
		s.srv.StartTLS()
	} else {
		s.srv.Start()
	}
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// Client is an http.Client for this server (trusting its TLS certificate).
func (s *Server) Client() *http.Client { return s.srv.Client() }

// SetRoot sets the genesis_validators_root of the slashing protection the
// server returns and accepts.
func (s *Server) SetRoot(root string) { s.mu.Lock(); s.root = root; s.mu.Unlock() }

// AddKey loads an active key (as if imported earlier) with a history.
func (s *Server) AddKey(pubkey string, h History) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[strings.ToLower(pubkey)] = &key{pubkey: pubkey, active: true, history: h, path: "m/12381/3600/0/0/0"}
}

// AddReadonlyKey loads an active key that the API cannot delete (deleting it
// answers status error).
func (s *Server) AddReadonlyKey(pubkey string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[strings.ToLower(pubkey)] = &key{pubkey: pubkey, active: true, readonly: true}
}

// AddInactiveKey records slashing protection for a key that is not loaded
// (a delete answers not_active).
func (s *Server) AddInactiveKey(pubkey string, h History) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[strings.ToLower(pubkey)] = &key{pubkey: pubkey, history: h}
}

// FailKey makes a delete of pubkey answer status error with msg (the key
// stays active).
func (s *Server) FailKey(pubkey, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keyErrors[strings.ToLower(pubkey)] = msg
}

// Fail makes every route answer HTTP code (with an ErrorResponse); 0 stops.
func (s *Server) Fail(code int) { s.mu.Lock(); s.fail = code; s.mu.Unlock() }

// Delay waits d (or until the client gives up) before every answer.
func (s *Server) Delay(d time.Duration) { s.mu.Lock(); s.delay = d; s.mu.Unlock() }

// Active reports whether the key is loaded and signing.
func (s *Server) Active(pubkey string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[strings.ToLower(pubkey)]
	return k != nil && k.active
}

// ActiveKeys lists loaded keys, sorted.
func (s *Server) ActiveKeys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, k := range s.keys {
		if k.active {
			out = append(out, k.pubkey)
		}
	}
	sort.Strings(out)
	return out
}

// HistoryOf returns a key's slashing protection.
func (s *Server) HistoryOf(pubkey string) (History, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[strings.ToLower(pubkey)]
	if k == nil {
		return History{}, false
	}
	return k.history, true
}

// Exchanges returns every request and reply so far.
func (s *Server) Exchanges() []Exchange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

type errorResponse struct {
	Message string `json:"message"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	status, reply := s.handle(r, body)
	out, _ := json.Marshal(reply)
	s.mu.Lock()
	s.log = append(s.log, Exchange{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(),
		RequestBody: body, Status: status, ResponseBody: out})
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

func (s *Server) handle(r *http.Request, body []byte) (int, any) {
	s.mu.Lock()
	delay, fail := s.delay, s.fail
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return http.StatusServiceUnavailable, errorResponse{"client went away"}
		}
	}
	if r.URL.Path != "/eth/v1/keystores" {
		return http.StatusNotFound, errorResponse{"path not found: " + r.URL.Path}
	}
	auth := r.Header.Get("Authorization")
	if auth == "" {
		return http.StatusUnauthorized, errorResponse{"no token"}
	}
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || tok != s.Token {
		return http.StatusForbidden, errorResponse{"invalid token"}
	}
	if fail != 0 {
		return fail, errorResponse{fmt.Sprintf("configured failure %d", fail)}
	}
	switch r.Method {
	case http.MethodGet:
		return s.list()
	case http.MethodPost:
		return s.importKeys(body)
	case http.MethodDelete:
		return s.deleteKeys(body)
	}
	return http.StatusMethodNotAllowed, errorResponse{"method not allowed"}
}

func (s *Server) list() (int, any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	type item struct {
		Pubkey   string `json:"validating_pubkey"`
		Path     string `json:"derivation_path,omitempty"`
		Readonly bool   `json:"readonly"`
	}
	data := []item{}
	for _, k := range s.keys {
		if k.active {
			data = append(data, item{k.pubkey, k.path, k.readonly})
		}
	}
	sort.Slice(data, func(i, j int) bool { return data[i].Pubkey < data[j].Pubkey })
	return http.StatusOK, map[string]any{"data": data}
}

// object decodes a JSON object body keeping raw members.
func object(body []byte) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, fmt.Errorf("request body must be a JSON object")
	}
	return m, nil
}

func stringArray(m map[string]json.RawMessage, name string, required bool) ([]string, bool, error) {
	raw, ok := m[name]
	if !ok {
		if required {
			return nil, false, fmt.Errorf("missing required field %q", name)
		}
		return nil, false, nil
	}
	var arr []any
	if err := json.Unmarshal(raw, &arr); err != nil || arr == nil {
		return nil, true, fmt.Errorf("%q must be an array", name)
	}
	out := make([]string, len(arr))
	for i, v := range arr {
		str, ok := v.(string)
		if !ok {
			return nil, true, fmt.Errorf("%s[%d] must be a string", name, i)
		}
		out[i] = str
	}
	return out, true, nil
}

func (s *Server) deleteKeys(body []byte) (int, any) {
	m, err := object(body)
	if err != nil {
		return http.StatusBadRequest, errorResponse{err.Error()}
	}
	pubkeys, _, err := stringArray(m, "pubkeys", true)
	if err != nil {
		return http.StatusBadRequest, errorResponse{err.Error()}
	}
	for i, pk := range pubkeys {
		if !pubkeyRE.MatchString(pk) {
			return http.StatusBadRequest, errorResponse{fmt.Sprintf("pubkeys[%d] is not a valid pubkey", i)}
		}
	}
	// One atomic sequence under the lock: stop signing, then delete and
	// serialize slashing protection (kept for later requests).
	s.mu.Lock()
	defer s.mu.Unlock()
	type status struct {
		Status  string `json:"status"`
		Message string `json:"message,omitempty"`
	}
	data := make([]status, len(pubkeys))
	var protect []*key
	for i, pk := range pubkeys {
		lk := strings.ToLower(pk)
		k := s.keys[lk]
		switch {
		case s.keyErrors[lk] != "" && k != nil:
			data[i] = status{"error", s.keyErrors[lk]}
		case k != nil && k.active && k.readonly:
			data[i] = status{"error", "key is read-only and cannot be deleted through the API"}
		case k != nil && k.active:
			k.active = false
			data[i] = status{Status: "deleted"}
			protect = append(protect, k)
		case k != nil:
			data[i] = status{Status: "not_active"}
			protect = append(protect, k)
		default:
			data[i] = status{Status: "not_found"}
		}
	}
	return http.StatusOK, map[string]any{"data": data, "slashing_protection": s.interchange(protect)}
}

func (s *Server) interchange(keys []*key) string {
	type block struct {
		Slot string `json:"slot"`
	}
	type att struct {
		Source string `json:"source_epoch"`
		Target string `json:"target_epoch"`
	}
	type entry struct {
		Pubkey       string  `json:"pubkey"`
		SignedBlocks []block `json:"signed_blocks"`
		SignedAtts   []att   `json:"signed_attestations"`
	}
	ic := struct {
		Metadata struct {
			Version string `json:"interchange_format_version"`
			Root    string `json:"genesis_validators_root"`
		} `json:"metadata"`
		Data []entry `json:"data"`
	}{}
	ic.Metadata.Version = "5"
	ic.Metadata.Root = s.root
	ic.Data = []entry{}
	seen := map[*key]bool{}
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		e := entry{Pubkey: strings.ToLower(k.pubkey), SignedBlocks: []block{}, SignedAtts: []att{}}
		for _, b := range k.history.Blocks {
			e.SignedBlocks = append(e.SignedBlocks, block{strconv.FormatUint(b, 10)})
		}
		for _, a := range k.history.Attestations {
			e.SignedAtts = append(e.SignedAtts, att{strconv.FormatUint(a.Source, 10), strconv.FormatUint(a.Target, 10)})
		}
		ic.Data = append(ic.Data, e)
	}
	b, _ := json.Marshal(ic)
	return string(b)
}

// parseInterchange checks an EIP-3076 interchange (version 5, this server's
// root, well-formed entries) and returns the histories by lower-case key.
func (s *Server) parseInterchange(text string) (map[string]History, error) {
	var ic struct {
		Metadata *struct {
			Version string `json:"interchange_format_version"`
			Root    string `json:"genesis_validators_root"`
		} `json:"metadata"`
		Data *[]struct {
			Pubkey string `json:"pubkey"`
			Blocks []struct {
				Slot string `json:"slot"`
			} `json:"signed_blocks"`
			Atts []struct {
				Source string `json:"source_epoch"`
				Target string `json:"target_epoch"`
			} `json:"signed_attestations"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(text), &ic); err != nil {
		return nil, fmt.Errorf("slashing_protection is not an EIP-3076 interchange: %v", err)
	}
	if ic.Metadata == nil || ic.Data == nil {
		return nil, fmt.Errorf("slashing_protection: metadata and data are required")
	}
	if ic.Metadata.Version != "5" {
		return nil, fmt.Errorf("slashing_protection: interchange_format_version %q, want \"5\"", ic.Metadata.Version)
	}
	if !rootRE.MatchString(ic.Metadata.Root) || !strings.EqualFold(ic.Metadata.Root, s.root) {
		return nil, fmt.Errorf("slashing_protection: genesis_validators_root %s does not match this network", ic.Metadata.Root)
	}
	out := map[string]History{}
	for i, d := range *ic.Data {
		if !pubkeyRE.MatchString(d.Pubkey) {
			return nil, fmt.Errorf("slashing_protection: data[%d].pubkey invalid", i)
		}
		h := out[strings.ToLower(d.Pubkey)]
		for _, b := range d.Blocks {
			v, err := strconv.ParseUint(b.Slot, 10, 64)
			if err != nil || !uintRE.MatchString(b.Slot) {
				return nil, fmt.Errorf("slashing_protection: data[%d]: bad slot %q", i, b.Slot)
			}
			h.Blocks = append(h.Blocks, v)
		}
		for _, a := range d.Atts {
			src, e1 := strconv.ParseUint(a.Source, 10, 64)
			tgt, e2 := strconv.ParseUint(a.Target, 10, 64)
			if e1 != nil || e2 != nil {
				return nil, fmt.Errorf("slashing_protection: data[%d]: bad attestation epochs", i)
			}
			h.Attestations = append(h.Attestations, Attestation{src, tgt})
		}
		out[strings.ToLower(d.Pubkey)] = h
	}
	return out, nil
}

func (s *Server) importKeys(body []byte) (int, any) {
	m, err := object(body)
	if err != nil {
		return http.StatusBadRequest, errorResponse{err.Error()}
	}
	keystores, _, err := stringArray(m, "keystores", true)
	if err != nil {
		return http.StatusBadRequest, errorResponse{err.Error()}
	}
	passwords, _, err := stringArray(m, "passwords", true)
	if err != nil {
		return http.StatusBadRequest, errorResponse{err.Error()}
	}
	if len(keystores) != len(passwords) {
		return http.StatusBadRequest, errorResponse{"keystores and passwords differ in length"}
	}
	var protection map[string]History
	if raw, ok := m["slashing_protection"]; ok {
		var text string
		if err := json.Unmarshal(raw, &text); err != nil {
			return http.StatusBadRequest, errorResponse{"slashing_protection must be a string"}
		}
		s.mu.Lock()
		protection, err = s.parseInterchange(text)
		s.mu.Unlock()
		if err != nil {
			return http.StatusBadRequest, errorResponse{err.Error()}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	type status struct {
		Status  string `json:"status"`
		Message string `json:"message,omitempty"`
	}
	data := make([]status, len(keystores))
	for i, ks := range keystores {
		pk, err := checkKeystore(ks, passwords[i])
		if err != nil {
			data[i] = status{"error", err.Error()}
			continue
		}
		lk := strings.ToLower(pk)
		if k := s.keys[lk]; k != nil && k.active {
			data[i] = status{Status: "duplicate"}
			continue
		}
		k := s.keys[lk]
		if k == nil {
			k = &key{pubkey: pk}
			s.keys[lk] = k
		}
		k.active = true
		k.password = passwords[i]
		if h, ok := protection[lk]; ok {
			k.history.Blocks = append(k.history.Blocks, h.Blocks...)
			k.history.Attestations = append(k.history.Attestations, h.Attestations...)
		}
		data[i] = status{Status: "imported"}
	}
	return http.StatusOK, map[string]any{"data": data}
}

// eip2335 is the part of an EIP-2335 keystore the server reads.
type eip2335 struct {
	Version int    `json:"version"`
	UUID    string `json:"uuid"`
	Path    string `json:"path"`
	Pubkey  string `json:"pubkey"`
	Crypto  *struct {
		KDF struct {
			Function string `json:"function"`
			Params   struct {
				DKLen int    `json:"dklen"`
				C     int    `json:"c"`
				PRF   string `json:"prf"`
				Salt  string `json:"salt"`
			} `json:"params"`
			Message string `json:"message"`
		} `json:"kdf"`
		Checksum struct {
			Function string `json:"function"`
			Message  string `json:"message"`
		} `json:"checksum"`
		Cipher struct {
			Function string `json:"function"`
			Params   struct {
				IV string `json:"iv"`
			} `json:"params"`
			Message string `json:"message"`
		} `json:"cipher"`
	} `json:"crypto"`
}

// checkKeystore verifies the keystore's shape and that the password
// unlocks it (EIP-2335 checksum: sha256(DK[16:32] ‖ cipher.message)).
// Only the pbkdf2 KDF is supported here; scrypt keystores answer error.
func checkKeystore(text, password string) (string, error) {
	var ks eip2335
	if err := json.Unmarshal([]byte(text), &ks); err != nil {
		return "", fmt.Errorf("keystore is not JSON")
	}
	if ks.Version != 4 || ks.Crypto == nil || ks.UUID == "" {
		return "", fmt.Errorf("not an EIP-2335 version 4 keystore")
	}
	// EIP-2335 writes the pubkey without 0x; the spec's example has it.
	pk := ks.Pubkey
	if !strings.HasPrefix(pk, "0x") {
		pk = "0x" + pk
	}
	if !pubkeyRE.MatchString(pk) {
		return "", fmt.Errorf("keystore has no valid pubkey")
	}
	c := ks.Crypto
	if c.KDF.Function != "pbkdf2" || c.KDF.Params.PRF != "hmac-sha256" || c.Checksum.Function != "sha256" || c.Cipher.Function != "aes-128-ctr" {
		return "", fmt.Errorf("unsupported keystore crypto in this test server")
	}
	salt, err1 := hex.DecodeString(c.KDF.Params.Salt)
	msg, err2 := hex.DecodeString(c.Cipher.Message)
	sum, err3 := hex.DecodeString(c.Checksum.Message)
	if err1 != nil || err2 != nil || err3 != nil || c.KDF.Params.DKLen != 32 || c.KDF.Params.C < 1 {
		return "", fmt.Errorf("malformed keystore crypto")
	}
	dk, err := pbkdf2.Key(sha256.New, password, salt, c.KDF.Params.C, 32)
	if err != nil {
		return "", fmt.Errorf("kdf: %v", err)
	}
	h := sha256.Sum256(append(slices.Clone(dk[16:32]), msg...))
	if !bytes.Equal(h[:], sum) {
		return "", fmt.Errorf("invalid password")
	}
	return pk, nil
}

// NewKeystore returns an EIP-2335 keystore (pbkdf2, aes-128-ctr) for pubkey
// that password unlocks. The secret it encrypts is random: the server never
// signs, it only checks the password.
func NewKeystore(pubkey, password string) string {
	salt := make([]byte, 32)
	iv := make([]byte, 16)
	secret := make([]byte, 32)
	uuid := make([]byte, 16)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(iv)
	_, _ = rand.Read(secret)
	_, _ = rand.Read(uuid)
	const iterations = 1024 // low on purpose: a test fixture
	dk, _ := pbkdf2.Key(sha256.New, password, salt, iterations, 32)
	block, _ := aes.NewCipher(dk[:16])
	ct := make([]byte, len(secret))
	cipher.NewCTR(block, iv).XORKeyStream(ct, secret)
	sum := sha256.Sum256(append(slices.Clone(dk[16:32]), ct...))
	u := hex.EncodeToString(uuid)
	ks := map[string]any{
		"version": 4,
		"uuid":    u[:8] + "-" + u[8:12] + "-" + u[12:16] + "-" + u[16:20] + "-" + u[20:],
		"path":    "m/12381/3600/0/0/0",
		"pubkey":  strings.TrimPrefix(strings.ToLower(pubkey), "0x"), // EIP-2335 writes it without 0x
		"crypto": map[string]any{
			"kdf": map[string]any{"function": "pbkdf2", "message": "",
				"params": map[string]any{"dklen": 32, "c": iterations, "prf": "hmac-sha256", "salt": hex.EncodeToString(salt)}},
			"checksum": map[string]any{"function": "sha256", "params": map[string]any{}, "message": hex.EncodeToString(sum[:])},
			"cipher": map[string]any{"function": "aes-128-ctr", "params": map[string]any{"iv": hex.EncodeToString(iv)},
				"message": hex.EncodeToString(ct)},
		},
	}
	b, _ := json.Marshal(ks)
	return string(b)
}

// Interchange builds an EIP-3076 interchange (version 5) for tests.
func Interchange(root string, hist map[string]History) string {
	s := &Server{root: root}
	var keys []*key
	for pk, h := range hist {
		keys = append(keys, &key{pubkey: pk, history: h})
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].pubkey < keys[j].pubkey })
	return s.interchange(keys)
}
