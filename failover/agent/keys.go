package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/beacon"
	"github.com/failoverd/failoverd/failover/grant"
	"github.com/failoverd/failoverd/failover/interchange"
	"github.com/failoverd/failoverd/failover/keymanager"
	"github.com/failoverd/failoverd/failover/keystore"
)

// maxKeysBody bounds POST /v1/keys: keystores of up to a few thousand
// validators with their passwords and slashing protection.
const maxKeysBody = 32 << 20

// The control file the host's validator-client unit waits for (its
// ExecStartPre gate): present with a generation while this standby owns the
// signing right; removed on a fence or a failed import.
const ValidatorStartFile = "validator-start"

// signerFile keeps the signer state and the used approval nonces across
// restarts of the agent.
const signerFile = "signer.json"

// KeyOptions enable key import on an agent. Without AllowedSigners the
// agent refuses every key operation.
type KeyOptions struct {
	// AllowedSigners are the approvers' SSH keys (allowed-signers lines),
	// Threshold how many distinct people must sign.
	AllowedSigners approval.AllowedSigners
	Threshold      int
	// KeymanagerURL and KeymanagerToken reach the local validator client's
	// Keymanager API.
	KeymanagerURL   string
	KeymanagerToken string
	// StateDir keeps the signer state (generation, used nonces).
	StateDir string
	// SilentEpochs is the chain silence required right before an import.
	SilentEpochs int
	// CAPEM is failoverd's CA: grants are signed with its key.
	CAPEM []byte
	// StandbyName and CertSHA256 identify this standby (its certificate).
	StandbyName string
	CertSHA256  string
}

// ImportRequest is POST /v1/keys: the approver's approval and failoverd's
// grant, and the keys themselves. It is the only message that carries
// keystores and passwords; nothing of it is logged or stored.
type ImportRequest struct {
	Approval           string       `json:"approval"`
	Signatures         []string     `json:"signatures"`
	Grant              grant.Signed `json:"grant"`
	Keystores          []string     `json:"keystores"`
	Passwords          []string     `json:"passwords"`
	SlashingProtection string       `json:"slashing_protection"`
}

// ImportReply is the answer to an import: the per-key statuses.
type ImportReply struct {
	Generation  int64             `json:"generation"`
	Phase       string            `json:"phase"`
	KeyStatuses map[string]string `json:"keyStatuses"`
	Message     string            `json:"message,omitempty"`
}

// FenceRequest is POST /v1/keys/fence (failoverd, on a failback).
type FenceRequest struct {
	Grant grant.Signed `json:"grant"`
}

// ChainRequest is POST /v1/chain.
type ChainRequest struct {
	Pubkeys []string `json:"pubkeys"`
	Epochs  int      `json:"epochs"`
}

type signerState struct {
	failover.SignerState
	Nonces []string `json:"nonces,omitempty"`
}

// keys serves the key routes; mu serialises every key operation.
type keys struct {
	o       KeyOptions
	control string
	beacon  *beacon.Client
	km      *keymanager.Client
	s       *server

	mu    sync.Mutex
	state signerState
}

func newKeys(s *server, o KeyOptions, bc *beacon.Client) (*keys, error) {
	k := &keys{o: o, control: s.o.ControlDir, beacon: bc, s: s}
	if len(o.AllowedSigners) == 0 {
		return k, nil
	}
	if o.StateDir == "" || o.KeymanagerURL == "" || len(o.CAPEM) == 0 || o.StandbyName == "" {
		return nil, errors.New("agent: key import needs a state directory, the validator client's Keymanager URL, the CA and the standby's name")
	}
	km, err := keymanager.New(o.KeymanagerURL, o.KeymanagerToken)
	if err != nil {
		return nil, fmt.Errorf("agent: keymanager: %w", err)
	}
	k.km = km
	b, err := os.ReadFile(filepath.Join(o.StateDir, signerFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("agent: read signer state: %w", err)
	default:
		if err := json.Unmarshal(b, &k.state); err != nil {
			// Refuse to start rather than forget which generation was seen.
			return nil, fmt.Errorf("agent: signer state %s is corrupt: %w", filepath.Join(o.StateDir, signerFile), err)
		}
	}
	return k, nil
}

func (k *keys) enabled() bool { return k.km != nil }

// current returns the signer state for /v1/status.
func (k *keys) current() failover.SignerState {
	k.mu.Lock()
	defer k.mu.Unlock()
	st := k.state.SignerState
	st.KeyStatuses = maps.Clone(st.KeyStatuses)
	return st
}

// save writes the state durably before the agent acts on it.
func (k *keys) save() error {
	b, err := json.Marshal(k.state)
	if err != nil {
		return err
	}
	tmp := filepath.Join(k.o.StateDir, signerFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(k.o.StateDir, signerFile))
}

// nonces adapts the persisted nonce list to the verifier.
type agentNonces struct{ st *signerState }

func (n agentNonces) Seen(nonce string) bool { return slices.Contains(n.st.Nonces, nonce) }
func (n agentNonces) Mark(nonce string) error {
	if n.Seen(nonce) {
		return &approval.RefusalError{Code: approval.CodeReplayed, Message: "nonce " + nonce + " already used on this standby"}
	}
	n.st.Nonces = append(n.st.Nonces, nonce)
	return nil
}

// refusal is a key request the agent will not carry out; nothing changed.
type refusal struct {
	code int
	msg  string
}

func (r *refusal) Error() string { return r.msg }

func refuse(code int, format string, args ...any) error {
	return &refusal{code: code, msg: fmt.Sprintf(format, args...)}
}

func (s *server) importKeys(w http.ResponseWriter, r *http.Request) {
	var req ImportRequest
	r.Body = http.MaxBytesReader(w, r.Body, maxKeysBody)
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed key import request: " + err.Error()})
		return
	}
	reply, err := s.keys.doImport(r.Context(), req)
	clear(req.Passwords)
	if err != nil {
		code := http.StatusInternalServerError
		var rf *refusal
		if errors.As(err, &rf) {
			code = rf.code
		}
		s.o.Logger.Warn("key import refused", "remote", r.RemoteAddr, "reason", err)
		// The reply's fields sit next to the error, where ImportKeys reads
		// them: the CLI shows the per-key statuses of a failed import.
		writeJSON(w, code, struct {
			ImportReply
			Error string `json:"error"`
		}{reply, err.Error()})
		return
	}
	s.o.Logger.Info("keys imported", "generation", reply.Generation, "keys", len(reply.KeyStatuses))
	writeJSON(w, http.StatusOK, reply)
}

// doImport checks the approval and the grant itself (DESIGN.md rules 1 and
// 3: it trusts neither the network nor its own certificate, whose key is
// readable in its bootstrap), re-checks chain silence, then imports.
func (k *keys) doImport(ctx context.Context, req ImportRequest) (ImportReply, error) {
	if !k.enabled() {
		return ImportReply{}, refuse(http.StatusNotImplemented, "this agent has no approvers or Keymanager configured: it imports no keys")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.s.o.Now()
	g, err := grant.Verify(req.Grant, k.o.CAPEM, now)
	if err != nil {
		return ImportReply{}, refuse(http.StatusForbidden, "failoverd's grant does not verify: %v", err)
	}
	if g.Action != approval.ActionMigrate || g.Standby != k.o.StandbyName || g.Owner != k.o.StandbyName {
		return ImportReply{}, refuse(http.StatusForbidden, "the grant is for %s to %s on %s, not a migration to this standby (%s)", g.Action, g.Owner, g.Standby, k.o.StandbyName)
	}
	if g.Generation <= k.state.Generation {
		return ImportReply{}, refuse(http.StatusConflict, "ownership changed meanwhile: the grant is for generation %d and this standby has seen %d", g.Generation, k.state.Generation)
	}
	if len(req.Keystores) == 0 || len(req.Keystores) != len(req.Passwords) {
		return ImportReply{}, refuse(http.StatusBadRequest, "%d keystores and %d passwords: one password per keystore", len(req.Keystores), len(req.Passwords))
	}
	pubkeys := make([]string, len(req.Keystores))
	for i, ks := range req.Keystores {
		parsed, err := keystore.Parse([]byte(ks))
		if err != nil {
			return ImportReply{}, refuse(http.StatusBadRequest, "keystores[%d]: %v", i, err)
		}
		pubkeys[i] = parsed.Pubkey
	}
	if !g.Covers(pubkeys) {
		return ImportReply{}, refuse(http.StatusForbidden, "the keystores are not exactly the keys the grant names")
	}
	a, err := approval.ParseCanonical([]byte(req.Approval))
	if err != nil {
		return ImportReply{}, refuse(http.StatusForbidden, "approval: %v", err)
	}
	sum := sha256.Sum256([]byte(req.Approval))
	if hex.EncodeToString(sum[:]) != g.ApprovalSHA256 {
		return ImportReply{}, refuse(http.StatusForbidden, "the approval is not the one failoverd accepted")
	}
	sigs := make([][]byte, len(req.Signatures))
	for i, sg := range req.Signatures {
		sigs[i] = []byte(sg)
	}
	next := k.state
	next.Nonces = slices.Clone(k.state.Nonces)
	v := &approval.Verifier{Signers: k.o.AllowedSigners, Threshold: k.o.Threshold, Now: k.s.o.Now, Used: agentNonces{&next}}
	if _, err := v.Verify(a, sigs, approval.Want{Incident: g.Incident, Standby: k.o.StandbyName,
		StandbyCertSHA256: k.o.CertSHA256, Pubkeys: pubkeys, Action: approval.ActionMigrate}); err != nil {
		return ImportReply{}, refuse(http.StatusForbidden, "%v", err)
	}
	// Right before the import: the chain must still show the keys silent.
	rep, err := beacon.Check(ctx, k.beacon, pubkeys, max(k.o.SilentEpochs, beacon.MinSilentEpochs), now)
	if err != nil {
		return ImportReply{}, refuse(http.StatusServiceUnavailable, "cannot check chain silence on this standby's beacon node: %v", err)
	}
	if rep.Unusable != "" {
		return ImportReply{}, refuse(http.StatusConflict, "%s", rep.Unusable)
	}
	if !rep.Silent() {
		return ImportReply{}, refuse(http.StatusConflict, "chain silence not proven right before the import: %s", rep.NotSilent)
	}
	sp, err := interchange.Parse([]byte(req.SlashingProtection))
	if err != nil {
		return ImportReply{}, refuse(http.StatusBadRequest, "slashing protection: %v", err)
	}
	if err := sp.Validate(rep.GenesisValidatorsRoot, pubkeys); err != nil {
		return ImportReply{}, refuse(http.StatusBadRequest, "slashing protection: %v", err)
	}
	// Record the generation before anything reaches the validator client:
	// after a crash the agent still refuses this grant a second time.
	next.SignerState = failover.SignerState{Generation: g.Generation, Phase: failover.SignerImporting}
	k.state = next
	if err := k.save(); err != nil {
		return ImportReply{}, fmt.Errorf("agent: save signer state: %w", err)
	}
	if err := k.allowValidator(g.Generation); err != nil {
		return k.fail(ctx, pubkeys, nil, "cannot open the validator client's gate: "+err.Error())
	}
	statuses, ierr := k.km.ImportKeystores(ctx, req.Keystores, req.Passwords, req.SlashingProtection)
	byKey := map[string]string{}
	for i, st := range statuses {
		if i < len(pubkeys) {
			byKey[pubkeys[i]] = string(st.Status)
		}
	}
	if ierr != nil {
		return k.fail(ctx, pubkeys, byKey, "import: "+ierr.Error())
	}
	if err := keymanager.AllImported(statuses, len(pubkeys)); err != nil {
		return k.fail(ctx, pubkeys, byKey, err.Error())
	}
	k.state.SignerState = failover.SignerState{Generation: g.Generation, Phase: failover.SignerImported, KeyStatuses: byKey,
		Message: fmt.Sprintf("%d keys imported with slashing protection; the validator client's gate is open (it must run with doppelganger protection: --enable-doppelganger-protection)", len(pubkeys))}
	if err := k.save(); err != nil {
		return ImportReply{}, fmt.Errorf("agent: save signer state: %w", err)
	}
	return ImportReply{Generation: g.Generation, Phase: failover.SignerImported, KeyStatuses: byKey, Message: k.state.Message}, nil
}

// fail stops the signer after a failed import: every key is removed again
// and the validator client's gate closed, so nothing half-imported signs.
func (k *keys) fail(ctx context.Context, pubkeys []string, statuses map[string]string, why string) (ImportReply, error) {
	k.closeValidator()
	if res, err := k.km.DeleteKeystores(ctx, pubkeys); err != nil {
		why += "; removing the keys again failed too (" + err.Error() + "): check the validator client by hand"
	} else if err := standbyFenced(res, pubkeys); err != nil {
		// A key the validator client would not delete is still loaded.
		why += "; removing the keys again failed too (" + err.Error() + "): check the validator client by hand"
	}
	k.state.SignerState = failover.SignerState{Generation: k.state.Generation, Phase: failover.SignerFailed, KeyStatuses: statuses, Message: why}
	if err := k.save(); err != nil {
		why += "; saving the state failed: " + err.Error()
	}
	return ImportReply{Generation: k.state.Generation, Phase: failover.SignerFailed, KeyStatuses: statuses, Message: why},
		refuse(http.StatusConflict, "import stopped: %s", why)
}

func (k *keys) allowValidator(gen int64) error {
	if k.control == "" {
		return nil
	}
	return os.WriteFile(filepath.Join(k.control, ValidatorStartFile), []byte(fmt.Sprintf("%d\n", gen)), 0o644)
}

func (k *keys) closeValidator() {
	if k.control == "" {
		return
	}
	if err := os.Remove(filepath.Join(k.control, ValidatorStartFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		k.s.o.Logger.Error("cannot close the validator client's gate", "err", err)
	}
}

func (s *server) fenceKeys(w http.ResponseWriter, r *http.Request) {
	var req FenceRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "malformed fence request: " + err.Error()})
		return
	}
	rep, err := s.keys.doFence(r.Context(), req)
	if err != nil {
		code := http.StatusInternalServerError
		var rf *refusal
		if errors.As(err, &rf) {
			code = rf.code
		}
		s.o.Logger.Warn("fence refused", "reason", err)
		writeJSON(w, code, map[string]string{"error": err.Error()})
		return
	}
	s.o.Logger.Info("standby fenced: keys deleted", "keys", len(rep.KeyStatuses))
	writeJSON(w, http.StatusOK, rep)
}

// doFence removes the keys on a failback grant. Idempotent: a repeat of the
// same grant answers the recorded result.
func (k *keys) doFence(ctx context.Context, req FenceRequest) (failover.FenceReport, error) {
	if !k.enabled() {
		return failover.FenceReport{}, refuse(http.StatusNotImplemented, "this agent has no Keymanager configured")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	g, err := grant.Verify(req.Grant, k.o.CAPEM, k.s.o.Now())
	if err != nil {
		return failover.FenceReport{}, refuse(http.StatusForbidden, "failoverd's grant does not verify: %v", err)
	}
	if g.Action != approval.ActionFailback || g.Standby != k.o.StandbyName {
		return failover.FenceReport{}, refuse(http.StatusForbidden, "the grant is not a failback from this standby")
	}
	// The same generation again is a repeat (fenced) or a failback approved
	// again after a fence that failed: the signing right has not moved since.
	if g.Generation < k.state.Generation || (g.Generation == k.state.Generation && k.state.Phase != failover.SignerFenced && k.state.Phase != failover.SignerFailed) {
		return failover.FenceReport{}, refuse(http.StatusConflict, "ownership changed meanwhile: grant generation %d, this standby has seen %d", g.Generation, k.state.Generation)
	}
	k.closeValidator()
	res, err := k.km.DeleteKeystores(ctx, g.Pubkeys)
	if err != nil && res.SlashingProtection == "" {
		return failover.FenceReport{}, fmt.Errorf("agent: delete keys: %w", err)
	}
	statuses := map[string]string{}
	for _, ks := range res.Keys {
		statuses[approval.NormalizePubkey(ks.Pubkey)] = string(ks.Status)
	}
	phase := failover.SignerFenced
	msg := "every key deleted; slashing protection returned"
	if ferr := standbyFenced(res, g.Pubkeys); ferr != nil {
		phase, msg = failover.SignerFailed, "fence incomplete: "+ferr.Error()
	}
	k.state.SignerState = failover.SignerState{Generation: g.Generation, Phase: phase, KeyStatuses: statuses, Message: msg}
	if err := k.save(); err != nil {
		return failover.FenceReport{}, fmt.Errorf("agent: save signer state: %w", err)
	}
	return failover.FenceReport{KeyStatuses: statuses, SlashingProtection: res.SlashingProtection}, nil
}

// standbyFenced is keymanager.Fenced for the standby's own validator
// client, where keys arrive only through this agent: a key it answers
// not_found was never loaded (its import failed), which is fenced too. At
// home not_found is different: the key may sign somewhere else.
func standbyFenced(res keymanager.DeleteResult, pubkeys []string) error {
	err := keymanager.Fenced(res, pubkeys)
	var nf *keymanager.NotFencedError
	if !errors.As(err, &nf) || nf.Malformed != "" {
		return err
	}
	for _, p := range nf.Keys {
		if p.Status != string(keymanager.NotFound) {
			return err
		}
	}
	return nil
}

func (s *server) chain(w http.ResponseWriter, r *http.Request) {
	var req ChainRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Pubkeys) == 0 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "want {\"pubkeys\": [...], \"epochs\": N}"})
		return
	}
	seen := make(map[string]bool, len(req.Pubkeys))
	for i, pk := range req.Pubkeys {
		if !keymanager.ValidPubkey(pk) {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("pubkeys[%d] is not a BLS public key", i)})
			return
		}
		req.Pubkeys[i] = strings.ToLower(pk)
		// A repeat is the caller's mistake; left in, the beacon client
		// refuses the list and it would read as a beacon node failure.
		if seen[req.Pubkeys[i]] {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("pubkeys[%d] repeats a key", i)})
			return
		}
		seen[req.Pubkeys[i]] = true
	}
	rep, err := beacon.Check(r.Context(), s.keys.beacon, req.Pubkeys, max(req.Epochs, beacon.MinSilentEpochs), s.o.Now())
	if err != nil {
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, rep)
}
