package interchange

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
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
	f.Add([]byte(keymanagerExample))
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

// fuzzBytes hands out the fuzzer's bytes as small decisions; past the end
// every decision is zero, so any input builds a document.
type fuzzBytes []byte

func (b *fuzzBytes) byte() byte {
	if len(*b) == 0 {
		return 0
	}
	c := (*b)[0]
	*b = (*b)[1:]
	return c
}

// num is a slot or epoch: mostly small (parts overlap), sometimes at the
// top of the range.
func (b *fuzzBytes) num() uint64 {
	switch c := b.byte(); c % 4 {
	case 0:
		var v uint64
		for range 8 {
			v = v<<8 | uint64(b.byte())
		}
		return v
	case 1:
		return 1<<64 - 1 - uint64(b.byte()%4)
	default:
		return uint64(c / 4)
	}
}

// buildInterchange makes a valid document on rootA over five keys from
// data, for inputs that are not documents themselves.
func buildInterchange(data []byte) *Interchange {
	b := fuzzBytes(data)
	i := &Interchange{Metadata: Metadata{InterchangeFormatVersion: Version, GenesisValidatorsRoot: rootA}}
	for range b.byte() % 6 {
		rc := Record{Pubkey: fmt.Sprintf("0x%096x", b.byte()%5)}
		for range b.byte() % 4 {
			rc.SignedBlocks = append(rc.SignedBlocks, SignedBlock{Slot: b.num()})
		}
		for range b.byte() % 4 {
			s, t := b.num(), b.num()
			rc.SignedAttestations = append(rc.SignedAttestations, SignedAttestation{SourceEpoch: min(s, t), TargetEpoch: max(s, t)})
		}
		i.Data = append(i.Data, rc)
	}
	return i
}

// FuzzMerge: for any two documents (parsed, or built from the bytes when
// they do not parse) on one network, and any chain-clock watermark, the
// merge is at or above every input for every key, loses and invents no
// key, is commutative, associative and idempotent, validates, and survives
// Marshal and Parse; documents on two networks never merge.
func FuzzMerge(f *testing.F) {
	f.Add([]byte(example), []byte(doc(rec(`{"slot":"70002"}`, `{"source_epoch":"2181","target_epoch":"2185"}`))), uint64(2190), uint64(70080))
	f.Add([]byte(example), []byte(example), uint64(0), uint64(0))
	f.Add([]byte(keymanagerExample), []byte(keymanagerExample), uint64(1), uint64(32))
	f.Add([]byte(example), []byte(keymanagerExample), uint64(1), uint64(32)) // two networks
	f.Add([]byte{5, 0, 3, 0, 4, 1, 2, 3, 2, 8, 9, 1, 3}, []byte{3, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0}, uint64(1<<64-1), uint64(1<<64-1))
	f.Add([]byte{}, []byte{1, 4, 0, 1, 1, 2}, uint64(7), uint64(7*32))
	f.Fuzz(func(t *testing.T, a, b []byte, epoch, slot uint64) {
		parts := make([]*Interchange, 2)
		for k, data := range [][]byte{a, b} {
			p, err := Parse(data)
			if err != nil {
				p = buildInterchange(data)
			}
			parts[k] = p
		}
		pa, pb := parts[0], parts[1]
		root := pa.Metadata.GenesisValidatorsRoot
		if !strings.EqualFold(root, pb.Metadata.GenesisValidatorsRoot) {
			if _, err := Merge(root, pa, pb); !errors.Is(err, ErrRootMismatch) {
				t.Fatalf("documents of two networks merged: %v", err)
			}
			return
		}
		merged, err := Merge(root, pa, pb)
		if err != nil {
			t.Fatalf("Merge: %v", err)
		}
		mustEqual := func(what string, got *Interchange, err error) {
			t.Helper()
			if err != nil || !reflect.DeepEqual(got, merged) {
				t.Fatalf("%s differs from Merge(a, b) (%v):\n%+v\n%+v", what, err, got, merged)
			}
		}
		got, err := Merge(root, pb, pa)
		mustEqual("Merge(b, a)", got, err)
		got, err = Merge(root, merged, merged)
		mustEqual("Merge(m, m)", got, err)
		ma, err := Merge(root, pa)
		if err != nil {
			t.Fatal(err)
		}
		got, err = Merge(root, ma, pb)
		mustEqual("Merge(Merge(a), b)", got, err)
		got, err = Merge(root, pa, pb, pa, pb)
		mustEqual("Merge(a, b, a, b)", got, err)

		var keys []string
		seen := map[string]bool{}
		for _, p := range parts {
			for _, r := range p.Data {
				if !seen[r.Pubkey] {
					seen[r.Pubkey] = true
					keys = append(keys, r.Pubkey)
				}
			}
		}
		if len(merged.Data) != len(keys) {
			t.Fatalf("merged has %d keys, the inputs %d", len(merged.Data), len(keys))
		}
		if err := merged.Validate(root, keys); err != nil {
			t.Fatalf("merged does not validate: %v", err)
		}
		out, err := merged.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err = Parse(out)
		mustEqual("Parse(Marshal(m))", got, err)

		wm, err := Watermark(root, keys, epoch, slot)
		if err != nil {
			t.Fatalf("Watermark: %v", err)
		}
		withClock, err := Merge(root, pa, pb, wm)
		if err != nil {
			t.Fatalf("Merge with the watermark: %v", err)
		}
		if err := withClock.Validate(root, keys); err != nil {
			t.Fatalf("merged with the watermark does not validate: %v", err)
		}
		for name, m := range map[string]*Interchange{"merged": merged, "merged with the watermark": withClock} {
			mh := m.Highest()
			for _, p := range []*Interchange{pa, pb} {
				for key, h := range p.Highest() {
					got := mh[key]
					if h.HasBlock && (!got.HasBlock || got.Slot < h.Slot) {
						t.Fatalf("%s: %s slot %+v below an input's %+v", name, key, got, h)
					}
					if h.HasAttestation && (!got.HasAttestation || got.Source < h.Source || got.Target < h.Target) {
						t.Fatalf("%s: %s attestation %+v below an input's %+v", name, key, got, h)
					}
				}
			}
			for _, r := range m.Data {
				if len(r.SignedBlocks) > 1 || len(r.SignedAttestations) > 1 {
					t.Fatalf("%s is not minimal: %+v", name, r)
				}
			}
		}
		for key, h := range withClock.Highest() {
			if !h.HasBlock || h.Slot < slot || !h.HasAttestation || h.Source < epoch || h.Target < epoch {
				t.Fatalf("%s is below the chain clock (epoch %d, slot %d): %+v", key, epoch, slot, h)
			}
		}
	})
}

// keymanagerExample is the slashing_protection example of the Keymanager
// API definition (shared/specs/keymanager-apis, CC0), kept here so that the
// seed exists without the specs.
const keymanagerExample = `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"0xcf8e0d4e9587369b2301d0790347320302cc0943d5a1884560367e8208d920f2"},"data":[{"pubkey":"0x93247f2209abcacf57b75a51dafae777f9dd38bc7053d1af526f220a7489a6d3a2753e5f3e8b1cfe39b56f43611df74a","signed_blocks":[],"signed_attestations":[]}]}`
