package interchange

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// A document written for these tests after the shape given in EIP-3076;
// keys and roots are made up.
const (
	rootA = "0x5e1f00d0c0ffee00000000000000000000000000000000000000000000000a01"
	rootB = "0x5e1f00d0c0ffee00000000000000000000000000000000000000000000000b02"
	keyA  = "0xa0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000a"
	keyB  = "0xb0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000b"
	keyC  = "0xc0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000c"
	sigR1 = "0x1111111111111111111111111111111111111111111111111111111111111111"
	sigR2 = "0x2222222222222222222222222222222222222222222222222222222222222222"
)

const example = `{
  "metadata": {
    "interchange_format_version": "5",
    "genesis_validators_root": "` + rootA + `"
  },
  "data": [
    {
      "pubkey": "` + keyB + `",
      "signed_blocks": [
        {"slot": "70001", "signing_root": "` + sigR1 + `"},
        {"slot": "69990"}
      ],
      "signed_attestations": [
        {"source_epoch": "2180", "target_epoch": "2187", "signing_root": "` + sigR2 + `"},
        {"source_epoch": "2180", "target_epoch": "2186"}
      ]
    },
    {
      "pubkey": "` + keyA + `",
      "signed_blocks": [],
      "signed_attestations": []
    }
  ]
}`

func mustParse(t testing.TB, s string) *Interchange {
	t.Helper()
	i, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return i
}

func TestParseExample(t *testing.T) {
	got := mustParse(t, example)
	want := &Interchange{
		Metadata: Metadata{InterchangeFormatVersion: "5", GenesisValidatorsRoot: rootA},
		Data: []Record{
			{Pubkey: keyA, SignedBlocks: []SignedBlock{}, SignedAttestations: []SignedAttestation{}},
			{
				Pubkey:       keyB,
				SignedBlocks: []SignedBlock{{Slot: 69990}, {Slot: 70001, SigningRoot: sigR1}},
				SignedAttestations: []SignedAttestation{
					{SourceEpoch: 2180, TargetEpoch: 2186},
					{SourceEpoch: 2180, TargetEpoch: 2187, SigningRoot: sigR2},
				},
			},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Parse:\n got %+v\nwant %+v", got, want)
	}
}

// doc builds a one-record document around the given record body.
func doc(record string) string {
	return `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"` + rootA + `"},"data":[` + record + `]}`
}

func rec(blocks, atts string) string {
	return `{"pubkey":"` + keyA + `","signed_blocks":[` + blocks + `],"signed_attestations":[` + atts + `]}`
}

func TestParseErrors(t *testing.T) {
	okRec := rec(`{"slot":"1"}`, `{"source_epoch":"1","target_epoch":"2"}`)
	tests := []struct {
		name, in string
		path     string // want *Error with this path ("-" for ErrTooLarge)
		msg      string // substring of the message
	}{
		{"too large", `{"data":[` + strings.Repeat(" ", MaxSize) + `]}`, "-", ""},
		{"empty", ``, "", "unexpected end of input"},
		{"not json", `{metadata}`, "", "invalid JSON"},
		{"truncated in a key", doc(okRec)[:60], "metadata", "unexpected end of input"},
		{"truncated in a value", doc(okRec)[:80], "metadata.genesis_validators_root", "unexpected end of input"},
		{"truncated in data", doc(okRec)[:len(doc(okRec))-7], "data[0].signed_attestations[0].target_epoch", "unexpected end of input"},
		{"trailing data", doc(okRec) + `{}`, "", "unexpected data after the document"},
		{"trailing garbage", doc(okRec) + `x`, "", "unexpected data after the document"},
		{"top is array", `[]`, "", "expected an object, got an array"},
		{"top is string", `"x"`, "", "expected an object, got a string"},
		{"missing metadata", `{"data":[]}`, "metadata", "required field missing"},
		{"missing data", `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"` + rootA + `"}}`, "data", "required field missing"},
		{"unknown top field", `{"extra":1}`, "extra", "unknown field"},
		{"odd field name", `{"a b":1}`, `["a b"]`, "unknown field"},
		{"duplicate field", `{"data":[],"data":[]}`, "data", "more than once"},
		{"metadata not object", `{"metadata":[],"data":[]}`, "metadata", "expected an object, got an array"},
		{"version missing", `{"metadata":{"genesis_validators_root":"` + rootA + `"},"data":[]}`, "metadata.interchange_format_version", "required field missing"},
		{"version number", `{"metadata":{"interchange_format_version":5,"genesis_validators_root":"` + rootA + `"},"data":[]}`, "metadata.interchange_format_version", "expected a string, got a number"},
		{"version 4", `{"metadata":{"interchange_format_version":"4","genesis_validators_root":"` + rootA + `"},"data":[]}`, "metadata.interchange_format_version", `unsupported version "4"`},
		{"unknown metadata field", `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"` + rootA + `","x":"y"},"data":[]}`, "metadata.x", "unknown field"},
		{"root missing", `{"metadata":{"interchange_format_version":"5"},"data":[]}`, "metadata.genesis_validators_root", "required field missing"},
		{"root short", strings.Replace(doc(okRec), rootA, rootA[:64], 1), "metadata.genesis_validators_root", "32-byte hex"},
		{"root no prefix", strings.Replace(doc(okRec), rootA, "00"+rootA[2:], 1), "metadata.genesis_validators_root", "0x-prefixed"},
		{"root capital X", strings.Replace(doc(okRec), rootA, "0X"+rootA[2:], 1), "metadata.genesis_validators_root", "0x-prefixed"},
		{"root not hex", strings.Replace(doc(okRec), rootA, rootA[:65]+"g", 1), "metadata.genesis_validators_root", "hex"},
		{"data null", `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"` + rootA + `"},"data":null}`, "data", "expected an array, got null"},
		{"data object", `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"` + rootA + `"},"data":{}}`, "data", "expected an array, got an object"},
		{"record not object", doc(`1`), "data[0]", "expected an object, got a number"},
		{"pubkey missing", doc(`{"signed_blocks":[],"signed_attestations":[]}`), "data[0].pubkey", "required field missing"},
		{"pubkey null", doc(`{"pubkey":null,"signed_blocks":[],"signed_attestations":[]}`), "data[0].pubkey", "expected a string, got null"},
		{"pubkey short", strings.Replace(doc(okRec), keyA, keyA[:96], 1), "data[0].pubkey", "48-byte hex"},
		{"pubkey long", strings.Replace(doc(okRec), keyA, keyA+"00", 1), "data[0].pubkey", "48-byte hex"},
		{"pubkey not hex", strings.Replace(doc(okRec), keyA, keyA[:97]+"z", 1), "data[0].pubkey", "48-byte hex"},
		{"pubkey in second record", doc(okRec + `,{"pubkey":"0x12","signed_blocks":[],"signed_attestations":[]}`), "data[1].pubkey", "48-byte hex"},
		{"signed_blocks missing", doc(`{"pubkey":"` + keyA + `","signed_attestations":[]}`), "data[0].signed_blocks", "required field missing"},
		{"signed_attestations missing", doc(`{"pubkey":"` + keyA + `","signed_blocks":[]}`), "data[0].signed_attestations", "required field missing"},
		{"signed_blocks object", doc(`{"pubkey":"` + keyA + `","signed_blocks":{},"signed_attestations":[]}`), "data[0].signed_blocks", "expected an array, got an object"},
		{"unknown record field", doc(`{"pubkey":"` + keyA + `","signed_blocks":[],"signed_attestations":[],"index":"3"}`), "data[0].index", "unknown field"},
		{"block not object", doc(rec(`"1"`, ``)), "data[0].signed_blocks[0]", "expected an object, got a string"},
		{"slot missing", doc(rec(`{"signing_root":"`+sigR1+`"}`, ``)), "data[0].signed_blocks[0].slot", "required field missing"},
		{"slot number", doc(rec(`{"slot":1}`, ``)), "data[0].signed_blocks[0].slot", "expected a string, got a number"},
		{"slot null", doc(rec(`{"slot":null}`, ``)), "data[0].signed_blocks[0].slot", "expected a string, got null"},
		{"slot negative", doc(rec(`{"slot":"1"},{"slot":"-1"}`, ``)), "data[0].signed_blocks[1].slot", "not a decimal number"},
		{"slot exponent", doc(rec(`{"slot":"1e3"}`, ``)), "data[0].signed_blocks[0].slot", "not a decimal number"},
		{"slot space", doc(rec(`{"slot":" 1"}`, ``)), "data[0].signed_blocks[0].slot", "not a decimal number"},
		{"slot plus", doc(rec(`{"slot":"+1"}`, ``)), "data[0].signed_blocks[0].slot", "not a decimal number"},
		{"slot hex", doc(rec(`{"slot":"0x10"}`, ``)), "data[0].signed_blocks[0].slot", "not a decimal number"},
		{"slot empty", doc(rec(`{"slot":""}`, ``)), "data[0].signed_blocks[0].slot", "not a decimal number"},
		{"slot overflow", doc(rec(`{"slot":"18446744073709551616"}`, ``)), "data[0].signed_blocks[0].slot", "out of range"},
		{"block signing_root bad", doc(rec(`{"slot":"1","signing_root":"0x12"}`, ``)), "data[0].signed_blocks[0].signing_root", "32-byte hex"},
		{"block signing_root empty", doc(rec(`{"slot":"1","signing_root":""}`, ``)), "data[0].signed_blocks[0].signing_root", "empty string"},
		{"block signing_root number", doc(rec(`{"slot":"1","signing_root":0}`, ``)), "data[0].signed_blocks[0].signing_root", "expected a string, got a number"},
		{"block duplicate slot field", doc(rec(`{"slot":"1","slot":"2"}`, ``)), "data[0].signed_blocks[0].slot", "more than once"},
		{"block unknown field", doc(rec(`{"slot":"1","epoch":"0"}`, ``)), "data[0].signed_blocks[0].epoch", "unknown field"},
		{"source missing", doc(rec(``, `{"target_epoch":"2"}`)), "data[0].signed_attestations[0].source_epoch", "required field missing"},
		{"target missing", doc(rec(``, `{"source_epoch":"2"}`)), "data[0].signed_attestations[0].target_epoch", "required field missing"},
		{"target not decimal", doc(rec(``, strings.Repeat(`{"source_epoch":"1","target_epoch":"2"},`, 7)+`{"source_epoch":"1","target_epoch":"two"}`)), "data[0].signed_attestations[7].target_epoch", "not a decimal number"},
		{"source boolean", doc(rec(``, `{"source_epoch":true,"target_epoch":"2"}`)), "data[0].signed_attestations[0].source_epoch", "expected a string, got a boolean"},
		{"source greater than target", doc(rec(``, `{"source_epoch":"1","target_epoch":"2"},{"source_epoch":"8","target_epoch":"7"}`)), "data[0].signed_attestations[1]", "source_epoch 8 is greater than target_epoch 7"},
		{"attestation signing_root bad", doc(rec(``, `{"source_epoch":"1","target_epoch":"2","signing_root":"`+sigR1+`0"}`)), "data[0].signed_attestations[0].signing_root", "32-byte hex"},
		{"attestation unknown field", doc(rec(``, `{"source_epoch":"1","target_epoch":"2","pubkey":"x"}`)), "data[0].signed_attestations[0].pubkey", "unknown field"},
		{"attestation array", doc(rec(``, `[]`)), "data[0].signed_attestations[0]", "expected an object, got an array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", got)
			}
			if tt.path == "-" {
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("err = %v, want ErrTooLarge", err)
				}
				return
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("err = %T %v, want *Error", err, err)
			}
			if pe.Path != tt.path || !strings.Contains(pe.Msg, tt.msg) {
				t.Fatalf("err = %q (path %q), want path %q and message containing %q", err, pe.Path, tt.path, tt.msg)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	_, err := Parse([]byte(doc(rec(``, `{"source_epoch":"1","target_epoch":"x"}`))))
	want := `interchange: data[0].signed_attestations[0].target_epoch: not a decimal number: "x"`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

func TestParseLenient(t *testing.T) {
	upper := `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"` + strings.ToUpper(rootA[2:]) + `"},"data":[]}`
	upper = strings.Replace(upper, strings.ToUpper(rootA[2:]), "0x"+strings.ToUpper(rootA[2:]), 1)
	tests := []struct {
		name string
		in   string
		want []Record
	}{
		{"null lists", doc(`{"pubkey":"` + keyA + `","signed_blocks":null,"signed_attestations":null}`),
			[]Record{{Pubkey: keyA, SignedBlocks: []SignedBlock{}, SignedAttestations: []SignedAttestation{}}}},
		{"null signing root", doc(rec(`{"slot":"3","signing_root":null}`, `{"source_epoch":"1","target_epoch":"1","signing_root":null}`)),
			[]Record{{Pubkey: keyA, SignedBlocks: []SignedBlock{{Slot: 3}}, SignedAttestations: []SignedAttestation{{SourceEpoch: 1, TargetEpoch: 1}}}}},
		{"upper-case hex", doc(`{"pubkey":"0x` + strings.ToUpper(keyA[2:]) + `","signed_blocks":[{"slot":"3","signing_root":"0x` + strings.ToUpper(sigR1[2:]) + `"}],"signed_attestations":[]}`),
			[]Record{{Pubkey: keyA, SignedBlocks: []SignedBlock{{Slot: 3, SigningRoot: sigR1}}, SignedAttestations: []SignedAttestation{}}}},
		{"leading zeros and extremes", doc(rec(`{"slot":"007"},{"slot":"18446744073709551615"}`, `{"source_epoch":"0","target_epoch":"0"}`)),
			[]Record{{Pubkey: keyA, SignedBlocks: []SignedBlock{{Slot: 7}, {Slot: 1<<64 - 1}}, SignedAttestations: []SignedAttestation{{}}}}},
		{"duplicate pubkeys merged", doc(
			`{"pubkey":"` + keyA + `","signed_blocks":[{"slot":"10"},{"slot":"11"}],"signed_attestations":[{"source_epoch":"0","target_epoch":"2"}]},` +
				`{"pubkey":"` + keyB + `","signed_blocks":[],"signed_attestations":[]},` +
				`{"pubkey":"0x` + strings.ToUpper(keyA[2:]) + `","signed_blocks":[{"slot":"13"},{"slot":"12"},{"slot":"11"}],"signed_attestations":[{"source_epoch":"1","target_epoch":"3"}]}`),
			[]Record{
				{Pubkey: keyA, SignedBlocks: []SignedBlock{{Slot: 10}, {Slot: 11}, {Slot: 12}, {Slot: 13}},
					SignedAttestations: []SignedAttestation{{SourceEpoch: 0, TargetEpoch: 2}, {SourceEpoch: 1, TargetEpoch: 3}}},
				{Pubkey: keyB, SignedBlocks: []SignedBlock{}, SignedAttestations: []SignedAttestation{}},
			}},
		{"no data", `{"data":[],"metadata":{"genesis_validators_root":"` + rootA + `","interchange_format_version":"5"}}`, []Record{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustParse(t, tt.in)
			if got.Metadata.GenesisValidatorsRoot != rootA {
				t.Errorf("root = %s", got.Metadata.GenesisValidatorsRoot)
			}
			if !reflect.DeepEqual(got.Data, tt.want) {
				t.Fatalf("data:\n got %+v\nwant %+v", got.Data, tt.want)
			}
		})
	}
	if got := mustParse(t, upper); got.Metadata.GenesisValidatorsRoot != rootA {
		t.Fatalf("upper-case root not normalised: %s", got.Metadata.GenesisValidatorsRoot)
	}
}

func TestMarshalCanonical(t *testing.T) {
	out, err := mustParse(t, example).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"` + rootA + `"},"data":[` +
		`{"pubkey":"` + keyA + `","signed_blocks":[],"signed_attestations":[]},` +
		`{"pubkey":"` + keyB + `","signed_blocks":[{"slot":"69990"},{"slot":"70001","signing_root":"` + sigR1 + `"}],` +
		`"signed_attestations":[{"source_epoch":"2180","target_epoch":"2186"},{"source_epoch":"2180","target_epoch":"2187","signing_root":"` + sigR2 + `"}]}]}`
	if string(out) != want {
		t.Fatalf("Marshal:\n got %s\nwant %s", out, want)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, in := range []string{example, doc(rec(``, ``)), doc(rec(`{"slot":"0"}`, `{"source_epoch":"0","target_epoch":"18446744073709551615"}`))} {
		first := mustParse(t, in)
		out, err := first.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		second := mustParse(t, string(out))
		if !reflect.DeepEqual(first, second) {
			t.Fatalf("round trip changed the document:\n%+v\n%+v", first, second)
		}
		again, err := second.Marshal()
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("Marshal not stable (%v):\n%s\n%s", err, out, again)
		}
	}
}

func TestMarshalHandBuilt(t *testing.T) {
	i := &Interchange{
		Metadata: Metadata{InterchangeFormatVersion: "5", GenesisValidatorsRoot: strings.ToUpper(rootA[:2]) + rootA[2:]},
	}
	if _, err := i.Marshal(); err == nil {
		t.Fatal("0X prefix accepted")
	}
	i.Metadata.GenesisValidatorsRoot = "0x" + strings.ToUpper(rootA[2:])
	i.Data = []Record{{Pubkey: keyB}, {Pubkey: keyA, SignedBlocks: []SignedBlock{{Slot: 5}, {Slot: 5}}}}
	out, err := i.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"metadata":{"interchange_format_version":"5","genesis_validators_root":"` + rootA + `"},"data":[` +
		`{"pubkey":"` + keyA + `","signed_blocks":[{"slot":"5"}],"signed_attestations":[]},` +
		`{"pubkey":"` + keyB + `","signed_blocks":[],"signed_attestations":[]}]}`
	if string(out) != want {
		t.Fatalf("Marshal:\n got %s\nwant %s", out, want)
	}
	if i.Data[0].Pubkey != keyB || len(i.Data[1].SignedBlocks) != 2 || i.Metadata.GenesisValidatorsRoot == rootA {
		t.Fatal("Marshal modified its receiver")
	}

	bad := []struct {
		name, path string
		mod        func(*Interchange)
	}{
		{"version", "metadata.interchange_format_version", func(i *Interchange) { i.Metadata.InterchangeFormatVersion = "" }},
		{"pubkey", "data[1].pubkey", func(i *Interchange) { i.Data[1].Pubkey = "0x" }},
		{"signing root", "data[1].signed_blocks[0].signing_root", func(i *Interchange) { i.Data[1].SignedBlocks[0].SigningRoot = "0x0" }},
		{"source > target", "data[0].signed_attestations[0]", func(i *Interchange) {
			i.Data[0].SignedAttestations = []SignedAttestation{{SourceEpoch: 2, TargetEpoch: 1}}
		}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			c := &Interchange{Metadata: i.Metadata, Data: []Record{{Pubkey: keyB}, {Pubkey: keyA, SignedBlocks: []SignedBlock{{Slot: 5}}}}}
			tt.mod(c)
			_, err := c.Marshal()
			var pe *Error
			if !errors.As(err, &pe) || pe.Path != tt.path {
				t.Fatalf("err = %v, want *Error at %s", err, tt.path)
			}
		})
	}
	if _, err := (*Interchange)(nil).Marshal(); err == nil {
		t.Fatal("nil Marshal succeeded")
	}
}

func TestEncodingJSON(t *testing.T) {
	type envelope struct {
		Protection *Interchange `json:"protection"`
	}
	var e envelope
	if err := json.Unmarshal([]byte(`{"protection":`+example+`}`), &e); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(e.Protection, mustParse(t, example)) {
		t.Fatal("UnmarshalJSON differs from Parse")
	}
	out, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	canon, _ := e.Protection.Marshal()
	if string(out) != `{"protection":`+string(canon)+`}` {
		t.Fatalf("json.Marshal = %s", out)
	}
	if err := json.Unmarshal([]byte(`{"protection":{"metadata":{}}}`), &e); err == nil {
		t.Fatal("UnmarshalJSON accepted a bad document")
	}
}

func TestRead(t *testing.T) {
	if _, err := Read(strings.NewReader(example)); err != nil {
		t.Fatal(err)
	}
	big := io.MultiReader(strings.NewReader(strings.Repeat(" ", MaxSize)), strings.NewReader(example))
	if _, err := Read(big); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

// TestKeymanagerExample parses the example that the Keymanager API
// definition gives for its slashing_protection string, when the shared
// specs are present (as in CI).
func TestKeymanagerExample(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "specs", "keymanager-apis", "types", "slashing_protection.yaml"))
	if err != nil {
		t.Skipf("specs not available: %v", err)
	}
	var ex string
	for line := range strings.SplitSeq(string(b), "\n") {
		if s, ok := strings.CutPrefix(line, "example: '"); ok {
			ex = strings.ReplaceAll(strings.TrimSuffix(s, "'"), "''", "'")
		}
	}
	if ex == "" {
		t.Fatal("no example in slashing_protection.yaml")
	}
	i, err := Parse([]byte(ex))
	if err != nil {
		t.Fatalf("the Keymanager API example does not parse: %v", err)
	}
	if len(i.Data) != 1 {
		t.Fatalf("data = %+v", i.Data)
	}
	if err := i.Validate(i.Metadata.GenesisValidatorsRoot, []string{i.Data[0].Pubkey}); err != nil {
		t.Fatal(err)
	}
}
