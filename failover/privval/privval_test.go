package privval

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
)

// The testdata keys are throwaway keys made for these tests (see
// testdata/README.md); none has ever been a validator's.
const (
	fixtureBLS           = "testdata/key-bls.json"
	fixtureBLSCompressed = "testdata/key-bls-compressed.json"
	fixtureEd25519       = "testdata/key-ed25519.json"
	fixturePubkey        = "0x8706545c17d8e890017b1685c700854900f27c2704dd4ea434fcd96d97caa3c112d40504df540f2189ba4aaced9edd71"
)

func read(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// privOf digs the private key out of a key file the way an attacker
// reading output would have to recognize it.
func privOf(t testing.TB, file []byte) []byte {
	t.Helper()
	var w struct {
		PrivKey struct {
			Value string `json:"value"`
		} `json:"priv_key"`
	}
	if err := json.Unmarshal(file, &w); err != nil {
		t.Fatal(err)
	}
	b, err := base64.StdEncoding.DecodeString(w.PrivKey.Value)
	if err != nil || len(b) == 0 {
		t.Fatalf("fixture has no private key: %v", err)
	}
	if len(b) == 64 {
		// Ed25519: seed and public key; only the seed is secret.
		return b[:32]
	}
	return b
}

// forms are the ways a private key could show up in text.
func forms(priv []byte) []string {
	return []string{
		base64.StdEncoding.EncodeToString(priv),
		base64.RawStdEncoding.EncodeToString(priv),
		base64.URLEncoding.EncodeToString(priv),
		hex.EncodeToString(priv),
		strings.ToUpper(hex.EncodeToString(priv)),
		fmt.Sprint(priv), // [88 129 117 …]
		fmt.Sprintf("%q", priv),
		string(priv),
	}
}

func assertNoSecret(t *testing.T, what, out string, priv []byte) {
	t.Helper()
	for _, f := range forms(priv) {
		if strings.Contains(out, f) {
			t.Errorf("%s shows the private key (as %.20q…):\n%s", what, f, out)
		}
	}
	// A window of 8 raw bytes would be enough to start brute-forcing.
	for i := 0; i+8 <= len(priv); i++ {
		if bytes.Contains([]byte(out), priv[i:i+8]) {
			t.Errorf("%s contains raw bytes of the private key", what)
			break
		}
	}
}

func TestParseKeyFixtures(t *testing.T) {
	for _, c := range []struct {
		path      string
		typ       KeyType
		pubkey    string
		addresses int
	}{
		{fixtureBLS, BLS12381, fixturePubkey, 2},
		{fixtureBLSCompressed, BLS12381, fixturePubkey, 2},
		{fixtureEd25519, Ed25519, "0x67ad693209b25e58ce5a26d974571ed2b5196fc2bcbf03804d7378cd65964346", 1},
	} {
		t.Run(c.path, func(t *testing.T) {
			raw := read(t, c.path)
			k, err := ParseKey(raw)
			if err != nil {
				t.Fatal(err)
			}
			if k.Type != c.typ || k.Pubkey != c.pubkey {
				t.Fatalf("got %s %s, want %s %s", k.Type, k.Pubkey, c.typ, c.pubkey)
			}
			if got := k.Addresses(); len(got) != c.addresses || got[0] != k.Address {
				t.Fatalf("addresses %v (file's %s first, %d of them)", got, k.Address, c.addresses)
			}
			// File rebuilds the file byte for byte (CometBFT's own indented
			// layout), so the standby gets what the approver has.
			if got := k.File(); !bytes.Equal(append(got, '\n'), raw) {
				t.Fatalf("File() differs from the file read:\n%s\n---\n%s", got, raw)
			}
			again, err := ParseKey(k.File())
			if err != nil || again.Pubkey != k.Pubkey || again.Address != k.Address || !bytes.Equal(again.File(), k.File()) {
				t.Fatalf("reparse of File(): %v", err)
			}
		})
	}
	// Both BLS encodings are the same key with each other's address among
	// their candidates: commits may carry either.
	a, _ := ParseKey(read(t, fixtureBLS))
	b, _ := ParseKey(read(t, fixtureBLSCompressed))
	if !slices.Equal(a.Addresses(), []string{b.Addresses()[1], b.Addresses()[0]}) {
		t.Fatalf("uncompressed %v vs compressed %v", a.Addresses(), b.Addresses())
	}
}

func TestParseKeyRefuses(t *testing.T) {
	good := read(t, fixtureBLS)
	priv := privOf(t, good)
	other, err := NewKey(BLS12381, mustHex(t, "47b8192d77bf871b62e87859d653922725724a5c031afeabc60bcef5ff665138"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(good, &doc); err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		_ = json.Unmarshal(good, &m)
		f(m)
		b, _ := json.Marshal(m)
		return b
	}
	sub := func(m map[string]any, k string) map[string]any { return m[k].(map[string]any) }
	b64 := base64.StdEncoding.EncodeToString
	var otherDoc map[string]any
	_ = json.Unmarshal(other.File(), &otherDoc)
	cases := []struct {
		name, want string
		file       []byte
	}{
		{"not JSON", "not valid JSON", []byte("{\"address\": oops}")},
		{"truncated", "truncated JSON", good[:len(good)/2]},
		{"an array", "where an object belongs", []byte(`[1,2]`)},
		{"null", "not a JSON object", []byte(`null`)},
		{"trailing data", "trailing data", append(append([]byte{}, good...), []byte(`{}`)...)},
		{"no address", "no address", edit(func(m map[string]any) { delete(m, "address") })},
		{"address not a string", "address must be a string", edit(func(m map[string]any) { m["address"] = 7 })},
		{"short address", "is not 20 bytes of hex", edit(func(m map[string]any) { m["address"] = "ABCD" })},
		{"another key's address", "is not the address of this key", edit(func(m map[string]any) { m["address"] = other.Address })},
		{"no pub_key", "no pub_key", edit(func(m map[string]any) { delete(m, "pub_key") })},
		// CometBFT looks keys up exactly; so does ParseKey.
		{"Pub_Key spelled differently", "no pub_key", edit(func(m map[string]any) { m["Pub_Key"] = m["pub_key"]; delete(m, "pub_key") })},
		{"secp256k1", "not a known public key type", edit(func(m map[string]any) { sub(m, "pub_key")["type"] = "tendermint/PubKeySecp256k1" })},
		{"private type in pub_key", "not a known public key type", edit(func(m map[string]any) { sub(m, "pub_key")["type"] = BLSPrivKeyName })},
		{"unknown private type", "not a known private key type", edit(func(m map[string]any) { sub(m, "priv_key")["type"] = "cometbft/PrivKeySecp256k1eth" })},
		{"halves of different algorithms", "different algorithms", edit(func(m map[string]any) { sub(m, "priv_key")["type"] = Ed25519PrivKeyName })},
		{"pub_key not base64", "pub_key.value is not base64", edit(func(m map[string]any) { sub(m, "pub_key")["value"] = "!!" })},
		{"priv_key not base64", "priv_key.value is not base64", edit(func(m map[string]any) { sub(m, "priv_key")["value"] = b64(priv)[:20] + "!" })},
		{"pub_key 47 bytes", "48 (compressed) or 96 (uncompressed)", edit(func(m map[string]any) { sub(m, "pub_key")["value"] = b64(make([]byte, 47)) })},
		{"pub_key off the curve", "not a point on the BLS12-381 G1 curve", edit(func(m map[string]any) {
			p, _ := base64.StdEncoding.DecodeString(sub(m, "pub_key")["value"].(string))
			p[95] ^= 1
			sub(m, "pub_key")["value"] = b64(p)
		})},
		{"priv_key 31 bytes", "private key is 32 bytes, this one is 31", edit(func(m map[string]any) { sub(m, "priv_key")["value"] = b64(priv[:31]) })},
		{"priv_key zero", "not a scalar in [1, r)", edit(func(m map[string]any) { sub(m, "priv_key")["value"] = b64(make([]byte, 32)) })},
		{"priv_key above r", "not a scalar in [1, r)", edit(func(m map[string]any) { sub(m, "priv_key")["value"] = b64(bytesFF(32)) })},
		{"another validator's private key", "priv_key does not belong to pub_key", edit(func(m map[string]any) { m["priv_key"] = otherDoc["priv_key"] })},
		{"another validator's public key and address", "priv_key does not belong to pub_key", edit(func(m map[string]any) {
			m["pub_key"], m["address"] = otherDoc["pub_key"], otherDoc["address"]
		})},
		{"too large", "more than", append(bytes.Repeat([]byte(" "), MaxKeyFileSize), good...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseKey(c.file)
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("error %v wraps neither ErrInvalid nor ErrTooLarge", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
			assertNoSecret(t, "error", err.Error(), priv)
			assertNoSecret(t, "error", fmt.Sprintf("%+v %#v", err, err), priv)
		})
	}

	// Ed25519: the 64-byte private key carries the public key too; both
	// halves must agree.
	ed := read(t, fixtureEd25519)
	var m map[string]any
	_ = json.Unmarshal(ed, &m)
	p, _ := base64.StdEncoding.DecodeString(m["priv_key"].(map[string]any)["value"].(string))
	p[63] ^= 1
	m["priv_key"].(map[string]any)["value"] = b64(p)
	bad, _ := json.Marshal(m)
	if _, err := ParseKey(bad); err == nil || !strings.Contains(err.Error(), "do not match") {
		t.Fatalf("Ed25519 with mismatched halves: %v", err)
	}
}

// TestKeyNeverShowsPrivate: no fmt verb, no nesting, no slog handler, no
// JSON encoding shows the private key; only File does.
func TestKeyNeverShowsPrivate(t *testing.T) {
	for _, path := range []string{fixtureBLS, fixtureBLSCompressed, fixtureEd25519} {
		raw := read(t, path)
		priv := privOf(t, raw)
		k, err := ParseKey(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(privOf(t, k.File()), priv) {
			t.Fatal("File() lost the private key; the checks below would prove nothing")
		}
		type exported struct{ Key Key }
		type unexported struct{ k Key }
		type ptr struct{ k *Key }
		var outs []string
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%p", "%t"} {
			for _, arg := range []any{k, &k, exported{k}, &exported{k}, unexported{k}, &unexported{k}, ptr{&k},
				&ptr{&k}, []Key{k}, map[string]Key{"k": k}, []any{k}, []unexported{{k}}} {
				outs = append(outs, fmt.Sprintf(verb, arg))
			}
		}
		outs = append(outs, fmt.Sprint(k), fmt.Sprintln(k, &k), k.String(), k.GoString())
		var logs bytes.Buffer
		slog.New(slog.NewTextHandler(&logs, nil)).Info("key", "k", k, "p", &k, "u", unexported{k})
		slog.New(slog.NewJSONHandler(&logs, nil)).Info("key", "k", k, "p", &k, "e", exported{k})
		outs = append(outs, logs.String())
		for _, v := range []any{k, &k, exported{k}, []Key{k}} {
			j, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			outs = append(outs, string(j))
		}
		all := strings.Join(outs, "\n")
		assertNoSecret(t, path, all, priv)
		if !strings.Contains(all, k.Pubkey) || !strings.Contains(all, k.Address) {
			t.Fatalf("%s: output does not even name the key:\n%s", path, all[:200])
		}
	}
}

func TestNewKey(t *testing.T) {
	for _, typ := range []KeyType{BLS12381, Ed25519} {
		sk := make([]byte, 32)
		if _, err := rand.Read(sk); err != nil {
			t.Fatal(err)
		}
		sk[0] &= 0x3f // below r for BLS
		k, err := NewKey(typ, sk)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseKey(k.File())
		if err != nil {
			t.Fatalf("%s: parse of a new key's file: %v", typ, err)
		}
		if again.Pubkey != k.Pubkey || again.Address != k.Address || again.Type != typ {
			t.Fatalf("%s: %v vs %v", typ, again, k)
		}
	}
	if _, err := NewKey("secp256k1", make([]byte, 32)); err == nil {
		t.Fatal("unknown type accepted")
	}
	if _, err := NewKey(Ed25519, make([]byte, 31)); err == nil {
		t.Fatal("short Ed25519 seed accepted")
	}
	if (Key{}).File() != nil || (Key{}).Addresses() != nil {
		t.Fatal("the zero Key has a file or addresses")
	}
}

// RPC replies show public keys as {type, value}; both BLS encodings and
// the fleet's 0x form come out as the key's Pubkey.
func TestParsePubKey(t *testing.T) {
	k, _ := ParseKey(read(t, fixtureBLS))
	var w struct {
		PubKey struct{ Type, Value string } `json:"pub_key"`
	}
	_ = json.Unmarshal(read(t, fixtureBLS), &w)
	p, err := ParsePubKey(w.PubKey.Type, w.PubKey.Value)
	if err != nil || p.Pubkey != k.Pubkey || !slices.Equal(p.Addresses, k.Addresses()) {
		t.Fatalf("uncompressed: %+v, %v", p, err)
	}
	_ = json.Unmarshal(read(t, fixtureBLSCompressed), &w)
	if p, err := ParsePubKey(w.PubKey.Type, w.PubKey.Value); err != nil || p.Pubkey != k.Pubkey {
		t.Fatalf("compressed: %+v, %v", p, err)
	}
	for _, s := range []string{fixturePubkey, strings.ToUpper(fixturePubkey[2:])} {
		if p, err := NormalizePubkey(BLS12381, s); err != nil || p.Pubkey != k.Pubkey {
			t.Fatalf("NormalizePubkey(%s): %+v, %v", s, p, err)
		}
	}
	for _, c := range []struct{ typ, value string }{
		{BLSPrivKeyName, w.PubKey.Value},
		{"tendermint/PubKeySecp256k1", w.PubKey.Value},
		{BLSPubKeyName, "not base64"},
		{Ed25519PubKeyName, w.PubKey.Value},
	} {
		if _, err := ParsePubKey(c.typ, c.value); err == nil {
			t.Errorf("ParsePubKey(%s, %.10s…) accepted", c.typ, c.value)
		}
	}
	if _, err := NormalizePubkey(BLS12381, "0xzz"); err == nil {
		t.Error("non-hex accepted")
	}
}
