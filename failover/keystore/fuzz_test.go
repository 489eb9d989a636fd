package keystore

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// specExample is the keystore example of the Keymanager API definition
// (shared/specs/keymanager-apis/types/keystore.yaml, CC0): pbkdf2, with the
// pubkey 0x-prefixed as that API writes it.
const specExample = `{"version":4,"uuid":"9f75a3fa-1e5a-49f9-be3d-f5a19779c6fa","path":"m/12381/3600/0/0/0","pubkey":"0x93247f2209abcacf57b75a51dafae777f9dd38bc7053d1af526f220a7489a6d3a2753e5f3e8b1cfe39b56f43611df74a","crypto":{"kdf":{"function":"pbkdf2","params":{"dklen":32,"c":262144,"prf":"hmac-sha256","salt":"8ff8f22ef522a40f99c6ce07fdcfc1db489d54dfbc6ec35613edf5d836fa1407"},"message":""},"checksum":{"function":"sha256","params":{},"message":"9678a69833d2576e3461dd5fa80f6ac73935ae30d69d07659a709b3cd3eddbe3"},"cipher":{"function":"aes-128-ctr","params":{"iv":"31b69f0ac97261e44141b26aa0da693f"},"message":"e8228bafec4fcbaca3b827e586daad381d53339155b034e5eaae676b715ab05e"}}}`

// FuzzParseUnambiguous: a keystore Parse accepts is one JSON document that
// any validator client reads the same way — valid JSON with nothing after
// it, no member named twice in any object (also not in another letter
// case, which encoding/json would fold together and a strict reader would
// not), and the pubkey Parse reports is the one under the exact "pubkey"
// member. Otherwise the agent could check one key against the grant while
// the validator client imports another.
func FuzzParseUnambiguous(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(specExample))
	f.Add([]byte(strings.Replace(specExample, `"pubkey":"0x`, `"pubkey":"0X`, 1)))
	f.Add([]byte(strings.Replace(sample, `"version": 4`, `"version": 4.0`, 1)))
	f.Add([]byte(strings.Replace(specExample, `"path":"m/12381/3600/0/0/0"`, `"path":null`, 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := Parse(b)
		if err != nil {
			return
		}
		if !json.Valid(b) {
			t.Fatalf("accepted bytes that are not one JSON document: %q", b)
		}
		top, err := strictObject(b)
		if err != nil {
			t.Fatalf("accepted an ambiguous keystore (%v): %q", err, b)
		}
		var pk string
		if err := json.Unmarshal(top["pubkey"], &pk); err != nil {
			t.Fatalf("no exact pubkey member: %v", err)
		}
		if n, err := normalizePubkey(pk); err != nil || n != k.Pubkey {
			t.Fatalf("Parse reports %s, the pubkey member says %q", k.Pubkey, pk)
		}
		crypto, err := strictObject(top["crypto"])
		if err != nil {
			t.Fatalf("accepted an ambiguous crypto section (%v): %q", err, b)
		}
		for _, m := range []string{"kdf", "checksum", "cipher"} {
			if _, err := strictObject(crypto[m]); err != nil {
				t.Fatalf("accepted an ambiguous crypto.%s (%v): %q", m, err, b)
			}
		}
		if again, err := Parse(k.Raw); err != nil || again.Pubkey != k.Pubkey || !bytes.Equal(again.Raw, b) {
			t.Fatalf("reparse of accepted bytes: %v", err)
		}
	})
}

// strictObject reads one JSON object's members by their exact names,
// refusing a name that repeats, exactly or in another letter case.
func strictObject(b []byte) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, errString("not an object")
	}
	out := map[string]json.RawMessage{}
	folded := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name := tok.(string)
		if folded[strings.ToLower(name)] {
			return nil, errString("member " + name + " named twice")
		}
		folded[strings.ToLower(name)] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out[name] = v
	}
	return out, nil
}

type errString string

func (e errString) Error() string { return string(e) }
