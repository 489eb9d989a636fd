package interchange

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// part builds a canonical-looking document for root from records.
func part(root string, recs ...Record) *Interchange {
	return &Interchange{Metadata: Metadata{InterchangeFormatVersion: Version, GenesisValidatorsRoot: root}, Data: recs}
}

func r(key string, slots []uint64, atts ...[2]uint64) Record {
	rc := Record{Pubkey: key, SignedBlocks: []SignedBlock{}, SignedAttestations: []SignedAttestation{}}
	for _, s := range slots {
		rc.SignedBlocks = append(rc.SignedBlocks, SignedBlock{Slot: s, SigningRoot: sigR1})
	}
	for _, a := range atts {
		rc.SignedAttestations = append(rc.SignedAttestations, SignedAttestation{SourceEpoch: a[0], TargetEpoch: a[1], SigningRoot: sigR2})
	}
	return rc
}

// mr is the expected minimal-form record.
func mr(key string, slot *uint64, att *[2]uint64) Record {
	rc := Record{Pubkey: key, SignedBlocks: []SignedBlock{}, SignedAttestations: []SignedAttestation{}}
	if slot != nil {
		rc.SignedBlocks = append(rc.SignedBlocks, SignedBlock{Slot: *slot})
	}
	if att != nil {
		rc.SignedAttestations = append(rc.SignedAttestations, SignedAttestation{SourceEpoch: att[0], TargetEpoch: att[1]})
	}
	return rc
}

func u(v uint64) *uint64         { return &v }
func st(s, t uint64) *[2]uint64  { return &[2]uint64{s, t} }
func slots(v ...uint64) []uint64 { return v }

func TestMerge(t *testing.T) {
	tests := []struct {
		name  string
		parts []*Interchange
		want  []Record
	}{
		{"no parts", nil, []Record{}},
		{"empty parts", []*Interchange{part(rootA), part(rootA)}, []Record{}},
		{"key without history", []*Interchange{part(rootA, r(keyA, nil))}, []Record{mr(keyA, nil, nil)}},
		{"one part reduces to maxima", []*Interchange{part(rootA, r(keyA, slots(4, 243, 98), [2]uint64{10, 11}, [2]uint64{12, 13}, [2]uint64{11, 14}))},
			[]Record{mr(keyA, u(243), st(12, 14))}},
		{"max over parts", []*Interchange{
			part(rootA, r(keyA, slots(100), [2]uint64{5, 6})),
			part(rootA, r(keyA, slots(90), [2]uint64{7, 8})),
			part(rootA, r(keyA, slots(351))),
		}, []Record{mr(keyA, u(351), st(7, 8))}},
		{"source and target from different parts", []*Interchange{
			part(rootA, r(keyA, nil, [2]uint64{9, 9})),
			part(rootA, r(keyA, nil, [2]uint64{3, 20})),
		}, []Record{mr(keyA, nil, st(9, 20))}},
		{"keys only in some parts", []*Interchange{
			part(rootA, r(keyB, slots(7)), r(keyA, nil, [2]uint64{1, 2})),
			part(rootA),
			part(rootA, r(keyC, nil), r(keyA, slots(3))),
		}, []Record{mr(keyA, u(3), st(1, 2)), mr(keyB, u(7), nil), mr(keyC, nil, nil)}},
		{"duplicate pubkey inside a part, mixed case", []*Interchange{
			part(rootA, r(keyA, slots(5)), r("0x"+strings.ToUpper(keyA[2:]), slots(6), [2]uint64{0, 0})),
		}, []Record{mr(keyA, u(6), st(0, 0))}},
		{"upper-case root in a part", []*Interchange{part("0x"+strings.ToUpper(rootA[2:]), r(keyA, slots(1)))},
			[]Record{mr(keyA, u(1), nil)}},
		{"zero values count", []*Interchange{part(rootA, r(keyA, slots(0), [2]uint64{0, 0}))},
			[]Record{mr(keyA, u(0), st(0, 0))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Merge(rootA, tt.parts...)
			if err != nil {
				t.Fatal(err)
			}
			want := part(rootA, tt.want...)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Merge:\n got %+v\nwant %+v", got, want)
			}
			// The result is canonical: it survives Marshal and Parse unchanged.
			out, err := got.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if back := mustParse(t, string(out)); !reflect.DeepEqual(back, got) {
				t.Fatalf("merged document not canonical:\n%+v\n%+v", back, got)
			}
		})
	}
}

func TestMergeRefuses(t *testing.T) {
	tests := []struct {
		name  string
		root  string
		parts []*Interchange
		check func(error) bool
	}{
		{"root mismatch", rootA, []*Interchange{part(rootA), part(rootB, r(keyA, nil))}, func(err error) bool {
			return errors.Is(err, ErrRootMismatch) && strings.Contains(err.Error(), "parts[1]")
		}},
		{"bad root argument", "0x1234", nil, pathIs("root")},
		{"nil part", rootA, []*Interchange{part(rootA), nil}, pathIs("parts[1]")},
		{"invalid part", rootA, []*Interchange{part(rootA, r(keyA, nil, [2]uint64{3, 2}))}, pathIs("parts[0].data[0].signed_attestations[0]")},
		{"wrong version", rootA, []*Interchange{{Metadata: Metadata{InterchangeFormatVersion: "4", GenesisValidatorsRoot: rootA}}},
			pathIs("parts[0].metadata.interchange_format_version")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Merge(tt.root, tt.parts...)
			if err == nil {
				t.Fatalf("Merge succeeded: %+v", got)
			}
			if !tt.check(err) {
				t.Fatalf("unexpected error %v", err)
			}
		})
	}
}

func pathIs(path string) func(error) bool {
	return func(err error) bool {
		var pe *Error
		return errors.As(err, &pe) && pe.Path == path
	}
}

func TestWatermark(t *testing.T) {
	w, err := Watermark(rootA, []string{keyB, "0x" + strings.ToUpper(keyA[2:]), keyB}, 310, 9935)
	if err != nil {
		t.Fatal(err)
	}
	want := part(rootA, mr(keyA, u(9935), st(310, 310)), mr(keyB, u(9935), st(310, 310)))
	if !reflect.DeepEqual(w, want) {
		t.Fatalf("Watermark:\n got %+v\nwant %+v", w, want)
	}
	if err := w.Validate(rootA, []string{keyA, keyB}); err != nil {
		t.Fatal(err)
	}
	if _, err := Watermark("0x", []string{keyA}, 1, 32); !pathIs("root")(err) {
		t.Fatalf("bad root: %v", err)
	}
	if _, err := Watermark(rootA, []string{keyA, "0xab"}, 1, 32); !pathIs("pubkeys[1]")(err) {
		t.Fatalf("bad pubkey: %v", err)
	}
}

// TestWatermarkMerge is the migration: what the home DELETE returned,
// merged with the watermark at the chain clock.
func TestWatermarkMerge(t *testing.T) {
	home := mustParse(t, doc(
		rec(`{"slot":"9800"},{"slot":"9990","signing_root":"`+sigR1+`"}`, `{"source_epoch":"310","target_epoch":"311"}`)+","+
			`{"pubkey":"`+keyB+`","signed_blocks":[],"signed_attestations":[{"source_epoch":"200","target_epoch":"201"}]}`))
	// keyA's home record is ahead of the clock (clock skew at home): the
	// maximum keeps it. keyB's record is stale: the watermark lifts it.
	// keyC has no home record at all: the watermark alone covers it.
	w, err := Watermark(rootA, []string{keyA, keyB, keyC}, 310, 9935)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Merge(rootA, home, w)
	if err != nil {
		t.Fatal(err)
	}
	want := part(rootA,
		mr(keyA, u(9990), st(310, 311)),
		mr(keyB, u(9935), st(310, 310)),
		mr(keyC, u(9935), st(310, 310)),
	)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Merge:\n got %+v\nwant %+v", got, want)
	}
	if err := got.Validate(rootA, []string{keyA, keyB, keyC}); err != nil {
		t.Fatal(err)
	}
	// Order of parts does not matter.
	rev, err := Merge(rootA, w, home)
	if err != nil || !reflect.DeepEqual(rev, got) {
		t.Fatalf("Merge not symmetric: %v\n%+v", err, rev)
	}
	// A watermark for another network is refused.
	wb, _ := Watermark(rootB, []string{keyA}, 310, 9935)
	if _, err := Merge(rootA, home, wb); !errors.Is(err, ErrRootMismatch) {
		t.Fatalf("err = %v, want ErrRootMismatch", err)
	}
}

func TestValidate(t *testing.T) {
	i := mustParse(t, example) // keys A and B, root A
	tests := []struct {
		name    string
		root    string
		keys    []string
		missing []string
		check   func(error) bool
	}{
		{name: "ok", root: rootA, keys: []string{keyA, keyB}},
		{name: "ok subset, any case", root: "0x" + strings.ToUpper(rootA[2:]), keys: []string{"0x" + strings.ToUpper(keyB[2:])}},
		{name: "ok no keys", root: rootA},
		{name: "root mismatch", root: rootB, keys: []string{keyA}, check: func(err error) bool {
			return errors.Is(err, ErrRootMismatch) && strings.Contains(err.Error(), rootB)
		}},
		{name: "missing keys", root: rootA, keys: []string{keyC, keyA, keyC, "0xd" + keyC[3:]}, missing: []string{keyC, "0xd" + keyC[3:]}},
		{name: "bad root argument", root: "", check: pathIs("root")},
		{name: "bad pubkey argument", root: rootA, keys: []string{keyA, keyA[:50]}, check: pathIs("pubkeys[1]")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := i.Validate(tt.root, tt.keys)
			switch {
			case tt.check != nil:
				if err == nil || !tt.check(err) {
					t.Fatalf("unexpected error %v", err)
				}
			case tt.missing != nil:
				var me *MissingKeysError
				if !errors.As(err, &me) || !slices.Equal(me.Pubkeys, tt.missing) {
					t.Fatalf("err = %v, want missing %v", err, tt.missing)
				}
				for _, k := range tt.missing {
					if !strings.Contains(err.Error(), k) {
						t.Fatalf("error %q does not name %s", err, k)
					}
				}
			case err != nil:
				t.Fatal(err)
			}
		})
	}
	hand := part(rootA, r(keyA, nil))
	hand.Metadata.InterchangeFormatVersion = "4"
	if err := hand.Validate(rootA, []string{keyA}); !pathIs("metadata.interchange_format_version")(err) {
		t.Fatalf("version 4 validated: %v", err)
	}
	if err := (*Interchange)(nil).Validate(rootA, nil); err == nil {
		t.Fatal("nil validated")
	}
}

// randomInterchange makes a document over a small key space so that parts
// overlap, with values spread over small and huge numbers.
func randomInterchange(rng *rand.Rand, root string) *Interchange {
	num := func() uint64 {
		switch rng.IntN(4) {
		case 0:
			return rng.Uint64()
		case 1:
			return 1<<64 - 1 - rng.Uint64N(4)
		default:
			return rng.Uint64N(50)
		}
	}
	i := part(root)
	for range rng.IntN(6) {
		rc := Record{Pubkey: fmt.Sprintf("0x%096x", rng.IntN(5))}
		for range rng.IntN(4) {
			rc.SignedBlocks = append(rc.SignedBlocks, SignedBlock{Slot: num()})
		}
		for range rng.IntN(4) {
			s, t := num(), num()
			if s > t {
				s, t = t, s
			}
			rc.SignedAttestations = append(rc.SignedAttestations, SignedAttestation{SourceEpoch: s, TargetEpoch: t})
		}
		i.Data = append(i.Data, rc)
	}
	return i
}

// TestMergeProperty: for random parts, the merged minimal form covers every
// part — for every key in any part the merged maxima are at least that
// part's, are attained by some part, and no key is lost or invented.
func TestMergeProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 2000 {
		parts := make([]*Interchange, rng.IntN(5))
		for k := range parts {
			parts[k] = randomInterchange(rng, rootA)
		}
		merged, err := Merge(rootA, parts...)
		if err != nil {
			t.Fatalf("case %d: %v", n, err)
		}
		mh := merged.Highest()
		keys := map[string]bool{}
		for _, p := range parts {
			for key, h := range p.Highest() {
				keys[key] = true
				m, ok := mh[key]
				if !ok {
					t.Fatalf("case %d: key %s lost", n, key)
				}
				if h.HasBlock && (!m.HasBlock || m.Slot < h.Slot) {
					t.Fatalf("case %d: %s: merged block %+v below part %+v", n, key, m, h)
				}
				if h.HasAttestation && (!m.HasAttestation || m.Source < h.Source || m.Target < h.Target) {
					t.Fatalf("case %d: %s: merged attestation %+v below part %+v", n, key, m, h)
				}
			}
		}
		if len(mh) != len(keys) {
			t.Fatalf("case %d: merged has %d keys, parts have %d", n, len(mh), len(keys))
		}
		for key, m := range mh {
			attained := struct{ slot, src, tgt bool }{!m.HasBlock, !m.HasAttestation, !m.HasAttestation}
			for _, p := range parts {
				h, ok := p.Highest()[key]
				if !ok {
					continue
				}
				attained.slot = attained.slot || (h.HasBlock && h.Slot == m.Slot)
				attained.src = attained.src || (h.HasAttestation && h.Source == m.Source)
				attained.tgt = attained.tgt || (h.HasAttestation && h.Target == m.Target)
			}
			if !attained.slot || !attained.src || !attained.tgt {
				t.Fatalf("case %d: %s: merged %+v not attained by any part", n, key, m)
			}
		}
		for _, rc := range merged.Data {
			if len(rc.SignedBlocks) > 1 || len(rc.SignedAttestations) > 1 {
				t.Fatalf("case %d: not minimal: %+v", n, rc)
			}
		}
		// Merging is idempotent and the result is a valid document.
		again, err := Merge(rootA, merged)
		if err != nil || !reflect.DeepEqual(again, merged) {
			t.Fatalf("case %d: Merge(Merge(x)) != Merge(x): %v", n, err)
		}
		if _, err := merged.Marshal(); err != nil {
			t.Fatalf("case %d: %v", n, err)
		}
	}
}
