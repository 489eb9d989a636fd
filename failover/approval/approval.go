// Package approval implements failoverd's human approvals for moving validator
// keys (DESIGN.md rule 1): an Approval names the incident, the standby (and the
// SHA-256 of its agent certificate), the validator public keys, the action, a
// validity window and a nonce; approvers sign its canonical bytes with their SSH
// keys in the SSHSIG format (the format of `ssh-keygen -Y sign -n
// failoverd-approval`), and the daemon checks them with a Verifier.
//
// See README.md in this directory for the format and the design decisions.
package approval

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Namespace is the SSHSIG namespace of every approval signature. A signature
// made for any other namespace (git commits, files, ...) never verifies here.
const Namespace = "failoverd-approval"

// CanonicalVersion is the first line of the canonical encoding.
const CanonicalVersion = "failoverd-approval/v1"

// Actions an approval can authorise.
const (
	ActionMigrate  = "migrate"
	ActionFailback = "failback"
)

// Defaults and limits.
const (
	// DefaultValidity is how long an approval built by NewApproval is valid.
	DefaultValidity = 15 * time.Minute
	// MaxValidity is the longest validity window (Expires - Issued) accepted.
	MaxValidity = time.Hour
	// MaxClockSkew is how far in the future Issued may be, relative to the
	// verifier's clock.
	MaxClockSkew = 2 * time.Minute

	maxFieldLen   = 256
	maxPubkeyLen  = 512
	maxPubkeys    = 4096
	minNonceLen   = 16
	maxNonceLen   = 128
	timeLayout    = "2006-01-02T15:04:05Z"
	certHashBytes = 32
)

// Approval is what a person signs to let failoverd move validator keys.
//
// The zero value is not valid: every field is required. Pubkeys is a set; its
// order does not change the canonical bytes.
type Approval struct {
	// Incident is the incident ID (failoverd's own, from configured labels).
	Incident string `json:"incident"`
	// Standby is the standby's name (the node / instance the keys go to).
	Standby string `json:"standby"`
	// StandbyCertSHA256 is the hex SHA-256 of the DER certificate the standby
	// agent presents on the authenticated channel; it binds the approval to
	// that agent identity, not only to a name.
	StandbyCertSHA256 string `json:"standby_cert_sha256"`
	// Pubkeys are the validator public keys that may move ("0x..." BLS keys,
	// or any other printable key form for other chains).
	Pubkeys []string `json:"pubkeys"`
	// Action is ActionMigrate or ActionFailback.
	Action string `json:"action"`
	// Issued is when the approval was made (not valid before Issued minus
	// MaxClockSkew). Encoded with one-second precision.
	Issued time.Time `json:"issued"`
	// Expires is when the approval stops being valid. Encoded with
	// one-second precision; Expires-Issued must not exceed MaxValidity.
	Expires time.Time `json:"expires"`
	// Nonce makes every approval unique; a Verifier accepts it once.
	Nonce string `json:"nonce"`
	// Approver is the principal (from allowed signers) of the person who
	// built the approval; it must be one of the principals whose signature
	// verifies. Co-approvers (threshold > 1) sign the same bytes.
	Approver string `json:"approver"`
}

// NewNonce returns 128 random bits, hex encoded.
func NewNonce() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("approval: nonce: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// NewApproval fills Issued (now), Expires (now + validity; DefaultValidity when
// validity is 0) and a fresh Nonce. The result is validated.
func NewApproval(incident, standby, standbyCertSHA256 string, pubkeys []string, action, approver string, now time.Time, validity time.Duration) (Approval, error) {
	if validity == 0 {
		validity = DefaultValidity
	}
	nonce, err := NewNonce()
	if err != nil {
		return Approval{}, err
	}
	now = now.UTC().Truncate(time.Second)
	a := Approval{
		Incident:          incident,
		Standby:           standby,
		StandbyCertSHA256: standbyCertSHA256,
		Pubkeys:           slices.Clone(pubkeys),
		Action:            action,
		Issued:            now,
		Expires:           now.Add(validity),
		Nonce:             nonce,
		Approver:          approver,
	}
	if err := a.Validate(); err != nil {
		return Approval{}, err
	}
	return a, nil
}

// normalized is an Approval in canonical form.
type normalized struct {
	Approval
}

// Validate reports whether a is well formed (every field present, in range,
// without whitespace or control characters, pubkeys unique, validity window
// at most MaxValidity). It does not look at the clock.
func (a Approval) Validate() error {
	_, err := a.normalize()
	return err
}

func malformed(format string, args ...any) error {
	return refuse(CodeMalformed, fmt.Sprintf(format, args...)+"; build a new approval with failoverd approve-migration")
}

func (a Approval) normalize() (normalized, error) {
	var n normalized
	if err := checkToken("incident", a.Incident, maxFieldLen); err != nil {
		return n, err
	}
	if err := checkToken("standby", a.Standby, maxFieldLen); err != nil {
		return n, err
	}
	cert, err := normalizeCertHash(a.StandbyCertSHA256)
	if err != nil {
		return n, err
	}
	if a.Action != ActionMigrate && a.Action != ActionFailback {
		return n, malformed("action %q is neither %q nor %q", a.Action, ActionMigrate, ActionFailback)
	}
	pks, err := normalizePubkeys(a.Pubkeys)
	if err != nil {
		return n, err
	}
	if a.Issued.IsZero() || a.Expires.IsZero() {
		return n, malformed("issued and expires are required")
	}
	issued := a.Issued.UTC().Truncate(time.Second)
	expires := a.Expires.UTC().Truncate(time.Second)
	if issued.Year() < 2000 || expires.Year() > 9999 {
		return n, malformed("issued/expires out of range")
	}
	if !expires.After(issued) {
		return n, malformed("expires (%s) is not after issued (%s)", expires.Format(timeLayout), issued.Format(timeLayout))
	}
	if expires.Sub(issued) > MaxValidity {
		return n, refuse(CodeTooLong, fmt.Sprintf("approval is valid for %s, more than the %s allowed; sign one with a shorter expiry", expires.Sub(issued), MaxValidity))
	}
	if len(a.Nonce) < minNonceLen || len(a.Nonce) > maxNonceLen {
		return n, malformed("nonce must be %d to %d characters, got %d", minNonceLen, maxNonceLen, len(a.Nonce))
	}
	if err := checkToken("nonce", a.Nonce, maxNonceLen); err != nil {
		return n, err
	}
	if err := checkToken("approver", a.Approver, maxFieldLen); err != nil {
		return n, err
	}
	n.Approval = Approval{
		Incident:          a.Incident,
		Standby:           a.Standby,
		StandbyCertSHA256: cert,
		Pubkeys:           pks,
		Action:            a.Action,
		Issued:            issued,
		Expires:           expires,
		Nonce:             a.Nonce,
		Approver:          a.Approver,
	}
	return n, nil
}

// checkToken requires 1..max visible ASCII characters (0x21-0x7e): no spaces,
// no newlines, no control or non-ASCII characters, so the line-based canonical
// encoding is unambiguous and what a person reads is what they sign.
func checkToken(name, s string, max int) error {
	if s == "" {
		return malformed("%s is empty", name)
	}
	if len(s) > max {
		return malformed("%s is longer than %d bytes", name, max)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return malformed("%s contains a space, control or non-ASCII character at byte %d", name, i)
		}
	}
	return nil
}

func normalizeCertHash(s string) (string, error) {
	h := strings.ToLower(s)
	if len(h) != 2*certHashBytes {
		return "", malformed("standby cert SHA-256 must be %d hex characters, got %d", 2*certHashBytes, len(s))
	}
	if _, err := hex.DecodeString(h); err != nil {
		return "", malformed("standby cert SHA-256 is not hex")
	}
	return h, nil
}

// NormalizePubkey is the canonical form of one validator public key: "0x"/"0X"
// prefixed hex is lowercased; anything else is kept as is.
func NormalizePubkey(p string) string {
	if len(p) > 2 && (p[:2] == "0x" || p[:2] == "0X") && isHex(p[2:]) {
		return "0x" + strings.ToLower(p[2:])
	}
	return p
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return s != ""
}

// normalizePubkeys returns the sorted, normalised set; duplicates are an error.
func normalizePubkeys(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, malformed("no validator public keys")
	}
	if len(in) > maxPubkeys {
		return nil, malformed("more than %d validator public keys", maxPubkeys)
	}
	out := make([]string, 0, len(in))
	for i, p := range in {
		if err := checkToken("pubkey #"+strconv.Itoa(i), p, maxPubkeyLen); err != nil {
			return nil, err
		}
		out = append(out, NormalizePubkey(p))
	}
	slices.Sort(out)
	for i := 1; i < len(out); i++ {
		if out[i] == out[i-1] {
			return nil, malformed("validator public key %s is listed twice", out[i])
		}
	}
	return out, nil
}

// Canonical returns the bytes that are signed: a versioned, line-based text
// encoding. The same approval (whatever the order of Pubkeys, the case of hex,
// the time zone or sub-second part of the times) always gives the same bytes:
//
//	failoverd-approval/v1
//	action migrate
//	incident <incident>
//	standby <standby>
//	standby-cert-sha256 <64 lowercase hex>
//	issued 2006-01-02T15:04:05Z
//	expires 2006-01-02T15:04:05Z
//	nonce <nonce>
//	approver <principal>
//	pubkeys <count>
//	pubkey <key>            (one line per key, sorted bytewise)
//
// Every line ends with "\n". It fails when the approval is not Valid.
func (a Approval) Canonical() ([]byte, error) {
	n, err := a.normalize()
	if err != nil {
		return nil, err
	}
	return n.encode(), nil
}

func (n normalized) encode() []byte {
	var b bytes.Buffer
	line := func(k, v string) {
		b.WriteString(k)
		b.WriteByte(' ')
		b.WriteString(v)
		b.WriteByte('\n')
	}
	b.WriteString(CanonicalVersion + "\n")
	line("action", n.Action)
	line("incident", n.Incident)
	line("standby", n.Standby)
	line("standby-cert-sha256", n.StandbyCertSHA256)
	line("issued", n.Issued.Format(timeLayout))
	line("expires", n.Expires.Format(timeLayout))
	line("nonce", n.Nonce)
	line("approver", n.Approver)
	line("pubkeys", strconv.Itoa(len(n.Pubkeys)))
	for _, p := range n.Pubkeys {
		line("pubkey", p)
	}
	return b.Bytes()
}

// ParseCanonical decodes bytes made by Canonical. It accepts only the exact
// canonical form (re-encoding must give the same bytes), so the bytes a person
// signed and the Approval the daemon checks cannot differ.
func ParseCanonical(b []byte) (Approval, error) {
	bad := func(why string) (Approval, error) {
		return Approval{}, malformed("not a canonical %s approval: %s", CanonicalVersion, why)
	}
	if len(b) > 2*maxPubkeys*(maxPubkeyLen+8)+4096 {
		return bad("too large")
	}
	if len(b) == 0 || b[len(b)-1] != '\n' {
		return bad("must end with a newline")
	}
	lines := strings.Split(string(b[:len(b)-1]), "\n")
	if lines[0] != CanonicalVersion {
		return bad("first line must be " + CanonicalVersion)
	}
	keys := []string{"action", "incident", "standby", "standby-cert-sha256", "issued", "expires", "nonce", "approver", "pubkeys"}
	if len(lines) < 1+len(keys) {
		return bad("missing fields")
	}
	vals := make(map[string]string, len(keys))
	for i, k := range keys {
		v, ok := strings.CutPrefix(lines[1+i], k+" ")
		if !ok {
			return bad("line " + strconv.Itoa(2+i) + " must be " + k)
		}
		vals[k] = v
	}
	count, err := strconv.Atoi(vals["pubkeys"])
	if err != nil || count < 1 || count > maxPubkeys || len(lines) != 1+len(keys)+count {
		return bad("pubkeys count does not match")
	}
	var a Approval
	for _, l := range lines[1+len(keys):] {
		v, ok := strings.CutPrefix(l, "pubkey ")
		if !ok {
			return bad("expected a pubkey line")
		}
		a.Pubkeys = append(a.Pubkeys, v)
	}
	if a.Issued, err = time.Parse(timeLayout, vals["issued"]); err != nil {
		return bad("issued: " + err.Error())
	}
	if a.Expires, err = time.Parse(timeLayout, vals["expires"]); err != nil {
		return bad("expires: " + err.Error())
	}
	a.Action, a.Incident, a.Standby = vals["action"], vals["incident"], vals["standby"]
	a.StandbyCertSHA256, a.Nonce, a.Approver = vals["standby-cert-sha256"], vals["nonce"], vals["approver"]
	again, err := a.Canonical()
	if err != nil {
		return Approval{}, err
	}
	if !bytes.Equal(again, b) {
		return bad("not in canonical form")
	}
	return a, nil
}
