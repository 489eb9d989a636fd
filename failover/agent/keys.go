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
	"time"

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
	// Berachain (an agent run with CometBFT.KeyDir): the validator's
	// priv_validator_key.json and priv_validator_state.json, as file
	// contents; Keystores, Passwords and SlashingProtection stay empty. An
	// empty state is synthesized at the chain's height.
	PrivValidatorKey   string `json:"priv_validator_key,omitempty"`
	PrivValidatorState string `json:"priv_validator_state,omitempty"`
}

// ImportReply is the answer to an import: the per-key statuses.
type ImportReply struct {
	Generation  int64             `json:"generation"`
	Phase       string            `json:"phase"`
	KeyStatuses map[string]string `json:"keyStatuses"`
	Message     string            `json:"message,omitempty"`
	// Network is the chain ID the agent's CometBFT node reported right
	// before a Berachain install (empty on Ethereum).
	Network string `json:"network,omitempty"`
}

// FenceRequest is POST /v1/keys/fence (failoverd, on a failback).
type FenceRequest struct {
	Grant grant.Signed `json:"grant"`
}

// ChainRequest is POST /v1/chain. Kind "" (or ChainKindBeacon) asks the
// beacon node over Epochs and answers a beacon.Report; ChainKindCometBFT
// asks the CometBFT node about the one key in Pubkeys over Blocks and
// answers a cometbft.Report.
type ChainRequest struct {
	Kind    string   `json:"kind,omitempty"`
	Pubkeys []string `json:"pubkeys"`
	Epochs  int      `json:"epochs"`
	Blocks  int      `json:"blocks,omitempty"`
}

// FenceReply is the answer to POST /v1/keys/fence: failover.FenceReport's
// fields, and on Berachain the signing state beacond left behind.
type FenceReply struct {
	// FenceReport carries, on Berachain, the priv_validator_state.json
	// beacond kept until the key was removed (PrivValidatorState).
	failover.FenceReport
	Message string `json:"message,omitempty"`
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
	// comet is the Berachain side (cometbft_keys.go); nil on Ethereum.
	comet *cometKeys

	mu    sync.Mutex
	state signerState
	// shown is the state as last saved, for /v1/status: a Berachain install
	// holds mu while the host swaps keys, and status must not wait for it.
	shownMu sync.Mutex
	shown   failover.SignerState
}

func newKeys(s *server, o KeyOptions, bc *beacon.Client) (*keys, error) {
	k := &keys{o: o, control: s.o.ControlDir, beacon: bc, s: s}
	var err error
	if k.comet, err = newCometKeys(s.o.CometBFT, s.o.Timeout); err != nil {
		return nil, err
	}
	if len(o.AllowedSigners) == 0 {
		return k, nil
	}
	if k.comet.installs() {
		if err := k.comet.ready(o, s.o.ControlDir); err != nil {
			return nil, err
		}
	} else {
		if o.StateDir == "" || o.KeymanagerURL == "" || len(o.CAPEM) == 0 || o.StandbyName == "" {
			return nil, errors.New("agent: key import needs a state directory, the validator client's Keymanager URL, the CA and the standby's name")
		}
		km, err := keymanager.New(o.KeymanagerURL, o.KeymanagerToken)
		if err != nil {
			return nil, fmt.Errorf("agent: keymanager: %w", err)
		}
		k.km = km
	}
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
	if err := k.recoverCometBFT(); err != nil {
		return nil, err
	}
	k.show()
	return k, nil
}

func (k *keys) enabled() bool {
	return k.km != nil || (k.comet.installs() && len(k.o.AllowedSigners) > 0)
}

// current returns the signer state for /v1/status.
func (k *keys) current() failover.SignerState {
	k.shownMu.Lock()
	defer k.shownMu.Unlock()
	st := k.shown
	st.KeyStatuses = maps.Clone(st.KeyStatuses)
	return st
}

// show publishes k.state for current(); called with mu held.
func (k *keys) show() {
	st := k.state.SignerState
	st.KeyStatuses = maps.Clone(st.KeyStatuses)
	k.shownMu.Lock()
	k.shown = st
	k.shownMu.Unlock()
}

// save writes the state durably before the agent acts on it.
func (k *keys) save() error {
	// Shown even when the write fails: it is what the agent acts on.
	k.show()
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
	s.keys.comet.extendWrite(w)
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
	if k.comet.installs() {
		return k.importCometBFT(ctx, req)
	}
	if req.PrivValidatorKey != "" || req.PrivValidatorState != "" {
		return ImportReply{}, refuse(http.StatusBadRequest, "this agent's validator is on Ethereum: it imports EIP-2335 keystores, not a CometBFT priv_validator_key.json")
	}
	now := k.s.o.Now()
	g, err := k.migrationGrant(req, now)
	if err != nil {
		return ImportReply{}, err
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
	next, err := k.approved(req, g, pubkeys)
	if err != nil {
		return ImportReply{}, err
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

// migrationGrant checks failoverd's grant of a key import: signed by its
// CA, a migration to this standby, and a generation this standby has not
// seen. Called with mu held.
func (k *keys) migrationGrant(req ImportRequest, now time.Time) (grant.Grant, error) {
	g, err := grant.Verify(req.Grant, k.o.CAPEM, now)
	if err != nil {
		return grant.Grant{}, refuse(http.StatusForbidden, "failoverd's grant does not verify: %v", err)
	}
	if g.Action != approval.ActionMigrate || g.Standby != k.o.StandbyName || g.Owner != k.o.StandbyName {
		return grant.Grant{}, refuse(http.StatusForbidden, "the grant is for %s to %s on %s, not a migration to this standby (%s)", g.Action, g.Owner, g.Standby, k.o.StandbyName)
	}
	if g.Generation <= k.state.Generation {
		return grant.Grant{}, refuse(http.StatusConflict, "ownership changed meanwhile: the grant is for generation %d and this standby has seen %d", g.Generation, k.state.Generation)
	}
	return g, nil
}

// approved checks the people's approval the grant names, for exactly
// pubkeys (which the caller has checked the grant covers). It returns the
// signer state with the approval's nonce spent, for the caller to save
// once it goes ahead; k.state is unchanged. Called with mu held.
func (k *keys) approved(req ImportRequest, g grant.Grant, pubkeys []string) (signerState, error) {
	a, err := approval.ParseCanonical([]byte(req.Approval))
	if err != nil {
		return signerState{}, refuse(http.StatusForbidden, "approval: %v", err)
	}
	sum := sha256.Sum256([]byte(req.Approval))
	if hex.EncodeToString(sum[:]) != g.ApprovalSHA256 {
		return signerState{}, refuse(http.StatusForbidden, "the approval is not the one failoverd accepted")
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
		return signerState{}, refuse(http.StatusForbidden, "%v", err)
	}
	return next, nil
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
	s.keys.comet.extendWrite(w)
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
func (k *keys) doFence(ctx context.Context, req FenceRequest) (FenceReply, error) {
	if !k.enabled() {
		return FenceReply{}, refuse(http.StatusNotImplemented, "this agent has no Keymanager configured")
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	g, err := grant.Verify(req.Grant, k.o.CAPEM, k.s.o.Now())
	if err != nil {
		return FenceReply{}, refuse(http.StatusForbidden, "failoverd's grant does not verify: %v", err)
	}
	if g.Action != approval.ActionFailback || g.Standby != k.o.StandbyName {
		return FenceReply{}, refuse(http.StatusForbidden, "the grant is not a failback from this standby")
	}
	// The same generation again is a repeat (fenced) or a failback approved
	// again after a fence that failed: the signing right has not moved since.
	if g.Generation < k.state.Generation || (g.Generation == k.state.Generation && k.state.Phase != failover.SignerFenced && k.state.Phase != failover.SignerFailed) {
		return FenceReply{}, refuse(http.StatusConflict, "ownership changed meanwhile: grant generation %d, this standby has seen %d", g.Generation, k.state.Generation)
	}
	if k.comet.installs() {
		return k.fenceCometBFT(g)
	}
	k.closeValidator()
	res, err := k.km.DeleteKeystores(ctx, g.Pubkeys)
	if err != nil && res.SlashingProtection == "" {
		return FenceReply{}, fmt.Errorf("agent: delete keys: %w", err)
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
		return FenceReply{}, fmt.Errorf("agent: save signer state: %w", err)
	}
	return FenceReply{FenceReport: failover.FenceReport{KeyStatuses: statuses, SlashingProtection: res.SlashingProtection}}, nil
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
	switch req.Kind {
	case "", ChainKindBeacon:
	case ChainKindCometBFT:
		s.cometChain(w, r, req)
		return
	default:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("unknown kind %q: want %q or %q", req.Kind, ChainKindBeacon, ChainKindCometBFT)})
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
