// Package grant is failoverd's countersignature on an accepted approval.
//
// A person's approval (failover/approval) says "move these keys"; it does not
// say that failoverd checked the preconditions (home fenced, chain silent)
// and moved the signing right in its store. The grant does: failoverd signs
// it with its CA key only after the ownership compare-and-swap succeeded.
// The standby agent trusts that CA already (it is in its bootstrap), so it
// can check a grant without asking anybody, and refuses a key import that
// carries a valid approval but no grant (a replayed approval, or one whose
// preconditions failed) or a grant for an older generation.
package grant

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/pki"
)

// Grant is what failoverd signs.
type Grant struct {
	Validator string `json:"validator"`
	Incident  string `json:"incident"`
	// Standby is the standby the grant is for (the one that imports the
	// keys, or the one that gives them up on a failback).
	Standby string `json:"standby"`
	// Action is approval.ActionMigrate or approval.ActionFailback.
	Action string `json:"action"`
	// Owner is who owns the signing right once the move is done.
	Owner string `json:"owner"`
	// Generation is the ownership generation the grant establishes; an
	// agent never honours a generation at or below one it has seen.
	Generation int64    `json:"generation"`
	Pubkeys    []string `json:"pubkeys"`
	// ApprovalSHA256 is the SHA-256 (hex) of the approval's canonical bytes.
	ApprovalSHA256 string    `json:"approvalSHA256"`
	Expires        time.Time `json:"expires"`
}

// Signed is a grant as it travels: the exact bytes signed and the signature.
type Signed struct {
	Payload   []byte `json:"payload"`
	Signature []byte `json:"signature"`
}

// Signer signs grant bytes: *pki.Authority, whose CA the agents trust.
type Signer interface {
	SignGrant(msg []byte) []byte
}

// Sign encodes and signs g (pubkeys normalised and sorted).
func Sign(g Grant, a Signer) (Signed, error) {
	if err := g.check(); err != nil {
		return Signed{}, err
	}
	g.Pubkeys = normalize(g.Pubkeys)
	g.Expires = g.Expires.UTC().Truncate(time.Second)
	b, err := json.Marshal(g)
	if err != nil {
		return Signed{}, fmt.Errorf("grant: encode: %w", err)
	}
	return Signed{Payload: b, Signature: a.SignGrant(b)}, nil
}

// Verify checks the signature against the CA certificate and returns the
// grant if it is well formed and not expired at now.
func Verify(s Signed, caPEM []byte, now time.Time) (Grant, error) {
	if err := pki.VerifyGrant(caPEM, s.Payload, s.Signature); err != nil {
		return Grant{}, fmt.Errorf("grant: %w", err)
	}
	var g Grant
	dec := json.NewDecoder(bytes.NewReader(s.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return Grant{}, fmt.Errorf("grant: decode: %w", err)
	}
	if err := g.check(); err != nil {
		return Grant{}, err
	}
	if !now.Before(g.Expires) {
		return Grant{}, fmt.Errorf("grant: expired at %s", g.Expires.Format(time.RFC3339))
	}
	return g, nil
}

// Covers reports whether the grant names exactly this set of keys.
func (g Grant) Covers(pubkeys []string) bool {
	return slices.Equal(normalize(g.Pubkeys), normalize(pubkeys))
}

func (g Grant) check() error {
	switch {
	case g.Validator == "" || g.Incident == "" || g.Standby == "" || g.Owner == "":
		return errors.New("grant: validator, incident, standby and owner are required")
	case g.Action != approval.ActionMigrate && g.Action != approval.ActionFailback:
		return fmt.Errorf("grant: unknown action %q", g.Action)
	case g.Generation <= 0:
		return errors.New("grant: generation must be positive")
	case len(g.Pubkeys) == 0:
		return errors.New("grant: no public keys")
	case len(g.ApprovalSHA256) != 64:
		return errors.New("grant: approvalSHA256 must be 64 hex digits")
	case g.Expires.IsZero():
		return errors.New("grant: no expiry")
	}
	return nil
}

func normalize(keys []string) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = approval.NormalizePubkey(k)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
