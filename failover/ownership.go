package failover

import "time"

// OwnerHome is the owner of a validator's signing right when it is at home.
const OwnerHome = "home"

// OwnerNobody is what the gate hears while an accepted move has not yet
// moved the signing right (or failoverd cannot tell): no signer may start.
const OwnerNobody = "nobody (a key move is in flight)"

// Ownership says who may sign for a validator (DESIGN.md rule 3): home, or
// one standby. Generation only grows; only an accepted approval changes the
// owner, and every change bumps it, so any component that starts a signer
// can tell a current answer from a stale one.
//
// The zero value is home at generation 0: a validator failoverd has never
// moved is signed for at home.
type Ownership struct {
	// Owner is OwnerHome or a standby's name ("" reads as OwnerHome).
	Owner      string `json:"owner,omitempty"`
	Generation int64  `json:"generation,omitempty"`
	// Incident is the incident whose approval made the last change.
	Incident  string    `json:"incident,omitempty"`
	ChangedAt time.Time `json:"changedAt,omitzero"`
	// ChangedBy are the approvers of the last change.
	ChangedBy []string `json:"changedBy,omitempty"`
	// Pubkeys are the keys the standby owner holds (empty at home): no other
	// validator's migration may name one of them.
	Pubkeys []string `json:"pubkeys,omitempty"`
}

// Current returns the owner's name, OwnerHome for the zero value.
func (o Ownership) Current() string {
	if o.Owner == "" {
		return OwnerHome
	}
	return o.Owner
}

// AtHome reports whether home owns the signing right.
func (o Ownership) AtHome() bool { return o.Current() == OwnerHome }

// Migration is one key move of an incident: to the standby (ActionMigrate)
// or back home (ActionFailback). It records who approved, when and from
// where, how the old signer was fenced and what the chain showed; it never
// holds a keystore or a password (DESIGN.md rule 2).
type Migration struct {
	// Action is "migrate" or "failback".
	Action string `json:"action"`
	// From and To are owners: OwnerHome or the standby's name.
	From string `json:"from"`
	To   string `json:"to"`
	// Generation is the ownership generation this move establishes.
	Generation int64    `json:"generation"`
	Pubkeys    []string `json:"pubkeys"`
	// Approvers are the people whose signatures counted.
	Approvers      []ApproverRecord `json:"approvers"`
	ApprovalSHA256 string           `json:"approvalSHA256"`
	Nonce          string           `json:"nonce"`
	Expires        time.Time        `json:"expires"`
	// Fencing says how the old signer was proven stopped.
	Fencing string `json:"fencing"`
	// Silence says what the chain showed (epochs, beacon nodes).
	Silence string `json:"silence,omitempty"`
	// KeyStatuses are the per-key answers of the import (migrate) or of the
	// standby's delete (failback), as the standby reported them.
	KeyStatuses map[string]string `json:"keyStatuses,omitempty"`
	// SlashingProtection is the EIP-3076 interchange the standby's delete
	// returned (failback): public data that the home import needs.
	SlashingProtection string `json:"slashingProtection,omitempty"`
	// PrivValidatorState is, on Berachain, the standby beacond's last
	// signing state (its delete's answer at failback): public, and what
	// home must start from, raised past Chain.Height.
	PrivValidatorState string `json:"privValidatorState,omitempty"`
	// Chain is where the chain clock stood when silence was proven: the
	// watermark below which the next signer's slashing protection forbids
	// signing.
	Chain      *ChainPoint `json:"chain,omitempty"`
	AcceptedAt time.Time   `json:"acceptedAt"`
	// DoneAt is when the move completed (keys imported, or home owns again).
	DoneAt *time.Time `json:"doneAt,omitempty"`
}

// ApproverRecord is one person whose signature counted, and where the
// approval came from.
type ApproverRecord struct {
	Principal   string `json:"principal"`
	Fingerprint string `json:"fingerprint"`
	// From is the remote address the approval was submitted from.
	From string    `json:"from,omitempty"`
	At   time.Time `json:"at"`
}

// CurrentMigration returns the incident's latest key move, if any.
func (inc Incident) CurrentMigration() (Migration, bool) {
	if len(inc.Migrations) == 0 {
		return Migration{}, false
	}
	return inc.Migrations[len(inc.Migrations)-1], true
}

// KeysMoved reports whether this incident ever moved the signing right away
// from home: from then on only a failback (or a person with the failback
// runbook) may end it.
func (inc Incident) KeysMoved() bool {
	for _, m := range inc.Migrations {
		if m.Action == "migrate" {
			return true
		}
	}
	return false
}

// ChainPoint is a network and a position of its clock: epoch and slot on
// Ethereum, the committed height on a CometBFT chain (Berachain).
type ChainPoint struct {
	GenesisValidatorsRoot string `json:"genesisValidatorsRoot,omitempty"`
	Epoch                 uint64 `json:"epoch,omitempty"`
	Slot                  uint64 `json:"slot,omitempty"`
	ChainID               string `json:"chainID,omitempty"`
	Height                int64  `json:"height,omitempty"`
}
