package privval

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func addTestdata(f *testing.F, glob string) {
	paths, err := filepath.Glob(filepath.Join("testdata", glob))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seeds %s: %v", glob, err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParseKey: ParseKey never panics, fails only with its sentinels, and
// what it accepts is a consistent key whose File reparses to the same key
// and whose printed forms never carry the private key.
func FuzzParseKey(f *testing.F) {
	addTestdata(f, "key-*.json")
	f.Add([]byte(`{"address":"","pub_key":{"type":"cometbft/PubKeyBls12_381","value":""},"priv_key":{"type":"cometbft/PrivKeyBls12_381","value":""}}`))
	f.Add([]byte(`{"address":"00","pub_key":null,"priv_key":{"type":"tendermint/PrivKeyEd25519","value":"AA=="},"address":"11"}`))
	f.Add([]byte(`{"pub_key":{"type":"tendermint/PubKeyEd25519","value":"Z61pMgmyXljOWibZdFce0rUZb8K8vwOATXN4zWWWQ0Y="}}`))
	f.Add([]byte(`[[[[{}]]]]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKey(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %T %v wraps no sentinel", err, err)
			}
			return
		}
		if k.Type != BLS12381 && k.Type != Ed25519 {
			t.Fatalf("accepted type %q", k.Type)
		}
		if _, err := NormalizePubkey(k.Type, k.Pubkey); err != nil {
			t.Fatalf("accepted pubkey %s does not normalize: %v", k.Pubkey, err)
		}
		again, err := ParseKey(k.File())
		if err != nil {
			t.Fatalf("File() of an accepted key does not parse: %v\n%s", err, k.File())
		}
		if again.Pubkey != k.Pubkey || again.Address != k.Address || !bytes.Equal(again.File(), k.File()) {
			t.Fatalf("reparse changed the key: %v vs %v", again, k)
		}
		priv := k.priv()
		if k.Type == Ed25519 {
			priv = priv[:32]
		}
		out := fmt.Sprintf("%v %+v %#v %s %q %x", k, k, k, k, k, k)
		for _, form := range []string{base64.StdEncoding.EncodeToString(priv), fmt.Sprintf("%x", priv), fmt.Sprint(priv)} {
			if strings.Contains(out, form) {
				t.Fatalf("printed key shows its private key: %s", out)
			}
		}
	})
}

// FuzzParseState: ParseState never panics, fails only with its sentinels,
// round-trips through File, and Raise never lowers an accepted state.
func FuzzParseState(f *testing.F) {
	addTestdata(f, "state-*.json")
	f.Add([]byte(`{"height":"9223372036854775807","round":2147483647,"step":3}`))
	f.Add([]byte(`{"height":"1","round":0,"step":3,"signature":null,"signbytes":""}`))
	f.Add([]byte(`{"height":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseState(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %T %v wraps no sentinel", err, err)
			}
			return
		}
		again, err := ParseState(s.File())
		if err != nil {
			t.Fatalf("File() of an accepted state does not parse: %v\n%s", err, s.File())
		}
		if Compare(again, s) != 0 || !bytes.Equal(again.Signature, s.Signature) || !bytes.Equal(again.SignBytes, s.SignBytes) {
			t.Fatalf("round trip changed %+v into %+v", s, again)
		}
		for _, h := range []int64{0, s.Height, s.Height + 1} {
			if r := Raise(s, h); Compare(r, s) < 0 || Compare(r, State{Height: h, Round: MaxRound, Step: StepPrecommit}) < 0 {
				t.Fatalf("Raise(%v, %d) = %v", s, h, r)
			}
		}
	})
}
