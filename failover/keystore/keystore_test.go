package keystore

import (
	"strings"
	"testing"
)

// sample is shaped like the EIP-2335 test vector (scrypt), with its own values.
const sample = `{
  "crypto": {
    "kdf": {"function": "scrypt", "params": {"dklen": 32, "n": 262144, "p": 1, "r": 8, "salt": "d4e56740f876aef8c010b86a40d5f56745a118d0906a34e69aec8c0db1cb8fa3"}, "message": ""},
    "checksum": {"function": "sha256", "params": {}, "message": "d2217fe5f3e9a1e34581ef8a78f7c9928e436d36dacc5e846690a5581e8ea484"},
    "cipher": {"function": "aes-128-ctr", "params": {"iv": "264daa3f303d7259501c93d997d84fe6"}, "message": "06ae90d55fe0a6e9c5c3bc5b170827b2e5cce3929ed3f116c2811e6366dfe20f"}
  },
  "description": "test keystore",
  "pubkey": "9612d7a727c9d0a22e185a1c768478dfe919cada9266988cb32359c11f2b7b27f4ae4040902382ae2910c15e2b420d07",
  "path": "m/12381/60/3141592653/589793238",
  "uuid": "1d85ae20-35c5-4611-98e8-aa14a633906f",
  "version": 4
}`

func TestParse(t *testing.T) {
	k, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if k.Pubkey != "0x9612d7a727c9d0a22e185a1c768478dfe919cada9266988cb32359c11f2b7b27f4ae4040902382ae2910c15e2b420d07" {
		t.Fatalf("pubkey %s", k.Pubkey)
	}
	if k.UUID != "1d85ae20-35c5-4611-98e8-aa14a633906f" || k.Path != "m/12381/60/3141592653/589793238" || string(k.Raw) != sample {
		t.Fatalf("parsed %+v", k)
	}
}

func TestParseRefuses(t *testing.T) {
	cases := map[string]struct{ from, to, want string }{
		"version 3": {`"version": 4`, `"version": 3`, "want 4"},
		"no version": {`,
  "version": 4`, ``, "no version"},
		"short pubkey":   {`"pubkey": "9612`, `"pubkey": "12`, "48 bytes"},
		"not hex pubkey": {`"pubkey": "9612`, `"pubkey": "zz12`, "48 bytes"},
		"other kdf":      {`"function": "scrypt"`, `"function": "argon2"`, "kdf"},
		"other cipher":   {`"function": "aes-128-ctr"`, `"function": "aes-256-gcm"`, "cipher"},
		"empty secret":   {`"message": "06ae90d55fe0a6e9c5c3bc5b170827b2e5cce3929ed3f116c2811e6366dfe20f"`, `"message": ""`, "empty"},
		"no uuid":        {`"uuid": "1d85ae20-35c5-4611-98e8-aa14a633906f"`, `"uuid": ""`, "uuid"},
		"trailing": {`"version": 4
}`, `"version": 4
} {}`, "trailing"},
		"not json": {`{`, `[`, "not JSON"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			in := strings.Replace(sample, c.from, c.to, 1)
			if in == sample {
				t.Fatalf("the case changes nothing")
			}
			_, err := Parse([]byte(in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse = %v, want an error with %q", err, c.want)
			}
		})
	}
	if _, err := Parse(make([]byte, MaxSize+1)); err == nil {
		t.Fatal("oversized keystore accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(sample))
	f.Add([]byte(`{"version":4}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := Parse(b)
		if err != nil {
			return
		}
		if len(k.Pubkey) != 98 || !strings.HasPrefix(k.Pubkey, "0x") || k.UUID == "" {
			t.Fatalf("accepted a keystore without a usable identity: %+v", k)
		}
		again, err := Parse(k.Raw)
		if err != nil || again.Pubkey != k.Pubkey {
			t.Fatalf("reparse of accepted bytes: %v", err)
		}
	})
}
