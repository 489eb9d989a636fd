package approval

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Code says why an approval was refused.
type Code string

// Refusal codes. Every refusal Verify returns is a *RefusalError with one of
// these codes; test with errors.Is(err, ErrExpired) etc.
const (
	CodeMalformed        Code = "malformed"          // approval fields missing or invalid
	CodeExpired          Code = "expired"            // now is at or after Expires
	CodeNotYetValid      Code = "not-yet-valid"      // Issued is more than MaxClockSkew in the future
	CodeTooLong          Code = "validity-too-long"  // Expires-Issued > MaxValidity
	CodeReplayed         Code = "replayed"           // nonce already used
	CodeWrongIncident    Code = "wrong-incident"     // approval names another incident
	CodeWrongStandby     Code = "wrong-standby"      // approval names another standby
	CodeWrongStandbyCert Code = "wrong-standby-cert" // approval names another standby agent certificate
	CodePubkeysDiffer    Code = "pubkeys-differ"     // approval names another set of validator keys
	CodeWrongAction      Code = "wrong-action"       // migrate vs failback
	CodeUnknownSigner    Code = "unknown-signer"     // signing key is not in allowed signers (or not allowed now / for the namespace)
	CodeBadSignature     Code = "bad-signature"      // signature malformed or does not verify
	CodeApproverMismatch Code = "approver-mismatch"  // Approver is not among the verified signers
	CodeBelowThreshold   Code = "below-threshold"    // fewer distinct allowed approvers than the threshold
	CodeNonceStore       Code = "nonce-store"        // the used-nonce store failed; fail closed
	CodeVerifierConfig   Code = "verifier-config"    // the Verifier or Want is misconfigured
)

// RefusalError is the error Verify returns when it refuses an approval.
type RefusalError struct {
	Code    Code
	Message string
	Err     error // underlying error, if any
}

func (e *RefusalError) Error() string {
	return fmt.Sprintf("approval refused (%s): %s", e.Code, e.Message)
}

func (e *RefusalError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrExpired) match any refusal with the same Code.
func (e *RefusalError) Is(target error) bool {
	t, ok := target.(*RefusalError)
	return ok && t.Code == e.Code
}

func refuse(c Code, msg string) error { return &RefusalError{Code: c, Message: msg} }

// Sentinels for errors.Is.
var (
	ErrMalformed        = &RefusalError{Code: CodeMalformed}
	ErrExpired          = &RefusalError{Code: CodeExpired}
	ErrNotYetValid      = &RefusalError{Code: CodeNotYetValid}
	ErrTooLong          = &RefusalError{Code: CodeTooLong}
	ErrReplayed         = &RefusalError{Code: CodeReplayed}
	ErrWrongIncident    = &RefusalError{Code: CodeWrongIncident}
	ErrWrongStandby     = &RefusalError{Code: CodeWrongStandby}
	ErrWrongStandbyCert = &RefusalError{Code: CodeWrongStandbyCert}
	ErrPubkeysDiffer    = &RefusalError{Code: CodePubkeysDiffer}
	ErrWrongAction      = &RefusalError{Code: CodeWrongAction}
	ErrUnknownSigner    = &RefusalError{Code: CodeUnknownSigner}
	ErrBadSignature     = &RefusalError{Code: CodeBadSignature}
	ErrApproverMismatch = &RefusalError{Code: CodeApproverMismatch}
	ErrBelowThreshold   = &RefusalError{Code: CodeBelowThreshold}
	ErrNonceStore       = &RefusalError{Code: CodeNonceStore}
	ErrVerifierConfig   = &RefusalError{Code: CodeVerifierConfig}
)

// UsedNonces remembers the nonces of accepted approvals. The daemon persists
// it. Mark should be atomic (check-and-set) and return an error wrapping
// ErrReplayed when the nonce is already there, so two daemons sharing a store
// cannot both accept the same approval. Entries may be dropped once the
// approval has expired (MaxValidity + MaxClockSkew after it was marked).
type UsedNonces interface {
	Seen(nonce string) bool
	Mark(nonce string) error
}

// MemoryNonces is an in-memory UsedNonces (tests, or a store's cache).
type MemoryNonces struct {
	mu   sync.Mutex
	used map[string]bool
}

// Seen implements UsedNonces.
func (m *MemoryNonces) Seen(n string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.used[n]
}

// Mark implements UsedNonces; it fails with ErrReplayed for a used nonce.
func (m *MemoryNonces) Mark(n string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.used[n] {
		return refuse(CodeReplayed, "nonce "+n+" already used")
	}
	if m.used == nil {
		m.used = map[string]bool{}
	}
	m.used[n] = true
	return nil
}

// Want is what the daemon expects an approval to name: the open incident, its
// standby and that standby's agent certificate, the validators' public keys
// (a set) and the action.
type Want struct {
	Incident          string
	Standby           string
	StandbyCertSHA256 string
	Pubkeys           []string
	Action            string
}

// Approver is one person whose signature counted.
type Approver struct {
	Principal   string // from allowed signers
	Fingerprint string // SHA256:... of the key that signed
	KeyType     string
}

// Result is an accepted approval.
type Result struct {
	Approval  Approval   // normalised (sorted pubkeys, UTC, second precision)
	Approvers []Approver // one per distinct principal, sorted by principal
	Canonical []byte     // the bytes that were signed
	Verified  time.Time  // the verifier's clock when accepted
}

// Principals returns the approvers' principals.
func (r Result) Principals() []string {
	out := make([]string, len(r.Approvers))
	for i, a := range r.Approvers {
		out[i] = a.Principal
	}
	return out
}

// Verifier checks approvals. Threshold is the number of distinct principals
// whose signatures are required (0 means 1). Now defaults to time.Now. Used is
// required: without it Verify refuses everything.
type Verifier struct {
	Signers   AllowedSigners
	Threshold int
	Now       func() time.Time
	Used      UsedNonces

	mu sync.Mutex // serialises the nonce check-and-mark
}

// Sign signs the approval's canonical bytes in the SSHSIG format, namespace
// "failoverd-approval", hash sha512 (what `ssh-keygen -Y sign -n
// failoverd-approval` makes of the same bytes). signer may come from an
// ssh-agent (agent.NewClient(conn).Signers()) or a key file
// (ssh.ParsePrivateKey); RSA keys sign with rsa-sha2-512.
func Sign(a Approval, signer ssh.Signer) ([]byte, error) {
	msg, err := a.Canonical()
	if err != nil {
		return nil, err
	}
	return sshsigSign(msg, Namespace, signer)
}

// Verify accepts the approval only if all of these hold, and otherwise returns
// a *RefusalError saying which did not:
//   - the approval is well formed and names exactly want (incident, standby,
//     standby certificate, action, and the same set of public keys);
//   - now is before Expires, Issued is at most MaxClockSkew in the future and
//     the validity window is at most MaxValidity;
//   - every signature is a well-formed SSHSIG over the canonical bytes, in
//     namespace "failoverd-approval" with sha512, by a key in Signers (a bad
//     or unknown signature refuses the whole approval: nothing unknown counts);
//   - Approver is one of the principals that signed;
//   - at least Threshold distinct principals signed (several signatures by one
//     principal count once);
//   - the nonce was not used before.
//
// On success it marks the nonce used (a failure to do so refuses) and reports
// who approved.
func (v *Verifier) Verify(a Approval, sigs [][]byte, want Want) (Result, error) {
	if err := v.check(); err != nil {
		return Result{}, err
	}
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	w, err := normalizeWant(want)
	if err != nil {
		return Result{}, err
	}
	n, err := a.normalize()
	if err != nil {
		return Result{}, err
	}
	if err := matchWant(n.Approval, w); err != nil {
		return Result{}, err
	}
	if !now.Before(n.Expires) {
		return Result{}, refuse(CodeExpired, fmt.Sprintf("approval expired at %s (now %s); sign a new one", n.Expires.Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
	}
	if n.Issued.After(now.Add(MaxClockSkew)) {
		return Result{}, refuse(CodeNotYetValid, fmt.Sprintf("approval issued at %s, more than %s after now (%s); check the approver's clock", n.Issued.Format(time.RFC3339), MaxClockSkew, now.UTC().Format(time.RFC3339)))
	}
	msg := n.encode()

	if len(sigs) == 0 {
		return Result{}, refuse(CodeBelowThreshold, fmt.Sprintf("no signatures; %d of %v must sign", v.threshold(), v.Signers.Principals()))
	}
	if len(sigs) > 64 {
		return Result{}, refuse(CodeBadSignature, fmt.Sprintf("%d signatures; at most 64 are accepted", len(sigs)))
	}
	byPrincipal := map[string]Approver{}
	for i, raw := range sigs {
		p, err := parseSSHSig(raw, Namespace)
		if err != nil {
			return Result{}, &RefusalError{Code: CodeBadSignature, Message: fmt.Sprintf("signature #%d: %v", i+1, err), Err: err}
		}
		fp := ssh.FingerprintSHA256(p.key)
		entry, ok := v.Signers.lookup(p.key)
		if !ok {
			return Result{}, refuse(CodeUnknownSigner, fmt.Sprintf("signature #%d is by key %s (%s), which is not an allowed approver; add it to the approvers' allowed signers or sign with an allowed key", i+1, fp, p.key.Type()))
		}
		if why := entry.refusesAt(Namespace, now); why != "" {
			return Result{}, refuse(CodeUnknownSigner, fmt.Sprintf("signature #%d: %s", i+1, why))
		}
		if err := p.verify(msg, Namespace); err != nil {
			return Result{}, &RefusalError{Code: CodeBadSignature, Message: fmt.Sprintf("signature #%d by %s (%s) does not verify over this approval: %v; it was made for different bytes or is corrupt", i+1, entry.Principal, fp, err), Err: err}
		}
		if _, dup := byPrincipal[entry.Principal]; !dup {
			byPrincipal[entry.Principal] = Approver{Principal: entry.Principal, Fingerprint: fp, KeyType: p.key.Type()}
		}
	}
	if _, ok := byPrincipal[n.Approver]; !ok {
		return Result{}, refuse(CodeApproverMismatch, fmt.Sprintf("approval says it was made by %q, but that principal did not sign it (signed by %v)", n.Approver, sortedKeys(byPrincipal)))
	}
	if len(byPrincipal) < v.threshold() {
		return Result{}, refuse(CodeBelowThreshold, fmt.Sprintf("signed by %d distinct approver(s) %v; %d of %v required; ask another approver to sign the same approval", len(byPrincipal), sortedKeys(byPrincipal), v.threshold(), v.Signers.Principals()))
	}

	v.mu.Lock()
	defer v.mu.Unlock()
	if v.Used.Seen(n.Nonce) {
		return Result{}, refuse(CodeReplayed, fmt.Sprintf("nonce %s was already used; an approval is good for one key move, sign a new one", n.Nonce))
	}
	if err := v.Used.Mark(n.Nonce); err != nil {
		if errors.Is(err, ErrReplayed) {
			return Result{}, &RefusalError{Code: CodeReplayed, Message: fmt.Sprintf("nonce %s was already used (%v); sign a new approval", n.Nonce, err), Err: err}
		}
		return Result{}, &RefusalError{Code: CodeNonceStore, Message: fmt.Sprintf("cannot record nonce %s as used: %v; refusing (fail closed)", n.Nonce, err), Err: err}
	}
	res := Result{Approval: n.Approval, Canonical: msg, Verified: now}
	for _, p := range sortedKeys(byPrincipal) {
		res.Approvers = append(res.Approvers, byPrincipal[p])
	}
	return res, nil
}

// VerifyCanonical is Verify for an approval received as canonical bytes.
func (v *Verifier) VerifyCanonical(canonical []byte, sigs [][]byte, want Want) (Result, error) {
	a, err := ParseCanonical(canonical)
	if err != nil {
		return Result{}, err
	}
	return v.Verify(a, sigs, want)
}

func (v *Verifier) threshold() int {
	if v.Threshold <= 0 {
		return 1
	}
	return v.Threshold
}

func (v *Verifier) check() error {
	if v == nil || v.Used == nil {
		return refuse(CodeVerifierConfig, "verifier has no used-nonce store; refusing (fail closed)")
	}
	if len(v.Signers) == 0 {
		return refuse(CodeVerifierConfig, "no allowed approvers configured")
	}
	if m := len(v.Signers.Principals()); v.threshold() > m {
		return refuse(CodeVerifierConfig, fmt.Sprintf("threshold %d is more than the %d configured approvers", v.threshold(), m))
	}
	return nil
}

func normalizeWant(w Want) (Want, error) {
	bad := func(err error) (Want, error) {
		msg := err.Error()
		var r *RefusalError
		if errors.As(err, &r) {
			msg, _, _ = strings.Cut(r.Message, "; build a new approval")
		}
		return Want{}, refuse(CodeVerifierConfig, "daemon's expectation is invalid: "+msg)
	}
	for _, f := range []struct{ name, v string }{{"incident", w.Incident}, {"standby", w.Standby}} {
		if err := checkToken(f.name, f.v, maxFieldLen); err != nil {
			return bad(err)
		}
	}
	if w.Action != ActionMigrate && w.Action != ActionFailback {
		return bad(fmt.Errorf("action %q", w.Action))
	}
	cert, err := normalizeCertHash(w.StandbyCertSHA256)
	if err != nil {
		return bad(err)
	}
	pks, err := normalizePubkeys(w.Pubkeys)
	if err != nil {
		return bad(err)
	}
	w.StandbyCertSHA256, w.Pubkeys = cert, pks
	return w, nil
}

func matchWant(a Approval, w Want) error {
	switch {
	case a.Action != w.Action:
		return refuse(CodeWrongAction, fmt.Sprintf("approval is for %q, but %q was requested; sign an approval for %s", a.Action, w.Action, w.Action))
	case a.Incident != w.Incident:
		return refuse(CodeWrongIncident, fmt.Sprintf("approval names incident %q, not %q; sign an approval for this incident", a.Incident, w.Incident))
	case a.Standby != w.Standby:
		return refuse(CodeWrongStandby, fmt.Sprintf("approval names standby %q, not %q (the incident's standby); sign an approval for the current standby", a.Standby, w.Standby))
	case a.StandbyCertSHA256 != w.StandbyCertSHA256:
		return refuse(CodeWrongStandbyCert, fmt.Sprintf("approval names standby certificate sha256 %s, but standby %s presents %s (was it replaced?); check the standby and sign again", a.StandbyCertSHA256, w.Standby, w.StandbyCertSHA256))
	case !slices.Equal(a.Pubkeys, w.Pubkeys):
		missing, extra := diff(w.Pubkeys, a.Pubkeys), diff(a.Pubkeys, w.Pubkeys)
		return refuse(CodePubkeysDiffer, fmt.Sprintf("approval's validator keys differ from the incident's: missing %s, not expected %s; sign an approval for exactly the incident's keys", short(missing), short(extra)))
	}
	return nil
}

// diff returns the elements of a not in b (both sorted).
func diff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); !found {
			out = append(out, x)
		}
	}
	return out
}

func short(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	if len(s) > 5 {
		return "[" + strings.Join(s[:5], " ") + fmt.Sprintf(" ... (%d more)]", len(s)-5)
	}
	return "[" + strings.Join(s, " ") + "]"
}

func sortedKeys(m map[string]Approver) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
