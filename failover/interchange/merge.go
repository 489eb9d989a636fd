package interchange

import (
	"fmt"
	"slices"
	"strings"
)

// Highest is the summary of one key's signing history that slashing
// protection by maximum needs.
type Highest struct {
	// HasBlock reports whether any block was signed; Slot is then the
	// highest slot.
	HasBlock bool
	Slot     uint64
	// HasAttestation reports whether any attestation was signed; Source
	// and Target are then the highest source and the highest target epoch
	// (not necessarily of the same attestation).
	HasAttestation bool
	Source         uint64
	Target         uint64
}

func (h *Highest) add(r Record) {
	for _, b := range r.SignedBlocks {
		if !h.HasBlock || b.Slot > h.Slot {
			h.Slot = b.Slot
		}
		h.HasBlock = true
	}
	for _, a := range r.SignedAttestations {
		if !h.HasAttestation || a.SourceEpoch > h.Source {
			h.Source = a.SourceEpoch
		}
		if !h.HasAttestation || a.TargetEpoch > h.Target {
			h.Target = a.TargetEpoch
		}
		h.HasAttestation = true
	}
}

func (h *Highest) merge(o Highest) {
	if o.HasBlock {
		h.add(Record{SignedBlocks: []SignedBlock{{Slot: o.Slot}}})
	}
	if o.HasAttestation {
		h.add(Record{SignedAttestations: []SignedAttestation{{SourceEpoch: o.Source, TargetEpoch: o.Target}}})
	}
}

// Highest returns, per pubkey (lower-case hex), the highest signed slot and
// the highest source and target epochs. Every key in the document is in the
// map, also one with no blocks and no attestations.
func (i *Interchange) Highest() map[string]Highest {
	out := make(map[string]Highest, len(i.Data))
	for _, r := range i.Data {
		key := strings.ToLower(r.Pubkey)
		h := out[key]
		h.add(r)
		out[key] = h
	}
	return out
}

// Merge combines interchanges for one network by maximum and returns the
// EIP-3076 "minimal" form: for every pubkey found in any part, one block at
// the highest slot of any part (none if no part has a block for the key) and
// one attestation with the highest source epoch and the highest target
// epoch of any part (none if no part has one), without signing roots. A
// signer that imports it refuses every block at or below that slot and
// every attestation with a lower source or a target at or below that target,
// so it can sign nothing that conflicts with anything in any part.
//
// Every part must be a valid document (as Parse would accept) whose
// genesis_validators_root equals root; a mismatch wraps ErrRootMismatch. No
// parts gives a valid document with no keys.
func Merge(root string, parts ...*Interchange) (*Interchange, error) {
	nroot, err := NormalizeRoot(root)
	if err != nil {
		return nil, withPrefix("root", err)
	}
	acc := map[string]Highest{}
	for k, p := range parts {
		if p == nil {
			return nil, pathErr(fmt.Sprintf("parts[%d]", k), "nil interchange")
		}
		if err := p.check(); err != nil {
			return nil, withPrefix(fmt.Sprintf("parts[%d]", k), err)
		}
		if got := strings.ToLower(p.Metadata.GenesisValidatorsRoot); got != nroot {
			return nil, fmt.Errorf("%w: parts[%d] is for %s, want %s", ErrRootMismatch, k, got, nroot)
		}
		for key, h := range p.Highest() {
			a := acc[key]
			a.merge(h)
			acc[key] = a
		}
	}
	return minimal(nroot, acc), nil
}

// minimal builds the canonical minimal-form document from per-key maxima.
func minimal(root string, acc map[string]Highest) *Interchange {
	out := &Interchange{
		Metadata: Metadata{InterchangeFormatVersion: Version, GenesisValidatorsRoot: root},
		Data:     make([]Record, 0, len(acc)),
	}
	for key, h := range acc {
		r := Record{Pubkey: key, SignedBlocks: []SignedBlock{}, SignedAttestations: []SignedAttestation{}}
		if h.HasBlock {
			r.SignedBlocks = append(r.SignedBlocks, SignedBlock{Slot: h.Slot})
		}
		if h.HasAttestation {
			r.SignedAttestations = append(r.SignedAttestations, SignedAttestation{SourceEpoch: h.Source, TargetEpoch: h.Target})
		}
		out.Data = append(out.Data, r)
	}
	slices.SortFunc(out.Data, func(a, b Record) int { return strings.Compare(a.Pubkey, b.Pubkey) })
	return out
}

// Watermark returns the chain-clock watermark for pubkeys on the network
// root: for every key, a block at slot and an attestation with source and
// target both at epoch, where slot and epoch are the current ones from the
// chain clock. Merged with the old signer's records, it makes the new
// signer refuse to propose at or below the current slot and to attest with
// a target at or below the current epoch or a source below it, even where
// those records are incomplete.
//
// The source at the current epoch is deliberately conservative: the old
// signer may have used any justified source up to now, and a lower source
// could surround it. The price is liveness, not safety: the new signer
// attests again once the chain justifies the watermark epoch, normally one
// to two epochs later.
//
// Repeated pubkeys are taken once; a malformed root or pubkey is an error.
func Watermark(root string, pubkeys []string, epoch, slot uint64) (*Interchange, error) {
	nroot, err := NormalizeRoot(root)
	if err != nil {
		return nil, withPrefix("root", err)
	}
	acc := make(map[string]Highest, len(pubkeys))
	for k, pk := range pubkeys {
		key, err := NormalizePubkey(pk)
		if err != nil {
			return nil, withPrefix(fmt.Sprintf("pubkeys[%d]", k), err)
		}
		acc[key] = Highest{HasBlock: true, Slot: slot, HasAttestation: true, Source: epoch, Target: epoch}
	}
	return minimal(nroot, acc), nil
}

// MissingKeysError lists the pubkeys a document has no record for.
type MissingKeysError struct {
	// Pubkeys are the missing keys, lower-case, in the order asked for.
	Pubkeys []string
}

func (e *MissingKeysError) Error() string {
	return fmt.Sprintf("interchange: no slashing protection record for %d key(s): %s",
		len(e.Pubkeys), strings.Join(e.Pubkeys, ", "))
}

// Validate checks that the document is well formed (as Parse would
// require, version "5" included), that its genesis_validators_root equals
// root (else an error wrapping ErrRootMismatch), and that it has a record
// for every one of pubkeys, the keys about to be imported (else a
// *MissingKeysError naming all the missing ones). Records for other keys
// are allowed. Hex case does not matter.
func (i *Interchange) Validate(root string, pubkeys []string) error {
	if i == nil {
		return pathErr("", "nil interchange")
	}
	nroot, err := NormalizeRoot(root)
	if err != nil {
		return withPrefix("root", err)
	}
	if err := i.check(); err != nil {
		return err
	}
	if got := strings.ToLower(i.Metadata.GenesisValidatorsRoot); got != nroot {
		return fmt.Errorf("%w: the data is for %s, the network is %s", ErrRootMismatch, got, nroot)
	}
	have := make(map[string]bool, len(i.Data))
	for _, r := range i.Data {
		have[strings.ToLower(r.Pubkey)] = true
	}
	var missing []string
	for k, pk := range pubkeys {
		key, err := NormalizePubkey(pk)
		if err != nil {
			return withPrefix(fmt.Sprintf("pubkeys[%d]", k), err)
		}
		if !have[key] {
			missing = append(missing, key)
			have[key] = true // list each once
		}
	}
	if len(missing) > 0 {
		return &MissingKeysError{Pubkeys: missing}
	}
	return nil
}

// withPrefix puts prefix in front of the path of an *Error: the arguments
// of this package's functions are named like JSON paths too ("root",
// "pubkeys[2]", "parts[1].data[0].pubkey").
func withPrefix(prefix string, err error) error {
	e := err.(*Error)
	p := prefix
	if e.Path != "" {
		if strings.HasPrefix(e.Path, "[") {
			p += e.Path
		} else {
			p += "." + e.Path
		}
	}
	return &Error{Path: p, Msg: e.Msg}
}
