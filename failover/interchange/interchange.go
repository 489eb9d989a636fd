// Package interchange reads, checks, merges and writes EIP-3076 slashing
// protection interchange data (format version 5), the record that must
// travel with validator keys when they move from one signer to another
// (DESIGN.md rule 5).
//
// The format, in short:
//
//	{
//	  "metadata": {
//	    "interchange_format_version": "5",
//	    "genesis_validators_root": "0x<32 bytes hex>"
//	  },
//	  "data": [{
//	    "pubkey": "0x<48 bytes hex>",
//	    "signed_blocks": [{"slot": "<decimal>", "signing_root": "0x<32 bytes hex>"}],
//	    "signed_attestations": [{"source_epoch": "<decimal>", "target_epoch": "<decimal>", "signing_root": "0x<32 bytes hex>"}]
//	  }]
//	}
//
// signing_root is optional in both lists. The Keymanager API carries the
// document as a JSON string (the slashing_protection field of DELETE and
// POST /eth/v1/keystores); unquote it first and hand the bytes to [Parse].
//
// # Parsing is strict
//
// [Parse] refuses anything it does not fully understand, naming the JSON path
// of the first problem ("data[3].signed_attestations[7].target_epoch: not a
// decimal number"): input over [MaxSize], invalid JSON or trailing data, a
// value of the wrong JSON type, a missing required field, an unknown field, a
// field repeated inside one object, a version other than "5", a root or
// signing root that is not "0x" and 32 bytes of hex, a pubkey that is not
// "0x" and 48 bytes of hex, a slot or epoch that is not an unsigned decimal
// string fitting in 64 bits (digits only: no sign, space, exponent or JSON
// number), and an attestation whose source_epoch is greater than its
// target_epoch. The checks on keys are syntactic: no BLS curve check is made.
//
// Two leniencies, both harmless to safety: hex digits may be upper case
// (they are normalised to lower case), and signed_blocks or
// signed_attestations may be null (some exporters write a Go nil slice so);
// null counts as an empty list. The fields themselves must be present.
//
// # Duplicate pubkeys are merged
//
// EIP-3076 does not forbid one pubkey appearing in several data entries, and
// its conformance suite (duplicate_pubkey_not_slashable) expects such a file
// to import as the union of the entries. Refusing would only stop a migration
// over a file every client accepts; dropping an entry would lose history. So
// Parse merges duplicate entries into one record holding every block and
// attestation of each.
//
// # Canonical form
//
// What Parse returns is canonical: hex in lower case, one record per pubkey,
// records sorted by pubkey, blocks sorted by slot and attestations by
// target then source epoch (then signing root), exact repeats removed, and
// lists never nil. [Interchange.Marshal] writes that form as compact JSON,
// so Parse(Marshal(Parse(x))) equals Parse(x) and Marshal is byte-stable.
//
// # Merging for a migration
//
// [Merge] reduces any number of interchanges for one network to the
// EIP-3076 "minimal" form: per pubkey one block at the highest slot and one
// attestation with the highest source and highest target epochs seen in any
// part, without signing roots (an entry without a signing root makes a
// signer refuse anything at that slot or epoch, the conservative reading).
// [Watermark] makes an interchange that claims every key signed a block at
// the current slot and an attestation at the current epoch; merged in, it
// keeps the new signer from signing anything at or below "now" even when the
// records from the old signer are incomplete.
package interchange

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

const (
	// Version is the only interchange_format_version this package reads
	// or writes.
	Version = "5"
	// MaxSize bounds the size in bytes of a document Parse or Read
	// accepts and Marshal writes.
	MaxSize = 64 << 20
	// PubkeyLen is the length in bytes of a BLS public key.
	PubkeyLen = 48
	// RootLen is the length in bytes of genesis_validators_root and of a
	// signing_root.
	RootLen = 32
)

// ErrTooLarge is returned for a document larger than MaxSize.
var ErrTooLarge = errors.New("interchange: document larger than 64 MiB")

// ErrRootMismatch is returned (wrapped) when a genesis_validators_root
// differs from the one expected: the data belongs to another network.
var ErrRootMismatch = errors.New("interchange: genesis_validators_root does not match")

// Interchange is an EIP-3076 interchange document. Values returned by this
// package are in canonical form (see the package documentation); one built
// by hand is checked and normalised by Marshal, Validate and Merge.
type Interchange struct {
	Metadata Metadata
	Data     []Record
}

// Metadata is the document's metadata object.
type Metadata struct {
	// InterchangeFormatVersion is always Version ("5").
	InterchangeFormatVersion string
	// GenesisValidatorsRoot identifies the network: "0x" and 32 bytes of
	// hex.
	GenesisValidatorsRoot string
}

// Record is the signing history of one validator key.
type Record struct {
	// Pubkey is "0x" and 48 bytes of hex.
	Pubkey             string
	SignedBlocks       []SignedBlock
	SignedAttestations []SignedAttestation
}

// SignedBlock is a block proposal the key signed.
type SignedBlock struct {
	Slot uint64
	// SigningRoot is "" when absent, else "0x" and 32 bytes of hex.
	SigningRoot string
}

// SignedAttestation is an attestation the key signed.
type SignedAttestation struct {
	SourceEpoch uint64
	TargetEpoch uint64
	// SigningRoot is "" when absent, else "0x" and 32 bytes of hex.
	SigningRoot string
}

// Error is a problem with one place in a document. Path is a JSON path such
// as "data[3].signed_attestations[7].target_epoch", or "" for the document
// as a whole.
type Error struct {
	Path string
	Msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "interchange: " + e.Msg
	}
	return "interchange: " + e.Path + ": " + e.Msg
}

func pathErr(path, format string, args ...any) error {
	return &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
}

// Parse reads an interchange document strictly and returns it in canonical
// form. Errors are *Error (naming the JSON path), or ErrTooLarge.
func Parse(data []byte) (*Interchange, error) {
	if len(data) > MaxSize {
		return nil, ErrTooLarge
	}
	raw, err := decode(data)
	if err != nil {
		return nil, err
	}
	if err := raw.check(); err != nil {
		return nil, err
	}
	return raw.normalize(), nil
}

// Read reads at most MaxSize bytes from r and parses them; a longer input is
// ErrTooLarge.
func Read(r io.Reader) (*Interchange, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("interchange: read: %w", err)
	}
	return Parse(data)
}

// Marshal checks the document as Parse would and writes it in canonical
// form as compact JSON. It does not modify i.
func (i *Interchange) Marshal() ([]byte, error) {
	if i == nil {
		return nil, pathErr("", "nil interchange")
	}
	if err := i.check(); err != nil {
		return nil, err
	}
	n := i.normalize()
	w := wireFile{
		Metadata: wireMetadata{
			InterchangeFormatVersion: n.Metadata.InterchangeFormatVersion,
			GenesisValidatorsRoot:    n.Metadata.GenesisValidatorsRoot,
		},
		Data: make([]wireRecord, len(n.Data)),
	}
	for k, r := range n.Data {
		wr := wireRecord{
			Pubkey:             r.Pubkey,
			SignedBlocks:       make([]wireBlock, len(r.SignedBlocks)),
			SignedAttestations: make([]wireAttestation, len(r.SignedAttestations)),
		}
		for j, b := range r.SignedBlocks {
			wr.SignedBlocks[j] = wireBlock{Slot: strconv.FormatUint(b.Slot, 10), SigningRoot: b.SigningRoot}
		}
		for j, a := range r.SignedAttestations {
			wr.SignedAttestations[j] = wireAttestation{
				SourceEpoch: strconv.FormatUint(a.SourceEpoch, 10),
				TargetEpoch: strconv.FormatUint(a.TargetEpoch, 10),
				SigningRoot: a.SigningRoot,
			}
		}
		w.Data[k] = wr
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(w); err != nil {
		return nil, fmt.Errorf("interchange: marshal: %w", err)
	}
	out := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(out) > MaxSize {
		return nil, ErrTooLarge
	}
	return out, nil
}

// MarshalJSON makes encoding/json write the canonical EIP-3076 form.
func (i Interchange) MarshalJSON() ([]byte, error) { return i.Marshal() }

// UnmarshalJSON makes encoding/json read through Parse.
func (i *Interchange) UnmarshalJSON(data []byte) error {
	p, err := Parse(data)
	if err != nil {
		return err
	}
	*i = *p
	return nil
}

type wireFile struct {
	Metadata wireMetadata `json:"metadata"`
	Data     []wireRecord `json:"data"`
}

type wireMetadata struct {
	InterchangeFormatVersion string `json:"interchange_format_version"`
	GenesisValidatorsRoot    string `json:"genesis_validators_root"`
}

type wireRecord struct {
	Pubkey             string            `json:"pubkey"`
	SignedBlocks       []wireBlock       `json:"signed_blocks"`
	SignedAttestations []wireAttestation `json:"signed_attestations"`
}

type wireBlock struct {
	Slot        string `json:"slot"`
	SigningRoot string `json:"signing_root,omitempty"`
}

type wireAttestation struct {
	SourceEpoch string `json:"source_epoch"`
	TargetEpoch string `json:"target_epoch"`
	SigningRoot string `json:"signing_root,omitempty"`
}

// check reports the first semantic problem, with paths that index i as it
// is (before normalisation).
func (i *Interchange) check() error {
	if v := i.Metadata.InterchangeFormatVersion; v != Version {
		return pathErr("metadata.interchange_format_version", "unsupported version %q (want %q)", v, Version)
	}
	if _, err := NormalizeRoot(i.Metadata.GenesisValidatorsRoot); err != nil {
		return withPrefix("metadata.genesis_validators_root", err)
	}
	for k, r := range i.Data {
		p := fmt.Sprintf("data[%d]", k)
		if _, err := NormalizePubkey(r.Pubkey); err != nil {
			return withPrefix(p+".pubkey", err)
		}
		for j, b := range r.SignedBlocks {
			if b.SigningRoot != "" {
				if _, err := NormalizeRoot(b.SigningRoot); err != nil {
					return withPrefix(fmt.Sprintf("%s.signed_blocks[%d].signing_root", p, j), err)
				}
			}
		}
		for j, a := range r.SignedAttestations {
			ap := fmt.Sprintf("%s.signed_attestations[%d]", p, j)
			if a.SourceEpoch > a.TargetEpoch {
				return pathErr(ap, "source_epoch %d is greater than target_epoch %d", a.SourceEpoch, a.TargetEpoch)
			}
			if a.SigningRoot != "" {
				if _, err := NormalizeRoot(a.SigningRoot); err != nil {
					return withPrefix(ap+".signing_root", err)
				}
			}
		}
	}
	return nil
}

// normalize returns the canonical form of a checked document as a new
// value sharing nothing with i.
func (i *Interchange) normalize() *Interchange {
	out := &Interchange{Metadata: Metadata{
		InterchangeFormatVersion: i.Metadata.InterchangeFormatVersion,
		GenesisValidatorsRoot:    strings.ToLower(i.Metadata.GenesisValidatorsRoot),
	}}
	byKey := make(map[string]int, len(i.Data))
	out.Data = make([]Record, 0, len(i.Data))
	for _, r := range i.Data {
		key := strings.ToLower(r.Pubkey)
		k, ok := byKey[key]
		if !ok {
			k = len(out.Data)
			byKey[key] = k
			out.Data = append(out.Data, Record{
				Pubkey:             key,
				SignedBlocks:       []SignedBlock{},
				SignedAttestations: []SignedAttestation{},
			})
		}
		rec := &out.Data[k]
		for _, b := range r.SignedBlocks {
			b.SigningRoot = strings.ToLower(b.SigningRoot)
			rec.SignedBlocks = append(rec.SignedBlocks, b)
		}
		for _, a := range r.SignedAttestations {
			a.SigningRoot = strings.ToLower(a.SigningRoot)
			rec.SignedAttestations = append(rec.SignedAttestations, a)
		}
	}
	slices.SortFunc(out.Data, func(a, b Record) int { return strings.Compare(a.Pubkey, b.Pubkey) })
	for k := range out.Data {
		rec := &out.Data[k]
		slices.SortFunc(rec.SignedBlocks, func(a, b SignedBlock) int {
			return cmp.Or(cmp.Compare(a.Slot, b.Slot), strings.Compare(a.SigningRoot, b.SigningRoot))
		})
		rec.SignedBlocks = slices.Compact(rec.SignedBlocks)
		slices.SortFunc(rec.SignedAttestations, func(a, b SignedAttestation) int {
			return cmp.Or(cmp.Compare(a.TargetEpoch, b.TargetEpoch), cmp.Compare(a.SourceEpoch, b.SourceEpoch),
				strings.Compare(a.SigningRoot, b.SigningRoot))
		})
		rec.SignedAttestations = slices.Compact(rec.SignedAttestations)
	}
	return out
}

// NormalizePubkey checks that s is "0x" followed by 48 bytes of hex (either
// case) and returns it in lower case. Errors are *Error with an empty path.
func NormalizePubkey(s string) (string, error) { return normHex(s, PubkeyLen) }

// NormalizeRoot checks that s is "0x" followed by 32 bytes of hex (either
// case) and returns it in lower case. Errors are *Error with an empty path.
func NormalizeRoot(s string) (string, error) { return normHex(s, RootLen) }

func normHex(s string, n int) (string, error) {
	bad := func() error {
		return pathErr("", "not a 0x-prefixed %d-byte hex string: %s", n, quoteShort(s))
	}
	if len(s) != 2+2*n || !strings.HasPrefix(s, "0x") {
		return "", bad()
	}
	for _, c := range []byte(s[2:]) {
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return "", bad()
		}
	}
	return strings.ToLower(s), nil
}

// quoteShort quotes s for an error message, cut to a readable length.
func quoteShort(s string) string {
	const limit = 120
	if len(s) > limit {
		return strconv.Quote(s[:limit]) + "..."
	}
	return strconv.Quote(s)
}
