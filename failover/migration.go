package failover

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/beacon"
	"github.com/failoverd/failoverd/failover/cometbft"
	"github.com/failoverd/failoverd/failover/config"
	"github.com/failoverd/failoverd/failover/grant"
)

// StandbyKeys is the standby's side of a key move, reached through its
// agent. It never carries a keystore or a password: those go from the
// approver's machine to the agent directly (DESIGN.md rule 2).
type StandbyKeys interface {
	// Chain is what the standby's beacon node says of pubkeys: network,
	// statuses and liveness over the last epochs finished epochs.
	Chain(ctx context.Context, sb cloud.Standby, pubkeys []string, epochs int) (beacon.Report, error)
	// Signer is what the standby's validator client holds.
	Signer(ctx context.Context, sb cloud.Standby) (SignerState, error)
	// Fence removes the keys from the standby's validator client and stops
	// it (failback); the grant proves failoverd accepted a failback approval.
	Fence(ctx context.Context, sb cloud.Standby, g grant.Signed) (FenceReport, error)
	// Endpoint is how an approver's CLI reaches the agent.
	Endpoint(sb cloud.Standby) (AgentEndpoint, error)
}

// SignerState is the standby validator client as its agent reports it.
type SignerState struct {
	// Generation is the ownership generation of the last grant the agent
	// acted on (0: none).
	Generation int64 `json:"generation"`
	// Phase: "" (nothing yet), "importing", "imported", "failed" or "fenced".
	Phase       string            `json:"phase,omitempty"`
	KeyStatuses map[string]string `json:"keyStatuses,omitempty"`
	Message     string            `json:"message,omitempty"`
}

// The signer phases an agent reports.
const (
	SignerImporting = "importing"
	SignerImported  = "imported"
	SignerFailed    = "failed"
	SignerFenced    = "fenced"
)

// FenceReport is the standby's answer to a fence: per-key delete statuses
// and the slashing protection its validator client gave back.
type FenceReport struct {
	KeyStatuses        map[string]string `json:"keyStatuses"`
	SlashingProtection string            `json:"slashingProtection"`
	// PrivValidatorState is the priv_validator_state.json beacond kept
	// until the key was removed (Berachain; empty when it had none).
	PrivValidatorState string `json:"privValidatorState,omitempty"`
}

// AgentEndpoint is where an approver's CLI sends keys: the agent's URL, the
// name its certificate carries and the CA that issued it.
type AgentEndpoint struct {
	URL        string `json:"url"`
	ServerName string `json:"serverName"`
	CAPEM      string `json:"caPEM"`
}

// HomeFencer stops the home validator client through the cluster (the
// workload scaled to zero, no pod left).
type HomeFencer interface {
	ScaleToZero(ctx context.Context, validator string) (string, error)
}

// GrantSigner signs grants (the standby CA).
type GrantSigner interface {
	SignGrant(msg []byte) []byte
}

// AuditLog keeps an append-only record of approvals, accepted or refused.
type AuditLog interface {
	Append(ctx context.Context, rec AuditRecord) error
}

// AuditRecord is one line of the audit log.
type AuditRecord struct {
	At         time.Time `json:"at"`
	Incident   string    `json:"incident"`
	Validator  string    `json:"validator"`
	Action     string    `json:"action"`
	Outcome    string    `json:"outcome"` // accepted | refused
	Reason     string    `json:"reason,omitempty"`
	Approvers  []string  `json:"approvers,omitempty"`
	From       string    `json:"from,omitempty"`
	Nonce      string    `json:"nonce,omitempty"`
	Generation int64     `json:"generation,omitempty"`
}

// MigrationOptions configure key moves. Without Signers every approval is
// refused.
type MigrationOptions struct {
	Signers   approval.AllowedSigners
	Threshold int
	// SilentEpochs is how many finished epochs the chain must show the keys
	// silent (at least beacon.MinSilentEpochs).
	SilentEpochs int
	// Beacons are further beacon nodes asked for silence, besides the
	// standby's own.
	Beacons []*beacon.Client
	// SilentBlocks is how many of the latest blocks must lack a Berachain
	// validator's commit signature (at least cometbft.DefaultBlocks).
	SilentBlocks int
	// CometNodes are further CometBFT nodes asked for silence on Berachain.
	CometNodes []*cometbft.Client
	// GenesisRoots maps a network to its genesis_validators_root; a
	// validator's network missing here is checked for agreement only.
	GenesisRoots map[string]string
	Keys         StandbyKeys
	Home         HomeFencer
	Grants       GrantSigner
	// CertSHA256 is the SHA-256 of the standby agent's certificate.
	CertSHA256 func(inc Incident) (string, error)
	Audit      AuditLog
	// ImportTimeout is how long a migrating incident waits for the standby
	// to report its import before it stops and pages.
	ImportTimeout time.Duration
}

// The ways home is fenced before a migration (DESIGN.md rule 4).
const (
	FenceKeymanager = "keymanager"
	FenceScale      = "scale-to-zero"
	FencePoweredOff = "powered-off"
)

// Fencing is the approver's evidence that home no longer signs.
type Fencing struct {
	Method string `json:"method"`
	// KeyStatuses are the home Keymanager's DELETE statuses (keymanager).
	KeyStatuses map[string]string `json:"keyStatuses,omitempty"`
	// ConfirmedBy is the approver who confirms the power-off (powered-off).
	ConfirmedBy string `json:"confirmedBy,omitempty"`
}

// ApprovalRequest is an approval as the CLI submits it.
type ApprovalRequest struct {
	Incident   string   `json:"incident"`
	Approval   string   `json:"approval"`   // canonical text (approval.Approval.Canonical)
	Signatures []string `json:"signatures"` // armored SSHSIG, one per approver
	Fencing    Fencing  `json:"fencing"`
	// From is the submitter's address (set by the API, not the client).
	From string `json:"-"`
}

// ApprovalReply is what an accepted approval returns to the CLI.
type ApprovalReply struct {
	Incident Incident      `json:"incident"`
	Grant    grant.Signed  `json:"grant"`
	Agent    AgentEndpoint `json:"agent"`
	// Chain is the standby beacon node's report: the chain clock and
	// network the CLI's slashing-protection watermark uses.
	Chain beacon.Report `json:"chain"`
}

// Plan is what an approver needs before signing: the names to sign and
// where the keys will go.
type Plan struct {
	Incident  string `json:"incident"`
	Validator string `json:"validator"`
	// ValidatorChain is the validator's chain: ethereum or berachain.
	ValidatorChain    string    `json:"validatorChain,omitempty"`
	Network           string    `json:"network,omitempty"`
	Action            string    `json:"action"`
	State             State     `json:"state"`
	Standby           string    `json:"standby"`
	StandbyCertSHA256 string    `json:"standbyCertSHA256"`
	Ownership         Ownership `json:"ownership"`
	Threshold         int       `json:"threshold"`
	Principals        []string  `json:"principals"`
	// Pubkeys are the validator's declared keys (fleet[].pubkeys): a
	// migration must name exactly these.
	Pubkeys []string      `json:"pubkeys"`
	Agent   AgentEndpoint `json:"agent"`
	// Grant is present once the move was accepted (migrating): a CLI that
	// lost the reply fetches it again here.
	Grant *grant.Signed `json:"grant,omitempty"`
	// Chain is the standby's chain report for the migration's keys, once
	// there are some (migrating).
	Chain *beacon.Report `json:"chain,omitempty"`
}

// RefusedError is an approval or precondition that failed; Message says
// what to do. Nothing was moved.
type RefusedError struct {
	Code    string
	Message string
}

func (e *RefusedError) Error() string { return "refused (" + e.Code + "): " + e.Message }

func refused(code, format string, args ...any) error {
	return &RefusedError{Code: code, Message: fmt.Sprintf(format, args...)}
}

// The precondition refusal codes (approval refusals use approval.Code).
const (
	RefuseState      = "wrong-state"
	RefuseOwner      = "ownership"
	RefuseNotReady   = "standby-not-ready"
	RefuseNotFenced  = "home-not-fenced"
	RefuseNotSilent  = "chain-not-silent"
	RefuseRoot       = "network-mismatch"
	RefuseUnusable   = "validator-unusable"
	RefuseNoAgent    = "no-agent"
	RefuseConfig     = "not-configured"
	RefuseUnverified = "cannot-verify"
	RefuseKeys       = "wrong-keys"
)

// migrationMetrics count key moves.
type migrationMetrics struct {
	approvals *prometheus.CounterVec
	moves     *prometheus.CounterVec
}

func newMigrationMetrics(reg prometheus.Registerer) *migrationMetrics {
	m := &migrationMetrics{
		approvals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "failoverd_approvals_total",
			Help: "Approvals submitted, by action and outcome (accepted, or the refusal code).",
		}, []string{"action", "outcome"}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "failoverd_key_moves_total",
			Help: "Key moves that ended, by action and outcome (done, failed).",
		}, []string{"action", "outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.approvals, m.moves)
	}
	return m
}

// ValidatorOwner is one fleet validator's owner.
type ValidatorOwner struct {
	Validator string `json:"validator"`
	Ownership
	OpenIncident string `json:"openIncident,omitempty"`
}

// Owners lists the owner of every fleet validator.
func (e *Engine) Owners(ctx context.Context) ([]ValidatorOwner, error) {
	recs, err := e.store.ListValidators(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]ValidatorRecord{}
	for _, r := range recs {
		byName[r.Name] = r
	}
	out := make([]ValidatorOwner, 0, len(e.cfg.Fleet))
	for _, v := range e.cfg.Fleet {
		r := byName[v.Name]
		o := r.Ownership
		o.Owner = o.Current()
		o = e.inFlight(ctx, r, o)
		out = append(out, ValidatorOwner{Validator: v.Name, Ownership: o, OpenIncident: r.OpenIncident})
	}
	return out, nil
}

// Owner returns who may sign for a validator now. The gate asks this.
func (e *Engine) Owner(ctx context.Context, validator string) (Ownership, error) {
	if _, ok := e.cfg.Validator(validator); !ok {
		return Ownership{}, fmt.Errorf("validator %q is not in the fleet: %w", validator, ErrNotFound)
	}
	v, err := e.store.GetValidator(ctx, validator)
	if errors.Is(err, ErrNotFound) {
		return Ownership{Owner: OwnerHome}, nil
	}
	if err != nil {
		return Ownership{}, err
	}
	o := v.Ownership
	o.Owner = o.Current()
	return e.inFlight(ctx, v, o), nil
}

// inFlight answers for a validator whose key move was accepted and recorded
// (migrating) but whose signing right has not moved yet (a crash or a failed
// write between the two): nobody may start a signer until the reconciler
// finishes the swap or stops the move. Home was fenced for this move; its
// gate must not open just because the record still says home.
func (e *Engine) inFlight(ctx context.Context, v ValidatorRecord, o Ownership) Ownership {
	if v.OpenIncident == "" {
		return o
	}
	inc, err := e.store.GetIncident(ctx, v.OpenIncident)
	if err != nil {
		// Unknown is not home: the gate stays shut.
		o.Owner = OwnerNobody
		return o
	}
	m, ok := inc.CurrentMigration()
	if ok && inc.State == StateMigrating && m.Generation > o.Generation {
		o.Owner = OwnerNobody
	}
	return o
}

func actionFor(inc Incident) string {
	if inc.State == StateMigrated || inc.State == StateFailed && inc.KeysMoved() {
		return approval.ActionFailback
	}
	return approval.ActionMigrate
}

// Plan returns what an approver signs for incident id.
func (e *Engine) Plan(ctx context.Context, id string) (Plan, error) {
	inc, err := e.store.GetIncident(ctx, id)
	if err != nil {
		return Plan{}, fmt.Errorf("incident %s: %w", id, err)
	}
	own, err := e.Owner(ctx, inc.Validator)
	if err != nil {
		return Plan{}, err
	}
	p := Plan{Incident: inc.ID, Validator: inc.Validator, ValidatorChain: inc.Chain, Network: inc.Network, Action: actionFor(inc), State: inc.State,
		Ownership: own, Threshold: max(e.mig.Threshold, 1), Principals: e.mig.Signers.Principals()}
	if vc, ok := e.cfg.Validator(inc.Validator); ok {
		p.Pubkeys = slices.Clone(vc.Pubkeys)
	}
	if inc.Standby == nil {
		return p, nil
	}
	p.Standby = inc.Standby.Name
	if e.mig.CertSHA256 != nil {
		if p.StandbyCertSHA256, err = e.mig.CertSHA256(inc); err != nil {
			return Plan{}, err
		}
	}
	if sb, err := e.liveStandby(ctx, inc); err == nil && e.mig.Keys != nil {
		if ep, err := e.mig.Keys.Endpoint(sb); err == nil {
			p.Agent = ep
		}
	}
	// A grant only once the signing right has moved: before the swap (a
	// crash between intent and swap) the reconciler may still refuse it.
	if m, ok := inc.CurrentMigration(); ok && inc.State == StateMigrating && m.Action == approval.ActionMigrate &&
		own.Current() == m.To && own.Generation == m.Generation {
		g, err := e.grantFor(inc, m)
		if err != nil {
			return Plan{}, err
		}
		p.Grant = &g
		if m.Chain != nil {
			// Where the chain stood at the approval: a CLI that lost the
			// reply sets its watermark here.
			p.Chain = &beacon.Report{Source: "recorded at the approval", GenesisValidatorsRoot: m.Chain.GenesisValidatorsRoot,
				Epoch: m.Chain.Epoch, Slot: m.Chain.Slot}
		}
	}
	return p, nil
}

// checkKeys refuses a migration whose keys are not exactly the validator's
// declared fleet[].pubkeys, or one of whose keys another validator's standby
// holds (or is importing): ownership is recorded per validator, so a key
// named under the wrong validator could get a second signer while its own
// validator's home still signs.
func (e *Engine) checkKeys(ctx context.Context, validator string, pubkeys []string) error {
	vc, ok := e.cfg.Validator(validator)
	if !ok {
		return refused(RefuseConfig, "validator %s is no longer in the fleet: nothing of it moves", validator)
	}
	if len(vc.Pubkeys) == 0 {
		return refused(RefuseConfig, "validator %s declares no keys (fleet[].pubkeys): failoverd cannot tell which keys are its, so none move; add them to the config and restart", validator)
	}
	want := normKeys(vc.Pubkeys)
	if diff := KeyMismatch(vc.Pubkeys, pubkeys); diff != "" {
		return refused(RefuseKeys, "the approval's keys are not validator %s's %d declared keys (fleet[].pubkeys)%s. Approve with exactly the validator's keystores",
			validator, len(want), diff)
	}
	vals, err := e.store.ListValidators(ctx)
	if err != nil {
		return fmt.Errorf("list validators: %w", err)
	}
	for _, v := range vals {
		if v.Name == validator || v.Ownership.AtHome() {
			continue
		}
		for _, k := range v.Ownership.Pubkeys {
			if want[strings.ToLower(k)] {
				return refused(RefuseKeys, "key %s is signed for by standby %s of validator %s (generation %d): fail that validator back first", k, v.Ownership.Current(), v.Name, v.Ownership.Generation)
			}
		}
	}
	open, err := e.store.ListIncidents(ctx, ListOptions{OpenOnly: true})
	if err != nil {
		return fmt.Errorf("list incidents: %w", err)
	}
	for _, inc := range open {
		m, ok := inc.CurrentMigration()
		if inc.Validator == validator || !ok || inc.State != StateMigrating {
			continue
		}
		for _, k := range m.Pubkeys {
			if want[strings.ToLower(k)] {
				return refused(RefuseKeys, "key %s is being moved by incident %s of validator %s", k, inc.ID, inc.Validator)
			}
		}
	}
	return nil
}

// KeyMismatch says how got differs from the declared keys, as
// "; not this validator's: …; missing: …" (lower-case, sorted), or "" when
// they are the same set. failoverd refuses an approval on it, and the CLI
// says it before anyone signs.
func KeyMismatch(declared, got []string) string {
	want, have := normKeys(declared), normKeys(got)
	var missing, extra []string
	for k := range want {
		if !have[k] {
			missing = append(missing, k)
		}
	}
	for k := range have {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	msg := ""
	if len(extra) > 0 {
		msg += "; not this validator's: " + strings.Join(extra, ", ")
	}
	if len(missing) > 0 {
		msg += "; missing: " + strings.Join(missing, ", ")
	}
	return msg
}

func normKeys(keys []string) map[string]bool {
	m := make(map[string]bool, len(keys))
	for _, k := range keys {
		m[strings.ToLower(k)] = true
	}
	return m
}

// liveStandby reads the incident's standby from its cloud (for its address).
func (e *Engine) liveStandby(ctx context.Context, inc Incident) (cloud.Standby, error) {
	if inc.Standby == nil || inc.Standby.State == cloud.StateDeleted {
		return cloud.Standby{}, refused(RefuseState, "incident %s has no standby", inc.ID)
	}
	p, ok := e.providers[inc.Standby.Provider]
	if !ok {
		return cloud.Standby{}, refused(RefuseConfig, "provider %q is not running in this failoverd", inc.Standby.Provider)
	}
	cctx, cancel := context.WithTimeout(ctx, e.cfg.Engine.CallTimeout)
	defer cancel()
	return e.call(p, "get", func() (cloud.Standby, error) { return p.Get(cctx, inc.Standby.Name) })
}

// incidentNonces is the incident's record of used nonces, for the verifier.
// mine is the nonce this very Approve call has already spent: a retry after
// a concurrent write to the incident is not a replay of itself.
type incidentNonces struct {
	inc  *Incident
	mine string
}

func (n incidentNonces) Seen(nonce string) bool {
	return nonce != n.mine && slices.Contains(n.inc.Nonces, nonce)
}

func (n incidentNonces) Mark(nonce string) error {
	if slices.Contains(n.inc.Nonces, nonce) {
		if nonce == n.mine {
			return nil
		}
		return &approval.RefusalError{Code: approval.CodeReplayed, Message: "nonce " + nonce + " already used on this incident"}
	}
	n.inc.Nonces = append(n.inc.Nonces, nonce)
	return nil
}

// Approve takes an approval to move keys (migrate or failback). It verifies
// the signatures, the threshold, the expiry and single use; checks every
// precondition; records the decision (who, when, from where) in the
// incident's history and the audit log; and only then moves the signing
// right. Any failure refuses with a *RefusedError or an
// *approval.RefusalError and moves nothing.
func (e *Engine) Approve(ctx context.Context, req ApprovalRequest) (ApprovalReply, error) {
	// The reconciler writes a ready incident at every poll: such a write
	// between the nonce being spent and the transition makes this loop try
	// again, and the retry must not refuse its own nonce as replayed.
	var spent string
	for range maxCASRetries {
		reply, err := e.approve(ctx, req, &spent)
		if errors.Is(err, ErrConflict) {
			continue
		}
		return reply, err
	}
	return ApprovalReply{}, fmt.Errorf("approve %s: %w after %d attempts", req.Incident, ErrConflict, maxCASRetries)
}

func (e *Engine) approve(ctx context.Context, req ApprovalRequest, spent *string) (ApprovalReply, error) {
	inc, err := e.store.GetIncident(ctx, req.Incident)
	if err != nil {
		return ApprovalReply{}, fmt.Errorf("incident %s: %w", req.Incident, err)
	}
	a, perr := approval.ParseCanonical([]byte(req.Approval))
	action := actionFor(inc)
	if perr == nil && a.Action != "" {
		action = a.Action
	}
	refuse := func(err error) (ApprovalReply, error) {
		code := refusalCode(err)
		e.mm.approvals.WithLabelValues(action, code).Inc()
		e.audit(ctx, AuditRecord{Incident: inc.ID, Validator: inc.Validator, Action: action, Outcome: "refused",
			Reason: err.Error(), From: req.From, Nonce: a.Nonce})
		e.log.Warn("approval refused", "incident", inc.ID, "action", action, "from", req.From, "code", code, "reason", err)
		return ApprovalReply{}, err
	}
	if perr != nil {
		return refuse(perr)
	}
	if len(e.mig.Signers) == 0 || e.mig.Grants == nil {
		return refuse(refused(RefuseConfig, "no approvers are configured (approval.allowedSigners): this failoverd refuses every key move"))
	}
	switch {
	case a.Action == approval.ActionMigrate && inc.State != StateReady:
		return refuse(refused(RefuseState, "incident %s is %s; a migration needs a ready standby (failoverd incidents show %s)", inc.ID, inc.State, inc.ID))
	case a.Action == approval.ActionFailback && inc.State != StateMigrated && !(inc.State == StateFailed && inc.KeysMoved()):
		return refuse(refused(RefuseState, "incident %s is %s; only a migrated incident (or one that failed after a migration) fails back", inc.ID, inc.State))
	}
	v, err := e.store.GetValidator(ctx, inc.Validator)
	if err != nil {
		return ApprovalReply{}, fmt.Errorf("validator %s: %w", inc.Validator, err)
	}
	standby := ""
	if inc.Standby != nil {
		standby = inc.Standby.Name
	}
	own := v.Ownership
	switch a.Action {
	case approval.ActionMigrate:
		if !own.AtHome() {
			return refuse(refused(RefuseOwner, "validator %s is signed for by %s (generation %d), not home: a migration starts only from home", inc.Validator, own.Current(), own.Generation))
		}
	case approval.ActionFailback:
		if own.Current() != standby {
			return refuse(refused(RefuseOwner, "validator %s is signed for by %s (generation %d), not by this incident's standby %s", inc.Validator, own.Current(), own.Generation, standby))
		}
	}
	if a.Action == approval.ActionMigrate {
		if err := e.checkKeys(ctx, inc.Validator, a.Pubkeys); err != nil {
			return refuse(err)
		}
	}
	certSHA := ""
	if e.mig.CertSHA256 != nil {
		if certSHA, err = e.mig.CertSHA256(inc); err != nil {
			return refuse(refused(RefuseUnverified, "cannot compute the standby's certificate: %v", err))
		}
	}
	want := approval.Want{Incident: inc.ID, Standby: standby, StandbyCertSHA256: certSHA, Pubkeys: a.Pubkeys, Action: a.Action}
	if a.Action == approval.ActionFailback {
		m, _ := inc.CurrentMigration()
		want.Pubkeys = m.Pubkeys
	}
	sigs := make([][]byte, len(req.Signatures))
	for i, s := range req.Signatures {
		sigs[i] = []byte(s)
	}
	// The nonce is spent by the verification itself: a refused precondition
	// below still uses it up, so the same approval can never be tried twice.
	verifier := &approval.Verifier{Signers: e.mig.Signers, Threshold: e.mig.Threshold, Now: e.now, Used: incidentNonces{inc: &inc, mine: *spent}}
	res, verr := verifier.Verify(a, sigs, want)
	if verr != nil {
		return refuse(verr)
	}
	t := e.now().UTC()
	approvers := make([]ApproverRecord, len(res.Approvers))
	names := res.Principals()
	for i, ap := range res.Approvers {
		approvers[i] = ApproverRecord{Principal: ap.Principal, Fingerprint: ap.Fingerprint, From: req.From, At: t}
	}
	sum := sha256.Sum256(res.Canonical)
	m := Migration{
		Action: a.Action, Generation: own.Generation + 1, Pubkeys: res.Approval.Pubkeys, Approvers: approvers,
		ApprovalSHA256: hex.EncodeToString(sum[:]), Nonce: a.Nonce, Expires: res.Approval.Expires, AcceptedAt: t,
	}
	// Spend the nonce durably before anything else can happen.
	inc.record(Entry{At: t, Cause: fmt.Sprintf("%s approval by %s from %s verified (nonce %s); checking preconditions",
		a.Action, strings.Join(names, ", "), req.From, a.Nonce)})
	if err := e.update(ctx, &inc); err != nil {
		return ApprovalReply{}, err
	}
	*spent = a.Nonce
	var chain beacon.Report
	if a.Action == approval.ActionMigrate {
		m.From, m.To = OwnerHome, standby
		var perr error
		chain, perr = e.migratePreconditions(ctx, inc, &m, req.Fencing, names)
		if perr != nil {
			inc.record(Entry{At: e.now().UTC(), Cause: "approval refused: " + perr.Error()})
			if err := e.update(ctx, &inc); err != nil {
				return ApprovalReply{}, err
			}
			return refuse(perr)
		}
	} else {
		m.From, m.To = standby, OwnerHome
		m.Fencing = "the standby's keys are deleted through its agent next"
	}
	// Intent first: the incident says what is about to change, then the
	// signing right moves (compare-and-swap on the validator). A crash in
	// between is finished by the reconciler, which repeats the swap.
	inc.Migrations = append(inc.Migrations, m)
	ev, why := EventApproved, fmt.Sprintf("migration approved by %s from %s; home fenced (%s); %s; the signing right moves to %s (generation %d)",
		strings.Join(names, ", "), req.From, m.Fencing, m.Silence, standby, m.Generation)
	if a.Action == approval.ActionFailback {
		ev, why = EventFailbackApproved, fmt.Sprintf("failback approved by %s from %s; fencing standby %s, then waiting for chain silence before home signs again (generation %d)",
			strings.Join(names, ", "), req.From, standby, m.Generation)
	}
	if err := e.transition(ctx, &inc, ev, why); err != nil {
		return ApprovalReply{}, err
	}
	// Audited before the swap: a crash after it leaves a line saying what
	// was decided, and the reconciler, which then finishes the swap,
	// writes one too (acceptedAfterRestart). A refused swap adds its own
	// "refused" line below.
	e.audit(ctx, AuditRecord{Incident: inc.ID, Validator: inc.Validator, Action: a.Action, Outcome: "accepted",
		Approvers: names, From: req.From, Nonce: a.Nonce, Generation: m.Generation})
	if a.Action == approval.ActionMigrate {
		if _, err := e.moveOwnership(ctx, inc, m); err != nil {
			// The incident says migrating; the reconciler retries the swap
			// or fails the incident. No grant leaves this process.
			if isRefused(err) {
				return refuse(err)
			}
			return ApprovalReply{}, err
		}
	}
	e.mm.approvals.WithLabelValues(a.Action, "accepted").Inc()
	e.log.Info("approval accepted", "incident", inc.ID, "action", a.Action, "approvers", names, "from", req.From, "generation", m.Generation)
	e.Trigger(inc.Validator)
	g, err := e.grantFor(inc, m)
	if err != nil {
		return ApprovalReply{}, err
	}
	reply := ApprovalReply{Incident: inc, Grant: g, Chain: chain}
	if sb, err := e.liveStandby(ctx, inc); err == nil && e.mig.Keys != nil {
		reply.Agent, _ = e.mig.Keys.Endpoint(sb)
	}
	return reply, nil
}

func refusalCode(err error) string {
	var re *RefusedError
	if errors.As(err, &re) {
		return re.Code
	}
	var ae *approval.RefusalError
	if errors.As(err, &ae) {
		return string(ae.Code)
	}
	return "error"
}

func (e *Engine) audit(ctx context.Context, rec AuditRecord) {
	if e.mig.Audit == nil {
		return
	}
	if rec.At.IsZero() {
		rec.At = e.now().UTC()
	}
	if err := e.mig.Audit.Append(ctx, rec); err != nil {
		e.log.Error("could not append to the audit log", "incident", rec.Incident, "err", err)
	}
}

// migratePreconditions checks what must hold before the signing right may
// leave home: the standby ready, home fenced, the chain silent and on the
// right network, every validator usable. It fills m's evidence.
func (e *Engine) migratePreconditions(ctx context.Context, inc Incident, m *Migration, f Fencing, approvers []string) (beacon.Report, error) {
	if e.mig.Keys == nil {
		return beacon.Report{}, refused(RefuseNoAgent, "this failoverd has no standby agent client: keys cannot move")
	}
	sb, err := e.liveStandby(ctx, inc)
	if err != nil {
		return beacon.Report{}, refused(RefuseNotReady, "cannot read standby: %v", err)
	}
	if sb.Address == "" {
		return beacon.Report{}, refused(RefuseNoAgent, "standby %s has no agent address (the simulated cloud runs no agent): keys cannot move there", sb.Name)
	}
	provider := e.providers[inc.Standby.Provider]
	if r := e.syncReporter(provider); r != nil {
		cctx, cancel := context.WithTimeout(ctx, e.cfg.Engine.CallTimeout)
		st, err := e.syncStatus(cctx, provider, r, sb)
		cancel()
		if err != nil {
			return beacon.Report{}, refused(RefuseNotReady, "cannot read the standby's sync status: %v; try again when the agent answers", err)
		}
		if !st.Ready() {
			return beacon.Report{}, refused(RefuseNotReady, "standby %s is not ready: %s; wait for the FailoverdStandbyReady page", sb.Name, strings.Join(st.NotReady(), ", "))
		}
	}
	if err := e.homeFenced(ctx, inc, m, f, approvers); err != nil {
		return beacon.Report{}, err
	}
	return e.chainSilent(ctx, inc, &sb, m)
}

func (e *Engine) homeFenced(ctx context.Context, inc Incident, m *Migration, f Fencing, approvers []string) error {
	switch f.Method {
	case FenceKeymanager:
		if inc.Chain == config.ChainBerachain {
			return refused(RefuseNotFenced, "beacond has no Keymanager API: fence home by scaling it to zero (--fence scale-to-zero) or confirm it is powered off")
		}
		var bad []string
		for _, pk := range m.Pubkeys {
			st, ok := lookupKey(f.KeyStatuses, pk)
			switch {
			case !ok:
				bad = append(bad, pk+": no DELETE status")
			case st != "deleted" && st != "not_active":
				bad = append(bad, fmt.Sprintf("%s: %s", pk, st))
			}
		}
		if len(bad) > 0 {
			return refused(RefuseNotFenced, "the home Keymanager did not confirm every key deleted or not_active (%s); home may still sign. Fix the home validator client, scale it to zero (--fence scale-to-zero) or confirm it is powered off", strings.Join(bad, "; "))
		}
		m.Fencing = "home Keymanager API: every key deleted or not_active"
	case FenceScale:
		if e.mig.Home == nil {
			return refused(RefuseNotFenced, "this failoverd cannot scale the home workload (no Kubernetes access or no fleet[].home.workload); use the Keymanager or confirm the power-off")
		}
		what, err := e.mig.Home.ScaleToZero(ctx, inc.Validator)
		if err != nil {
			return refused(RefuseNotFenced, "home not fenced: %v", err)
		}
		m.Fencing = what
	case FencePoweredOff:
		if f.ConfirmedBy == "" || !slices.Contains(approvers, f.ConfirmedBy) {
			return refused(RefuseNotFenced, "a power-off confirmation must name one of the approvers (%s), who answers for it", strings.Join(approvers, ", "))
		}
		m.Fencing = "home confirmed powered off by " + f.ConfirmedBy
	default:
		return refused(RefuseNotFenced, "home is not proven fenced: say how (keymanager, scale-to-zero or powered-off); unreachable is not stopped")
	}
	return nil
}

func lookupKey(m map[string]string, pk string) (string, bool) {
	for k, v := range m {
		if approval.NormalizePubkey(k) == approval.NormalizePubkey(pk) {
			return v, true
		}
	}
	return "", false
}

// chainSilent asks the standby's beacon node and every further configured
// one; all must agree on the network and show the keys silent.
//
// sb is nil when the standby is gone from the cloud (a failback of a lost
// signing standby): the other beacon nodes must then prove it.
func (e *Engine) chainSilent(ctx context.Context, inc Incident, sb *cloud.Standby, m *Migration) (beacon.Report, error) {
	if inc.Chain == config.ChainBerachain {
		return beacon.Report{}, e.cometSilent(ctx, inc, sb, m)
	}
	need := max(e.mig.SilentEpochs, beacon.MinSilentEpochs)
	cctx, cancel := context.WithTimeout(ctx, e.cfg.Engine.CallTimeout)
	defer cancel()
	var reports []beacon.Report
	if sb != nil {
		first, err := e.mig.Keys.Chain(cctx, *sb, m.Pubkeys, need)
		if err != nil {
			return beacon.Report{}, refused(RefuseUnverified, "cannot ask the standby's beacon node: %v", err)
		}
		first.Source = "standby " + sb.Name
		reports = append(reports, first)
	} else if len(e.mig.Beacons) == 0 {
		return beacon.Report{}, refused(RefuseUnverified, "the standby is gone and no other beacon node is configured (approval.beaconNodes): failoverd cannot prove the chain silent; add one")
	}
	for _, b := range e.mig.Beacons {
		r, err := beacon.Check(cctx, b, m.Pubkeys, need, e.now())
		if err != nil {
			return beacon.Report{}, refused(RefuseUnverified, "cannot ask beacon node %s: %v", b, err)
		}
		reports = append(reports, r)
	}
	want := e.mig.GenesisRoots[inc.Network]
	for _, r := range reports {
		if want == "" {
			want = r.GenesisValidatorsRoot
		}
		if !strings.EqualFold(r.GenesisValidatorsRoot, want) {
			return beacon.Report{}, refused(RefuseRoot, "beacon node %s is on network %s, want %s (%s): wrong network, nothing moves", r.Source, r.GenesisValidatorsRoot, want, inc.Network)
		}
		if r.Unusable != "" {
			return beacon.Report{}, refused(RefuseUnusable, "%s (seen by %s)", r.Unusable, r.Source)
		}
		if !r.Silent() {
			return beacon.Report{}, refused(RefuseNotSilent, "%s: %s; the old signer may still be signing. Make sure it is stopped and try again after %d more finished epochs (%s)",
				r.Source, r.NotSilent, need, time.Duration(need)*12*32*time.Second)
		}
	}
	first := reports[0]
	m.Silence = fmt.Sprintf("not live in epochs %v (%d beacon nodes)", first.SilentEpochs, len(reports))
	m.Chain = &ChainPoint{GenesisValidatorsRoot: first.GenesisValidatorsRoot, Epoch: first.Epoch, Slot: first.Slot}
	return first, nil
}

// moveOwnership swaps the validator's owner to m.To at m.Generation. It is
// idempotent; a generation moved on by somebody else is a conflict no retry
// fixes.
// moved reports whether this call made the swap (false: it was done).
func (e *Engine) moveOwnership(ctx context.Context, inc Incident, m Migration) (moved bool, err error) {
	for range maxCASRetries {
		v, err := e.store.GetValidator(ctx, inc.Validator)
		if err != nil {
			return false, fmt.Errorf("validator %s: %w", inc.Validator, err)
		}
		switch v.Ownership.Generation {
		case m.Generation:
			if v.Ownership.Current() == m.To && v.Ownership.Incident == inc.ID {
				return false, nil
			}
			return false, refused(RefuseOwner, "ownership of %s changed meanwhile (generation %d is %s)", inc.Validator, m.Generation, v.Ownership.Current())
		case m.Generation - 1:
		default:
			return false, refused(RefuseOwner, "ownership of %s changed meanwhile (now generation %d, %s)", inc.Validator, v.Ownership.Generation, v.Ownership.Current())
		}
		names := make([]string, len(m.Approvers))
		for i, a := range m.Approvers {
			names[i] = a.Principal
		}
		v.Ownership = Ownership{Owner: m.To, Generation: m.Generation, Incident: inc.ID, ChangedAt: e.now().UTC(), ChangedBy: names}
		if !v.Ownership.AtHome() {
			v.Ownership.Pubkeys = slices.Clone(m.Pubkeys)
		}
		err = e.store.PutValidator(ctx, &v)
		if errors.Is(err, ErrConflict) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("move the signing right of %s: %w", inc.Validator, err)
		}
		e.log.Info("signing right moved", "validator", inc.Validator, "owner", m.To, "generation", m.Generation, "incident", inc.ID)
		return true, nil
	}
	return false, fmt.Errorf("move the signing right of %s: %w", inc.Validator, ErrConflict)
}

func (e *Engine) grantFor(inc Incident, m Migration) (grant.Signed, error) {
	if e.mig.Grants == nil {
		return grant.Signed{}, refused(RefuseConfig, "no grant signer")
	}
	standby := m.To
	if m.Action == approval.ActionFailback {
		standby = m.From
	}
	g := grant.Grant{Validator: inc.Validator, Incident: inc.ID, Standby: standby, Action: m.Action, Owner: m.To,
		Generation: m.Generation, Pubkeys: m.Pubkeys, ApprovalSHA256: m.ApprovalSHA256, Expires: m.Expires}
	return grant.Sign(g, e.mig.Grants)
}

// migrating waits for the standby to report its import.
func (e *Engine) migrating(ctx context.Context, inc *Incident) (result, error) {
	m, ok := inc.CurrentMigration()
	if !ok {
		return result{}, e.transition(ctx, inc, EventFail, "migrating without a migration record; stopped, a person must decide")
	}
	moved, err := e.moveOwnership(ctx, *inc, m)
	if err != nil {
		if errors.Is(err, ErrConflict) || !isRefused(err) {
			return result{}, err
		}
		return e.stopMove(ctx, inc, m, err.Error())
	}
	if moved {
		// failoverd stopped between recording the approval and moving
		// the signing right: the move is this process's doing, and the
		// audit log must say who approved it.
		names := make([]string, len(m.Approvers))
		from := ""
		for i, a := range m.Approvers {
			names[i], from = a.Principal, a.From
		}
		e.mm.approvals.WithLabelValues(m.Action, "accepted").Inc()
		e.audit(ctx, AuditRecord{Incident: inc.ID, Validator: inc.Validator, Action: m.Action, Outcome: "accepted",
			Reason:    "signing right moved by the reconciler: failoverd stopped between recording this approval and moving it",
			Approvers: names, From: from, Nonce: m.Nonce, Generation: m.Generation})
	}
	if d, ok := e.backingOff(inc); ok {
		return wait(d), nil
	}
	poll := e.cfg.Engine.PollInterval
	sb, err := e.liveStandby(ctx, *inc)
	if err != nil {
		return e.failedAttempt(ctx, inc, "reading the standby during the migration", err)
	}
	cctx, cancel := context.WithTimeout(ctx, e.cfg.Engine.CallTimeout)
	st, err := e.mig.Keys.Signer(cctx, sb)
	cancel()
	if err != nil {
		return e.failedAttempt(ctx, inc, "reading the standby's signer", err)
	}
	inc.Attempts, inc.NextAttemptAt = 0, time.Time{}
	switch {
	case st.Generation > m.Generation:
		return e.stopMove(ctx, inc, m, fmt.Sprintf("the standby acted on generation %d, newer than this migration's %d", st.Generation, m.Generation))
	case st.Generation == m.Generation && st.Phase == SignerImported:
		for _, pk := range m.Pubkeys {
			if s, ok := lookupKey(st.KeyStatuses, pk); !ok || s != "imported" {
				return e.stopMove(ctx, inc, m, fmt.Sprintf("key %s: import status %q", pk, s))
			}
		}
		t := e.now().UTC()
		m.KeyStatuses, m.DoneAt = st.KeyStatuses, &t
		inc.Migrations[len(inc.Migrations)-1] = m
		e.mm.moves.WithLabelValues(m.Action, "done").Inc()
		return result{after: poll}, e.transition(ctx, inc, EventImported, fmt.Sprintf(
			"standby %s imported %d keys and its validator client may start (generation %d); home stays fenced until a person runs failoverd failback %s",
			sb.Name, len(m.Pubkeys), m.Generation, inc.ID))
	case st.Generation == m.Generation && st.Phase == SignerFailed:
		m.KeyStatuses = st.KeyStatuses
		inc.Migrations[len(inc.Migrations)-1] = m
		return e.stopMove(ctx, inc, m, "the standby's import failed: "+st.Message)
	case st.Generation == m.Generation && st.Phase == SignerImporting, st.Generation < m.Generation:
		if timeout := e.mig.ImportTimeout; timeout > 0 && e.now().After(m.AcceptedAt.Add(timeout)) {
			return e.stopMove(ctx, inc, m, fmt.Sprintf("no import reported within %s of the approval (standby says generation %d, %q)", timeout, st.Generation, st.Phase))
		}
		reason := fmt.Sprintf("signing right is with %s (generation %d); waiting for the approver's CLI to deliver the keys", sb.Name, m.Generation)
		if st.Phase == SignerImporting && st.Generation == m.Generation {
			reason = fmt.Sprintf("standby %s is importing %d keys", sb.Name, len(m.Pubkeys))
		}
		if inc.Reason != reason {
			inc.Reason = reason
			return result{after: poll}, e.update(ctx, inc)
		}
		return wait(poll), nil
	default:
		return e.stopMove(ctx, inc, m, fmt.Sprintf("the standby reports an unknown signer phase %q at generation %d", st.Phase, st.Generation))
	}
}

func isRefused(err error) bool {
	var re *RefusedError
	return errors.As(err, &re)
}

// stopMove fails the incident where it is (DESIGN.md rule 7): the signing
// right stays where it is, nothing is retried, a person is paged.
func (e *Engine) stopMove(ctx context.Context, inc *Incident, m Migration, why string) (result, error) {
	e.mm.moves.WithLabelValues(m.Action, "failed").Inc()
	return result{}, e.transition(ctx, inc, EventFail, fmt.Sprintf(
		"%s stopped: %s. The signing right stays with %s; a person decides (runbooks/%s.md)", m.Action, why, e.ownerName(ctx, inc.Validator), runbookFor(m.Action)))
}

func runbookFor(action string) string {
	if action == approval.ActionFailback {
		return "failback"
	}
	return "approve-migration"
}

func (e *Engine) ownerName(ctx context.Context, validator string) string {
	o, err := e.Owner(ctx, validator)
	if err != nil {
		return "an owner failoverd cannot read now"
	}
	return fmt.Sprintf("%s (generation %d)", o.Current(), o.Generation)
}

// migrated watches the signing standby; nothing changes by itself.
func (e *Engine) migrated(ctx context.Context, inc *Incident) (result, error) {
	poll := e.cfg.Engine.PollInterval
	m, _ := inc.CurrentMigration()
	sb, err := e.liveStandby(ctx, *inc)
	if errors.Is(err, cloud.ErrNotFound) {
		return e.stopMove(ctx, inc, m, fmt.Sprintf("standby %s, which holds the signing right, is gone from the cloud; the validator is offline", inc.Standby.Name))
	}
	if err != nil {
		e.log.Warn("cannot read the signing standby", "incident", inc.ID, "err", err)
		return wait(poll), nil
	}
	cctx, cancel := context.WithTimeout(ctx, e.cfg.Engine.CallTimeout)
	st, err := e.mig.Keys.Signer(cctx, sb)
	cancel()
	if err != nil {
		e.log.Warn("cannot read the signing standby's agent", "incident", inc.ID, "err", err)
		return wait(poll), nil
	}
	if st.Generation != m.Generation || st.Phase != SignerImported {
		return e.stopMove(ctx, inc, m, fmt.Sprintf("the signing standby now reports generation %d, phase %q (%s)", st.Generation, st.Phase, st.Message))
	}
	return wait(poll), nil
}

// failingBack fences the standby, waits for chain silence, returns the
// signing right home and deletes the standby.
func (e *Engine) failingBack(ctx context.Context, inc *Incident) (result, error) {
	m, ok := inc.CurrentMigration()
	if !ok || m.Action != approval.ActionFailback {
		return result{}, e.transition(ctx, inc, EventFail, "failing back without a failback record; stopped, a person must decide")
	}
	if d, ok := e.backingOff(inc); ok {
		return wait(d), nil
	}
	own, err := e.Owner(ctx, inc.Validator)
	if err != nil {
		return result{}, err
	}
	if own.Generation < m.Generation {
		sb, err := e.liveStandby(ctx, *inc)
		// A standby the cloud no longer has was deleted with the boot disk
		// that held the keys (a spot preemption, a person in the console):
		// it cannot sign. Its chain silence is then proven by the other
		// nodes only.
		gone := errors.Is(err, cloud.ErrNotFound) || inc.Standby != nil && inc.Standby.State == cloud.StateDeleted
		if err != nil && !gone {
			return e.failedAttempt(ctx, inc, "reading the standby to fence it", err)
		}
		if gone && m.KeyStatuses == nil {
			m.KeyStatuses = map[string]string{}
			for _, pk := range m.Pubkeys {
				m.KeyStatuses[pk] = "not_found"
			}
			m.Fencing = "standby gone from the cloud (deleted, with the boot disk that held the keys)"
			inc.Migrations[len(inc.Migrations)-1] = m
			inc.Attempts = 0
			inc.record(Entry{At: e.now().UTC(), Cause: "standby " + inc.Standby.Name + " is gone from the cloud: nothing left to fence; waiting for chain silence on the other beacon nodes"})
			if err := e.update(ctx, inc); err != nil {
				return result{}, err
			}
		}
		if m.KeyStatuses == nil {
			g, err := e.grantFor(*inc, m)
			if err != nil {
				return result{}, err
			}
			timeout := e.cfg.Engine.CallTimeout
			if inc.Chain == config.ChainBerachain {
				// The standby's host stops beacond to take the key out:
				// minutes, not seconds. A shorter wait would spend the
				// attempts while the removal is still under way.
				timeout = max(timeout, cometFenceTimeout)
			}
			cctx, cancel := context.WithTimeout(ctx, timeout)
			rep, err := e.mig.Keys.Fence(cctx, sb, g)
			cancel()
			if err != nil {
				return e.failedAttempt(ctx, inc, "fencing the standby", err)
			}
			// not_found: the standby's validator client never loaded the key
			// (its import failed); keys reach it only through its agent.
			for _, pk := range m.Pubkeys {
				if s, ok := lookupKey(rep.KeyStatuses, pk); !ok || (s != "deleted" && s != "not_active" && s != "not_found") {
					return e.stopMove(ctx, inc, m, fmt.Sprintf("the standby did not confirm key %s deleted (status %q)", pk, s))
				}
			}
			m.KeyStatuses, m.SlashingProtection, m.PrivValidatorState = rep.KeyStatuses, rep.SlashingProtection, rep.PrivValidatorState
			m.Fencing = "standby Keymanager API: every key deleted or not_active"
			if inc.Chain == config.ChainBerachain {
				m.Fencing = "standby beacond: the key removed by its host"
			}
			inc.Migrations[len(inc.Migrations)-1] = m
			inc.Attempts = 0
			inc.record(Entry{At: e.now().UTC(), Cause: "standby " + sb.Name + " fenced: every key deleted; waiting for chain silence"})
			if err := e.update(ctx, inc); err != nil {
				return result{}, err
			}
		}
		var at *cloud.Standby
		if !gone {
			at = &sb
		}
		_, err = e.chainSilent(ctx, *inc, at, &m)
		if err != nil {
			if isRefused(err) {
				reason := "failing back: waiting for chain silence before home may sign: " + err.Error()
				if inc.Reason != reason {
					inc.Reason = reason
					if err := e.update(ctx, inc); err != nil {
						return result{}, err
					}
				}
				return wait(max(e.cfg.Engine.PollInterval, 12*time.Second)), nil
			}
			return result{}, err
		}
		inc.Migrations[len(inc.Migrations)-1] = m
		if err := e.update(ctx, inc); err != nil {
			return result{}, err
		}
		if _, err := e.moveOwnership(ctx, *inc, m); err != nil {
			if errors.Is(err, ErrConflict) || !isRefused(err) {
				return result{}, err
			}
			return e.stopMove(ctx, inc, m, err.Error())
		}
		t := e.now().UTC()
		m.DoneAt = &t
		inc.Migrations[len(inc.Migrations)-1] = m
		e.mm.moves.WithLabelValues(m.Action, "done").Inc()
		inc.record(Entry{At: t, Cause: fmt.Sprintf("signing right back home (generation %d): %s. The home validator client may start (its gate opens) with doppelganger protection", m.Generation, m.Silence)})
		if err := e.update(ctx, inc); err != nil {
			return result{}, err
		}
	}
	return e.deleteStandby(ctx, inc, "failback done")
}
