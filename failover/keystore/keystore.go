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
	"io"
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
	if err := checkUnambiguous(b); err != nil {
		return Keystore{}, err
	}
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return Keystore{}, fmt.Errorf("keystore: not JSON: %w", err)
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

// maxDepth bounds nesting; a keystore is four levels deep.
const maxDepth = 32

// memberNames are the EIP-2335 members, each to be written exactly so.
var memberNames = []string{"crypto", "kdf", "checksum", "cipher", "function", "params", "message", "description", "pubkey", "path", "uuid", "version"}

// checkUnambiguous refuses a document a validator client could read
// differently from encoding/json: anything after the JSON value; a member
// named twice in one object (encoding/json keeps the last, other readers
// the first, or refuse), also in another letter case (encoding/json folds
// case); or an EIP-2335 member spelled in another case (encoding/json reads
// it, a strict reader does not). Otherwise the agent could check one pubkey
// against the grant while the validator client imports another.
func checkUnambiguous(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := walk(dec, 0); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("keystore: trailing data after the JSON object")
	}
	return nil
}

func walk(dec *json.Decoder, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("keystore: nested more than %d levels deep", maxDepth)
	}
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("keystore: not JSON: %w", err)
	}
	switch tok {
	case json.Delim('{'):
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return fmt.Errorf("keystore: not JSON: %w", err)
			}
			name, _ := tok.(string)
			// Upper then lower case joins what strings.EqualFold (and
			// encoding/json's field matching) joins, such as ſ and s.
			folded := strings.ToLower(strings.ToUpper(name))
			if seen[folded] {
				return fmt.Errorf("keystore: member %q appears more than once in one object", short(name))
			}
			for _, exact := range memberNames {
				if folded == exact && name != exact {
					return fmt.Errorf("keystore: member %q must be written %q", short(name), exact)
				}
			}
			seen[folded] = true
			if err := walk(dec, depth+1); err != nil {
				return err
			}
		}
	case json.Delim('['):
		for dec.More() {
			if err := walk(dec, depth+1); err != nil {
				return err
			}
		}
	default:
		return nil
	}
	if _, err := dec.Token(); err != nil { // the closing } or ]
		return fmt.Errorf("keystore: not JSON: %w", err)
	}
	return nil
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
