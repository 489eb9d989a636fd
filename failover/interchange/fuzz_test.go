package interchange

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// FuzzParse: Parse never panics, fails only with *Error or ErrTooLarge, and
// whatever it accepts survives Marshal and Parse unchanged, validates
// against its own root and keys, and merges.
func FuzzParse(f *testing.F) {
	f.Add([]byte(example))
	f.Add([]byte(doc(rec(`{"slot":"1"}`, `{"source_epoch":"1","target_epoch":"2"}`))))
	f.Add([]byte(doc(rec(`{"slot":"18446744073709551615","signing_root":null}`, `{"source_epoch":"0","target_epoch":"0","signing_root":"`+sigR1+`"}`))))
	f.Add([]byte(doc(`{"pubkey":"` + keyA + `","signed_blocks":null,"signed_attestations":null},{"pubkey":"` + keyA + `","signed_blocks":[{"slot":"3"}],"signed_attestations":[]}`)))
	f.Add([]byte(doc(rec(``, `{"source_epoch":"8","target_epoch":"7"}`))))
	f.Add([]byte(`{"metadata":{"interchange_format_version":"5","genesis_validators_root":"` + rootA + `"},"data":[],"data":[]}`))
	f.Add([]byte(`[[[[[[[[[[]]]]]]]]]]`))
	f.Add([]byte(`{"metadata":`))
	f.Fuzz(func(t *testing.T, data []byte) {
		i, err := Parse(data)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		out, err := i.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed document: %v", err)
		}
		j, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse of Marshal output: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(i, j) {
			t.Fatalf("Parse∘Marshal∘Parse != Parse:\n%+v\n%+v", i, j)
		}
		again, err := j.Marshal()
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("Marshal not stable (%v):\n%s\n%s", err, out, again)
		}
		keys := make([]string, len(i.Data))
		for k, r := range i.Data {
			keys[k] = r.Pubkey
		}
		if err := i.Validate(i.Metadata.GenesisValidatorsRoot, keys); err != nil {
			t.Fatalf("Validate against its own root and keys: %v", err)
		}
		m, err := Merge(i.Metadata.GenesisValidatorsRoot, i)
		if err != nil {
			t.Fatalf("Merge: %v", err)
		}
		if err := m.Validate(i.Metadata.GenesisValidatorsRoot, keys); err != nil {
			t.Fatalf("Validate merged: %v", err)
		}
	})
}
