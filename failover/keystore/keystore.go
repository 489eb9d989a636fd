// Package keystore reads EIP-2335 BLS keystores far enough to know which
// validator each one is: the version, the public key and that the crypto
// section has its three modules. It never decrypts: failoverd only carries
// keystores from the approver's machine to the standby's validator client,
// which decrypts them itself.
package keystore

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// MaxSize bounds one keystore file; real ones are under 1 KiB (scrypt) or 2.
const MaxSize = 64 << 10

// Keystore is what failoverd needs of an EIP-2335 keystore.
type Keystore struct {
	// Pubkey is the BLS public key, "0x" + 96 lowercase hex digits.
	Pubkey string
	UUID   string
	Path   string
	// Raw is the file as read, sent on unchanged.
	Raw []byte
}

type module struct {
	Function *string         `json:"function"`
	Params   json.RawMessage `json:"params"`
	Message  *string         `json:"message"`
}

type wire struct {
	Crypto *struct {
		KDF      *module `json:"kdf"`
		Checksum *module `json:"checksum"`
		Cipher   *module `json:"cipher"`
	} `json:"crypto"`
	Description *string `json:"description"`
	Pubkey      *string `json:"pubkey"`
	Path        *string `json:"path"`
	UUID        *string `json:"uuid"`
	Version     *int    `json:"version"`
}

// Parse reads one keystore. Every error says what is wrong.
func Parse(b []byte) (Keystore, error) {
	if len(b) > MaxSize {
		return Keystore{}, fmt.Errorf("keystore: %d bytes, more than %d", len(b), MaxSize)
	}
	var w wire
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&w); err != nil {
		return Keystore{}, fmt.Errorf("keystore: not JSON: %w", err)
	}
	if dec.More() {
		return Keystore{}, errors.New("keystore: trailing data after the JSON object")
	}
	switch {
	case w.Version == nil:
		return Keystore{}, errors.New("keystore: no version (EIP-2335 keystores are version 4)")
	case *w.Version != 4:
		return Keystore{}, fmt.Errorf("keystore: version %d, want 4 (EIP-2335)", *w.Version)
	case w.Crypto == nil:
		return Keystore{}, errors.New("keystore: no crypto section")
	case w.Crypto.KDF == nil || w.Crypto.KDF.Function == nil || (*w.Crypto.KDF.Function != "scrypt" && *w.Crypto.KDF.Function != "pbkdf2"):
		return Keystore{}, errors.New("keystore: crypto.kdf.function must be scrypt or pbkdf2")
	case w.Crypto.Checksum == nil || w.Crypto.Checksum.Function == nil || *w.Crypto.Checksum.Function != "sha256":
		return Keystore{}, errors.New("keystore: crypto.checksum.function must be sha256")
	case w.Crypto.Cipher == nil || w.Crypto.Cipher.Function == nil || *w.Crypto.Cipher.Function != "aes-128-ctr":
		return Keystore{}, errors.New("keystore: crypto.cipher.function must be aes-128-ctr")
	case w.Crypto.Cipher.Message == nil || *w.Crypto.Cipher.Message == "":
		return Keystore{}, errors.New("keystore: crypto.cipher.message (the encrypted secret) is empty")
	case w.Pubkey == nil:
		return Keystore{}, errors.New("keystore: no pubkey (failoverd needs it to know which validator this is)")
	case w.UUID == nil || *w.UUID == "":
		return Keystore{}, errors.New("keystore: no uuid")
	}
	pk, err := normalizePubkey(*w.Pubkey)
	if err != nil {
		return Keystore{}, err
	}
	k := Keystore{Pubkey: pk, UUID: *w.UUID, Raw: bytes.Clone(b)}
	if w.Path != nil {
		k.Path = *w.Path
	}
	return k, nil
}

func normalizePubkey(s string) (string, error) {
	h := strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 48 {
		return "", fmt.Errorf("keystore: pubkey %q is not 48 bytes of hex", short(s))
	}
	return "0x" + hex.EncodeToString(b), nil
}

func short(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
