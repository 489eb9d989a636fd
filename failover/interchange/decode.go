package interchange

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
)

// decode reads the document token by token, following the schema, so that
// every error can name its JSON path and so that unknown and repeated fields
// are seen (encoding/json's struct decoding silently takes the last of two
// equal keys). The walk never descends into a value it does not expect, so
// nesting depth is bounded by the schema, not by the input.
func decode(data []byte) (*Interchange, error) {
	d := &decoder{dec: json.NewDecoder(bytes.NewReader(data))}
	d.dec.UseNumber()
	out := &Interchange{}
	err := d.object("", []string{"metadata", "data"}, func(key, path string) error {
		switch key {
		case "metadata":
			return d.metadata(path, &out.Metadata)
		case "data":
			_, err := d.array(path, false, func(_ int, path string) error {
				r, err := d.record(path)
				if err != nil {
					return err
				}
				out.Data = append(out.Data, r)
				return nil
			})
			return err
		}
		return pathErr(path, "unknown field")
	})
	if err != nil {
		return nil, err
	}
	if _, err := d.dec.Token(); err != io.EOF {
		return nil, pathErr("", "unexpected data after the document")
	}
	return out, nil
}

func (d *decoder) metadata(path string, m *Metadata) error {
	return d.object(path, []string{"interchange_format_version", "genesis_validators_root"}, func(key, path string) error {
		var err error
		switch key {
		case "interchange_format_version":
			m.InterchangeFormatVersion, err = d.str(path)
		case "genesis_validators_root":
			m.GenesisValidatorsRoot, err = d.str(path)
		default:
			err = pathErr(path, "unknown field")
		}
		return err
	})
}

func (d *decoder) record(path string) (Record, error) {
	r := Record{SignedBlocks: []SignedBlock{}, SignedAttestations: []SignedAttestation{}}
	err := d.object(path, []string{"pubkey", "signed_blocks", "signed_attestations"}, func(key, path string) error {
		var err error
		switch key {
		case "pubkey":
			r.Pubkey, err = d.str(path)
		case "signed_blocks":
			_, err = d.array(path, true, func(_ int, path string) error {
				b, err := d.block(path)
				r.SignedBlocks = append(r.SignedBlocks, b)
				return err
			})
		case "signed_attestations":
			_, err = d.array(path, true, func(_ int, path string) error {
				a, err := d.attestation(path)
				r.SignedAttestations = append(r.SignedAttestations, a)
				return err
			})
		default:
			err = pathErr(path, "unknown field")
		}
		return err
	})
	return r, err
}

func (d *decoder) block(path string) (SignedBlock, error) {
	var b SignedBlock
	err := d.object(path, []string{"slot"}, func(key, path string) error {
		var err error
		switch key {
		case "slot":
			b.Slot, err = d.uint(path)
		case "signing_root":
			b.SigningRoot, err = d.optStr(path)
		default:
			err = pathErr(path, "unknown field")
		}
		return err
	})
	return b, err
}

func (d *decoder) attestation(path string) (SignedAttestation, error) {
	var a SignedAttestation
	err := d.object(path, []string{"source_epoch", "target_epoch"}, func(key, path string) error {
		var err error
		switch key {
		case "source_epoch":
			a.SourceEpoch, err = d.uint(path)
		case "target_epoch":
			a.TargetEpoch, err = d.uint(path)
		case "signing_root":
			a.SigningRoot, err = d.optStr(path)
		default:
			err = pathErr(path, "unknown field")
		}
		return err
	})
	return a, err
}

type decoder struct{ dec *json.Decoder }

func (d *decoder) token(path string) (json.Token, error) {
	tok, err := d.dec.Token()
	if err == nil {
		return tok, nil
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, pathErr(path, "unexpected end of input")
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return nil, pathErr(path, "invalid JSON at byte %d: %s", se.Offset, se.Error())
	}
	return nil, pathErr(path, "invalid JSON: %s", err.Error())
}

// object reads an object, calling field for each key with the key's path;
// field must consume the value. Repeated keys and missing required keys
// are errors.
func (d *decoder) object(path string, required []string, field func(key, path string) error) error {
	tok, err := d.token(path)
	if err != nil {
		return err
	}
	if tok != json.Delim('{') {
		return pathErr(path, "expected an object, got %s", kind(tok))
	}
	seen := make(map[string]bool, len(required)+1)
	for d.dec.More() {
		tok, err := d.token(path)
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return pathErr(path, "expected a field name, got %s", kind(tok))
		}
		fp := joinKey(path, key)
		if seen[key] {
			return pathErr(fp, "field appears more than once")
		}
		seen[key] = true
		if err := field(key, fp); err != nil {
			return err
		}
	}
	if tok, err := d.token(path); err != nil {
		return err
	} else if tok != json.Delim('}') {
		return pathErr(path, "expected end of object, got %s", kind(tok))
	}
	for _, r := range required {
		if !seen[r] {
			return pathErr(joinKey(path, r), "required field missing")
		}
	}
	return nil
}

// array reads an array (or null when nullOK), calling elem for each element
// with the element's path; elem must consume the value.
func (d *decoder) array(path string, nullOK bool, elem func(i int, path string) error) (null bool, err error) {
	tok, err := d.token(path)
	if err != nil {
		return false, err
	}
	if tok == nil && nullOK {
		return true, nil
	}
	if tok != json.Delim('[') {
		return false, pathErr(path, "expected an array, got %s", kind(tok))
	}
	for i := 0; d.dec.More(); i++ {
		if err := elem(i, fmt.Sprintf("%s[%d]", path, i)); err != nil {
			return false, err
		}
	}
	if tok, err := d.token(path); err != nil {
		return false, err
	} else if tok != json.Delim(']') {
		return false, pathErr(path, "expected end of array, got %s", kind(tok))
	}
	return false, nil
}

func (d *decoder) str(path string) (string, error) {
	tok, err := d.token(path)
	if err != nil {
		return "", err
	}
	s, ok := tok.(string)
	if !ok {
		return "", pathErr(path, "expected a string, got %s", kind(tok))
	}
	return s, nil
}

// optStr reads a string or null (as "").
func (d *decoder) optStr(path string) (string, error) {
	tok, err := d.token(path)
	if err != nil {
		return "", err
	}
	switch v := tok.(type) {
	case nil:
		return "", nil
	case string:
		if v == "" {
			return "", pathErr(path, "empty string (leave the field out when there is no signing root)")
		}
		return v, nil
	}
	return "", pathErr(path, "expected a string, got %s", kind(tok))
}

// uint reads a decimal string holding an unsigned 64-bit integer.
func (d *decoder) uint(path string) (uint64, error) {
	s, err := d.str(path)
	if err != nil {
		return 0, err
	}
	if s == "" {
		return 0, pathErr(path, "not a decimal number: empty string")
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, pathErr(path, "not a decimal number: %s", quoteShort(s))
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, pathErr(path, "decimal number out of range for 64 bits: %s", quoteShort(s))
	}
	return v, nil
}

func kind(tok json.Token) string {
	switch v := tok.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case json.Delim:
		switch v {
		case '{':
			return "an object"
		case '[':
			return "an array"
		}
		return "end of " + map[json.Delim]string{'}': "object", ']': "array"}[v]
	}
	return fmt.Sprintf("%T", tok)
}

var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func joinKey(path, key string) string {
	if !plainKey.MatchString(key) {
		return path + "[" + quoteShort(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}
