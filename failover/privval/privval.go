// Package privval reads, checks and writes the two files a CometBFT
// validator signs with — Berachain's beacond among them:
// priv_validator_key.json (the consensus key) and priv_validator_state.json
// (the last height/round/step it signed, CometBFT's own double-sign guard).
//
// A Berachain key move carries both files from the approver's machine to
// the standby. This package lets the CLI and the standby agent check them
// first: the key is a known type, its private key really is the key its
// public key and address claim (CometBFT re-derives both from the private
// key when it loads the file), and the public key, as "0x"+hex, can be
// compared with fleet[].pubkeys. The state is raised to at least the
// chain's current height (Raise, Synthesize) so that the new signer cannot
// sign any height the old one might have signed.
//
// A Key never prints, logs or marshals its private key: fmt verbs, slog and
// encoding/json see only the public parts, and no error quotes it. Only
// File returns it, as the bytes to write for beacond.
package privval

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Size limits. A real key file is under 400 bytes, a state file under 1 KiB.
const (
	MaxKeyFileSize   = 16 << 10
	MaxStateFileSize = 64 << 10
)

// Sentinel errors, checked with errors.Is; every Parse error wraps one.
var (
	// ErrInvalid: the file does not have the shape CometBFT writes, or its
	// parts do not agree with each other.
	ErrInvalid = errors.New("privval: invalid file")
	// ErrTooLarge: the file is over the size limit.
	ErrTooLarge = errors.New("privval: file too large")
)

// KeyType is the signature algorithm of a consensus key.
type KeyType string

// The key types CometBFT validators use. Berachain's beacond signs with
// BLS12-381; Ed25519 is CometBFT's default and is recognized so that a
// plain CometBFT key is named rather than refused as unknown.
const (
	BLS12381 KeyType = "bls12_381"
	Ed25519  KeyType = "ed25519"
)

// Amino type names as they appear in the "type" fields.
const (
	// BLSPubKeyName / BLSPrivKeyName are what beacond writes today
	// (berachain/cometbft crypto/bls12381).
	BLSPubKeyName  = "cometbft/PubKeyBls12_381"
	BLSPrivKeyName = "cometbft/PrivKeyBls12_381"
	// Earlier beacon-kit releases spelled BLS in capitals and wrote the
	// public key compressed (48 bytes).
	blsPubKeyNameOld   = "cometbft/PubKeyBLS12_381"
	blsPrivKeyNameOld  = "cometbft/PrivKeyBLS12_381"
	Ed25519PubKeyName  = "tendermint/PubKeyEd25519"
	Ed25519PrivKeyName = "tendermint/PrivKeyEd25519"
)

type typeName struct {
	typ     KeyType
	private bool
}

var typeNames = map[string]typeName{
	BLSPubKeyName:      {BLS12381, false},
	blsPubKeyNameOld:   {BLS12381, false},
	BLSPrivKeyName:     {BLS12381, true},
	blsPrivKeyNameOld:  {BLS12381, true},
	Ed25519PubKeyName:  {Ed25519, false},
	Ed25519PrivKeyName: {Ed25519, true},
}

// AddressSize is a CometBFT address: the first 20 bytes of SHA-256 of the
// public key's bytes.
const AddressSize = 20

// Key is a checked priv_validator_key.json.
type Key struct {
	Type KeyType
	// Pubkey is "0x" + lowercase hex: for BLS12-381 the 48-byte compressed
	// key (the form of the deposit contract and of fleet[].pubkeys), for
	// Ed25519 the 32-byte key.
	Pubkey string
	// Address is the file's address, 40 uppercase hex digits. It is one of
	// Addresses.
	Address string

	pubName, privName string
	pubBytes          []byte // as written in the file
	// priv returns the private key. A closure, because fmt prints a func
	// as its address whatever the verb and however deep: a Key in an
	// unexported field of another struct is printed by reflection, past
	// Key's own Format, and a []byte or a pointer to one would show
	// (a bad verb such as %s even dereferences pointers).
	priv func() []byte
}

func hold(b []byte) func() []byte {
	c := bytes.Clone(b)
	return func() []byte { return bytes.Clone(c) }
}

// Addresses are every address CometBFT may give this key: the SHA-256 of
// the public key's bytes, truncated to 20 bytes, where beacond releases
// differ on the bytes (newer ones hash the 96-byte uncompressed BLS key,
// older ones the 48-byte compressed one). The file's own address comes
// first. Look for all of them in commit signatures.
func (k Key) Addresses() []string {
	if len(k.pubBytes) == 0 {
		return nil
	}
	out := []string{k.Address}
	for _, a := range addressesOf(k.Type, k.pubBytes) {
		if a != k.Address {
			out = append(out, a)
		}
	}
	return out
}

// File is priv_validator_key.json as beacond reads it, rebuilt from what
// was checked (so the standby loads exactly the key that was checked, with
// the type names and public-key encoding the file had: the standby must run
// the beacond release the home node runs, which the bootstrap mirrors). It
// contains the private key: write it with mode 0600 and nowhere else.
func (k Key) File() []byte {
	if k.priv == nil {
		return nil
	}
	type tv struct {
		Type  string `json:"type"`
		Value string `json:"value"`
	}
	b, err := json.MarshalIndent(struct {
		Address string `json:"address"`
		PubKey  tv     `json:"pub_key"`
		PrivKey tv     `json:"priv_key"`
	}{
		Address: k.Address,
		PubKey:  tv{k.pubName, base64.StdEncoding.EncodeToString(k.pubBytes)},
		PrivKey: tv{k.privName, base64.StdEncoding.EncodeToString(k.priv())},
	}, "", "  ")
	if err != nil {
		return nil
	}
	return b
}

// String names the key by its public parts.
func (k Key) String() string {
	return fmt.Sprintf("privval.Key{%s %s address %s}", k.Type, k.Pubkey, k.Address)
}

// GoString is String: %#v must not reach the private key either.
func (k Key) GoString() string { return k.String() }

// Format makes every fmt verb print String.
func (k Key) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", k.String())
		return
	}
	io.WriteString(f, k.String())
}

// LogValue gives slog the public parts only.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(slog.String("type", string(k.Type)), slog.String("pubkey", k.Pubkey), slog.String("address", k.Address))
}

// MarshalJSON gives the public parts only.
func (k Key) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Type    KeyType `json:"type"`
		Pubkey  string  `json:"pubkey"`
		Address string  `json:"address"`
	}{k.Type, k.Pubkey, k.Address})
}

// ParseKey reads and checks a priv_validator_key.json: known key type,
// public and private key of the right length, the private key derives the
// public key, and the address is that key's. Errors never quote the
// private key.
func ParseKey(b []byte) (Key, error) {
	if len(b) > MaxKeyFileSize {
		return Key{}, fmt.Errorf("%w: priv_validator_key.json: %d bytes, more than %d", ErrTooLarge, len(b), MaxKeyFileSize)
	}
	top, err := object(b, "priv_validator_key.json")
	if err != nil {
		return Key{}, err
	}
	addr, err := str(top, "address", "priv_validator_key.json")
	if err != nil {
		return Key{}, err
	}
	pubName, pub, err := typedValue(top, "pub_key", false)
	if err != nil {
		return Key{}, err
	}
	privName, priv, err := typedValue(top, "priv_key", true)
	if err != nil {
		return Key{}, err
	}
	pt, pk := typeNames[pubName], typeNames[privName]
	if pt.typ != pk.typ {
		return Key{}, invalid("pub_key is %s but priv_key is %s: the two halves are of different algorithms", pt.typ, pk.typ)
	}
	k, err := newKey(pt.typ, pubName, privName, pub, priv)
	if err != nil {
		return Key{}, err
	}
	want := strings.ToUpper(addr)
	if len(want) != 2*AddressSize || !isHex(want) {
		return Key{}, invalid("address %q is not %d bytes of hex", short(addr), AddressSize)
	}
	matched := false
	for _, a := range addressesOf(k.Type, pub) {
		matched = matched || a == want
	}
	if !matched {
		return Key{}, invalid("address %s is not the address of this key (%s): the file was put together from different keys",
			want, strings.Join(addressesOf(k.Type, pub), " or "))
	}
	k.Address = want
	return k, nil
}

// NewKey builds the key file for a private key: for BLS12-381 a 32-byte
// big-endian scalar, written the way beacond writes it today (uncompressed
// public key); for Ed25519 a 32-byte seed. For test fixtures and tools;
// failoverd never creates validator keys.
func NewKey(t KeyType, priv []byte) (Key, error) {
	switch t {
	case BLS12381:
		p, err := blsPublicFromPrivate(priv)
		if err != nil {
			return Key{}, invalid("%v", err)
		}
		k, err := newKey(t, BLSPubKeyName, BLSPrivKeyName, p.uncompressed(), priv)
		if err != nil {
			return Key{}, err
		}
		k.Address = addressesOf(t, k.pubBytes)[0]
		return k, nil
	case Ed25519:
		if len(priv) != ed25519.SeedSize {
			return Key{}, invalid("Ed25519 seed must be %d bytes", ed25519.SeedSize)
		}
		full := ed25519.NewKeyFromSeed(priv)
		k, err := newKey(t, Ed25519PubKeyName, Ed25519PrivKeyName, full[32:], full)
		if err != nil {
			return Key{}, err
		}
		k.Address = addressesOf(t, k.pubBytes)[0]
		return k, nil
	}
	return Key{}, invalid("unknown key type %q (want %s or %s)", t, BLS12381, Ed25519)
}

// newKey checks lengths and that priv derives pub, and fills in Pubkey.
func newKey(t KeyType, pubName, privName string, pub, priv []byte) (Key, error) {
	k := Key{Type: t, pubName: pubName, privName: privName, pubBytes: bytes.Clone(pub), priv: hold(priv)}
	switch t {
	case BLS12381:
		if len(priv) != blsPrivSize {
			return Key{}, invalid("priv_key: a BLS12-381 private key is %d bytes, this one is %d", blsPrivSize, len(priv))
		}
		got, err := decodeG1(pub)
		if err != nil {
			return Key{}, invalid("pub_key: %v", err)
		}
		derived, err := blsPublicFromPrivate(priv)
		if err != nil {
			return Key{}, invalid("priv_key: %v", err)
		}
		if !derived.equal(got) {
			return Key{}, invalid("priv_key does not belong to pub_key: CometBFT would sign as 0x%x, not as the 0x%x the file claims",
				derived.compress(), got.compress())
		}
		k.Pubkey = "0x" + hex.EncodeToString(got.compress())
	case Ed25519:
		if len(pub) != ed25519.PublicKeySize {
			return Key{}, invalid("pub_key: an Ed25519 public key is %d bytes, this one is %d", ed25519.PublicKeySize, len(pub))
		}
		if len(priv) != ed25519.PrivateKeySize {
			return Key{}, invalid("priv_key: an Ed25519 private key is %d bytes, this one is %d", ed25519.PrivateKeySize, len(priv))
		}
		derived := ed25519.NewKeyFromSeed(priv[:ed25519.SeedSize])
		if !bytes.Equal(derived[32:], priv[32:]) {
			return Key{}, invalid("priv_key: its two halves (seed and public key) do not match")
		}
		if !bytes.Equal(derived[32:], pub) {
			return Key{}, invalid("priv_key does not belong to pub_key: CometBFT would sign as 0x%x, not as the 0x%x the file claims",
				[]byte(derived[32:]), pub)
		}
		k.Pubkey = "0x" + hex.EncodeToString(pub)
	default:
		return Key{}, invalid("unknown key type %q", t)
	}
	return k, nil
}

// PubKey is a public key as CometBFT's RPC shows it ({type, value} with a
// base64 value), read for comparison.
type PubKey struct {
	Type KeyType
	// Pubkey is "0x"+hex as in Key.Pubkey (compressed for BLS12-381).
	Pubkey string
	// Addresses are the addresses this key may have (see Key.Addresses).
	Addresses []string
}

// ParsePubKey reads a {type, value} public key from a CometBFT RPC reply
// (validator sets, node status). The value is base64.
func ParsePubKey(typeName, value string) (PubKey, error) {
	tn, ok := typeNames[typeName]
	if !ok || tn.private {
		return PubKey{}, invalid("public key type %q is not one of %s", short(typeName), knownPubNames())
	}
	b, err := base64.StdEncoding.Strict().DecodeString(value)
	if err != nil {
		return PubKey{}, invalid("public key value is not base64: %v", err)
	}
	return pubKeyFromBytes(tn.typ, b)
}

// NormalizePubkey reads "0x"+hex (the form of fleet[].pubkeys): a BLS12-381
// key compressed or uncompressed, or a 32-byte Ed25519 key when t says so.
func NormalizePubkey(t KeyType, s string) (PubKey, error) {
	h := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	b, err := hex.DecodeString(h)
	if err != nil {
		return PubKey{}, invalid("public key %q is not hex", short(s))
	}
	return pubKeyFromBytes(t, b)
}

func pubKeyFromBytes(t KeyType, b []byte) (PubKey, error) {
	switch t {
	case BLS12381:
		p, err := decodeG1(b)
		if err != nil {
			return PubKey{}, invalid("%v", err)
		}
		return PubKey{Type: t, Pubkey: "0x" + hex.EncodeToString(p.compress()), Addresses: addressesOf(t, b)}, nil
	case Ed25519:
		if len(b) != ed25519.PublicKeySize {
			return PubKey{}, invalid("an Ed25519 public key is %d bytes, this one is %d", ed25519.PublicKeySize, len(b))
		}
		return PubKey{Type: t, Pubkey: "0x" + hex.EncodeToString(b), Addresses: addressesOf(t, b)}, nil
	}
	return PubKey{}, invalid("unknown key type %q", t)
}

// addressesOf: the address of pub as given first, then of its other
// encoding (BLS only). pub must already be valid.
func addressesOf(t KeyType, pub []byte) []string {
	out := []string{address(pub)}
	if t == BLS12381 {
		if p, err := decodeG1(pub); err == nil {
			other := p.uncompressed()
			if len(pub) == blsUncompressedSize {
				other = p.compress()
			}
			out = append(out, address(other))
		}
	}
	return out
}

// Address is CometBFT's address of public-key bytes: SHA-256, first 20
// bytes, uppercase hex.
func address(pub []byte) string {
	s := sha256.Sum256(pub)
	return strings.ToUpper(hex.EncodeToString(s[:AddressSize]))
}

func knownPubNames() string {
	return strings.Join([]string{BLSPubKeyName, blsPubKeyNameOld, Ed25519PubKeyName}, ", ")
}

// typedValue reads {"type": ..., "value": base64} under key. For the
// private half nothing of the value is ever quoted.
func typedValue(top map[string]json.RawMessage, key string, private bool) (string, []byte, error) {
	raw, ok := top[key]
	if !ok || isNull(raw) {
		return "", nil, invalid("no %s", key)
	}
	o, err := object(raw, key)
	if err != nil {
		return "", nil, err
	}
	name, err := str(o, "type", key)
	if err != nil {
		return "", nil, err
	}
	tn, known := typeNames[name]
	if !known || tn.private != private {
		half, want := "public", knownPubNames()
		if private {
			half, want = "private", strings.Join([]string{BLSPrivKeyName, blsPrivKeyNameOld, Ed25519PrivKeyName}, ", ")
		}
		return "", nil, invalid("%s.type %q is not a known %s key type (%s)", key, short(name), half, want)
	}
	v, err := str(o, "value", key)
	if err != nil {
		return "", nil, err
	}
	b, err := base64.StdEncoding.Strict().DecodeString(v)
	if err != nil {
		if private {
			return "", nil, invalid("%s.value is not base64", key)
		}
		return "", nil, invalid("%s.value is not base64: %v", key, err)
	}
	return name, b, nil
}

// object decodes a JSON object with exact, case-sensitive keys, the way
// CometBFT's own JSON decoder looks fields up (encoding/json would also
// accept "Pub_Key", and the two readers must not disagree on which key a
// file holds). Errors carry offsets, never the input.
func object(b []byte, what string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var m map[string]json.RawMessage
	if err := dec.Decode(&m); err != nil {
		return nil, invalid("%s: %s", what, jsonProblem(err))
	}
	if m == nil {
		return nil, invalid("%s: not a JSON object", what)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("%s: trailing data after the JSON object", what)
	}
	return m, nil
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("not valid JSON (at byte %d)", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("a JSON %s where an object belongs", te.Value)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "truncated JSON"
	}
	return "not valid JSON"
}

func str(o map[string]json.RawMessage, key, in string) (string, error) {
	raw, ok := o[key]
	if !ok || isNull(raw) {
		return "", invalid("%s: no %s", in, key)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", invalid("%s: %s must be a string", in, key)
	}
	return s, nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
