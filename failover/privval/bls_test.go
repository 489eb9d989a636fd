package privval

import (
	"crypto/rand"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestG1Group(t *testing.T) {
	g := g1Point{x: g1X, y: g1Y}
	if !onCurve(g.x, g.y) {
		t.Fatal("generator is not on y² = x³ + 4")
	}
	if !g1Mul(g, groupR).inf {
		t.Fatal("r·G is not the point at infinity: r or G is wrong")
	}
	minus := g1Mul(g, new(big.Int).Sub(groupR, big.NewInt(1)))
	if minus.inf || minus.x.Cmp(g.x) != 0 || new(big.Int).Add(minus.y, g.y).Cmp(fieldP) != 0 {
		t.Fatal("(r-1)·G is not -G")
	}
	// Doubling and adding agree: 3G = 2G + G = G + G + G.
	three := g1Mul(g, big.NewInt(3))
	if !three.equal(g1Add(g1Double(g), g)) || !three.equal(g1Add(g1Add(g, g), g)) {
		t.Fatal("3G differs between doubling and adding")
	}
	if !g1Add(g, g1Point{x: g.x, y: new(big.Int).Sub(fieldP, g.y)}).inf {
		t.Fatal("G + (-G) is not infinity")
	}
}

// Known answers: the compressed generator (secret 1) and the three secret
// keys of the Ethereum consensus-spec BLS tests with their public keys.
func TestBLSKnownAnswers(t *testing.T) {
	one := make([]byte, 32)
	one[31] = 1
	for _, c := range []struct{ sk, pk string }{
		{hex.EncodeToString(one), "97f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb"},
		{"263dbd792f5b1be47ed85f8938c0f29586af0d3ac7b977f21c278fe1462040e3", "a491d1b0ecd9bb917989f0e74f0dea0422eac4a873e5e2644f368dffb9a6e20fd6e10c1b77654d067c0618f6e5a7f79a"},
		{"47b8192d77bf871b62e87859d653922725724a5c031afeabc60bcef5ff665138", "b301803f8b5ac4a1133581fc676dfedc60d891dd5fa99028805e5ea5b08d3491af75d0707adab3b70c6a6a580217bf81"},
		{"328388aff0d4a5b7dc9205abd374e7e98f3cd9f3418edb4eafda5fb16473d216", "b53d21a4cfd562c469cc81514d4ce5a6b577d8403d32a394dc265dd190b47fa9f829fdd7963afdf972e5e77854051f6f"},
	} {
		p, err := blsPublicFromPrivate(mustHex(t, c.sk))
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(p.compress()); got != c.pk {
			t.Errorf("secret %s…: public key %s, want %s", c.sk[:8], got, c.pk)
		}
		q, err := decodeG1(mustHex(t, c.pk))
		if err != nil || !q.equal(p) {
			t.Errorf("decompressing %s…: %v", c.pk[:8], err)
		}
	}
}

func TestG1EncodingRoundTrip(t *testing.T) {
	for i := 0; i < 20; i++ {
		k, err := rand.Int(rand.Reader, groupR)
		if err != nil {
			t.Fatal(err)
		}
		if k.Sign() == 0 {
			continue
		}
		p, err := blsPublicFromPrivate(k.FillBytes(make([]byte, 32)))
		if err != nil {
			t.Fatal(err)
		}
		for _, enc := range [][]byte{p.compress(), p.uncompressed()} {
			q, err := decodeG1(enc)
			if err != nil {
				t.Fatalf("decode %x: %v", enc, err)
			}
			if !q.equal(p) {
				t.Fatalf("decode(encode(P)) != P for %x", enc)
			}
		}
	}
}

func TestDecodeG1Refuses(t *testing.T) {
	g := g1Point{x: g1X, y: g1Y}
	comp, unc := g.compress(), g.uncompressed()
	mut := func(b []byte, f func([]byte)) []byte { c := append([]byte(nil), b...); f(c); return c }
	cases := map[string][]byte{
		"empty":                        nil,
		"47 bytes":                     comp[:47],
		"infinity":                     append([]byte{0xc0}, make([]byte, 47)...),
		"compressed flag on 96 bytes":  mut(unc, func(b []byte) { b[0] |= flagCompressed }),
		"no compressed flag, 48 bytes": mut(comp, func(b []byte) { b[0] &^= flagCompressed }),
		"sign flag on uncompressed":    mut(unc, func(b []byte) { b[0] |= flagSign }),
		"y off the curve":              mut(unc, func(b []byte) { b[95] ^= 1 }),
		"x at or above p":              append([]byte{0x80 | 0x1f}, bytesFF(47)...),
	}
	// An x with no square root: x = 1 gives 5, which is not a square mod p
	// exactly when the decoder must refuse; find such an x by trying.
	for x := int64(1); x < 50; x++ {
		if new(big.Int).Exp(rhs(big.NewInt(x)), new(big.Int).Rsh(new(big.Int).Sub(fieldP, big.NewInt(1)), 1), fieldP).Cmp(big.NewInt(1)) != 0 {
			b := fp48(big.NewInt(x))
			b[0] |= flagCompressed
			cases["x with no y"] = b
			break
		}
	}
	if _, ok := cases["x with no y"]; !ok {
		t.Fatal("no non-residue found below 50")
	}
	for name, b := range cases {
		if _, err := decodeG1(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func bytesFF(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 0xff
	}
	return b
}

func TestBLSPrivateRange(t *testing.T) {
	for name, sk := range map[string][]byte{
		"zero":    make([]byte, 32),
		"r":       groupR.FillBytes(make([]byte, 32)),
		"all ff":  bytesFF(32),
		"31 byte": make([]byte, 31),
	} {
		if _, err := blsPublicFromPrivate(sk); err == nil {
			t.Errorf("%s: accepted as a secret key", name)
		}
	}
	below := new(big.Int).Sub(groupR, big.NewInt(1)).FillBytes(make([]byte, 32))
	if _, err := blsPublicFromPrivate(below); err != nil {
		t.Errorf("r-1 refused: %v", err)
	}
}
