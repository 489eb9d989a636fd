package privval

import (
	"errors"
	"math/big"
)

// BLS12-381 G1 (y² = x³ + 4 over Fp), just enough of it to read and check
// public keys: point (de)compression in the ZCash serialization that blst,
// Ethereum and beacond all use, and scalar multiplication of the generator
// to check that a key file's private key is the one its public key claims.
//
// CometBFT's FilePV throws away the file's pub_key and address on load and
// derives both from priv_key, so the key that will sign is the one derived
// here, not the one written in the file. Comparing the file's pub_key with
// fleet[].pubkeys without this check could approve a file whose private key
// belongs to another validator.
//
// Not constant time: it runs once per key move on the approver's machine,
// never in a loop an attacker can time.

var (
	fieldP, _  = new(big.Int).SetString("1a0111ea397fe69a4b1ba7b6434bacd764774b84f38512bf6730d2a0f6b0f6241eabfffeb153ffffb9feffffffffaaab", 16)
	groupR, _  = new(big.Int).SetString("73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001", 16)
	g1X, _     = new(big.Int).SetString("17f1d3a73197d7942695638c4fa9ac0fc3688c4f9774b905a14e3a3f171bac586c55e83ff97a1aeffb3af00adb22c6bb", 16)
	g1Y, _     = new(big.Int).SetString("08b3f481e3aaa0f1a09e30ed741d8ae4fcf5e095d5d00af600db18cb2c04b3edd03cc744a2888ae40caa232946c5e7e1", 16)
	curveB     = big.NewInt(4)
	halfP      = new(big.Int).Rsh(fieldP, 1)                                  // (p-1)/2: y above it is "lexicographically largest"
	sqrtExp    = new(big.Int).Rsh(new(big.Int).Add(fieldP, big.NewInt(1)), 2) // p ≡ 3 (mod 4), so √a = a^((p+1)/4)
	errNotOnG1 = errors.New("not a point on the BLS12-381 G1 curve")
)

const (
	blsCompressedSize   = 48
	blsUncompressedSize = 96
	blsPrivSize         = 32
	flagCompressed      = 0x80
	flagInfinity        = 0x40
	flagSign            = 0x20
)

// g1Point is an affine point; inf marks the point at infinity.
type g1Point struct {
	x, y *big.Int
	inf  bool
}

func onCurve(x, y *big.Int) bool {
	lhs := new(big.Int).Mul(y, y)
	lhs.Mod(lhs, fieldP)
	return lhs.Cmp(rhs(x)) == 0
}

// rhs is x³ + 4 mod p.
func rhs(x *big.Int) *big.Int {
	r := new(big.Int).Mul(x, x)
	r.Mul(r, x)
	r.Add(r, curveB)
	return r.Mod(r, fieldP)
}

func g1Add(a, b g1Point) g1Point {
	switch {
	case a.inf:
		return b
	case b.inf:
		return a
	}
	if a.x.Cmp(b.x) == 0 {
		if a.y.Cmp(b.y) == 0 && a.y.Sign() != 0 {
			return g1Double(a)
		}
		return g1Point{inf: true}
	}
	num := new(big.Int).Sub(b.y, a.y)
	den := new(big.Int).Sub(b.x, a.x)
	den.Mod(den, fieldP)
	den.ModInverse(den, fieldP)
	l := num.Mul(num, den)
	l.Mod(l, fieldP)
	return chord(l, a, b.x)
}

func g1Double(a g1Point) g1Point {
	if a.inf || a.y.Sign() == 0 {
		return g1Point{inf: true}
	}
	num := new(big.Int).Mul(a.x, a.x)
	num.Mul(num, big.NewInt(3))
	den := new(big.Int).Lsh(a.y, 1)
	den.Mod(den, fieldP)
	den.ModInverse(den, fieldP)
	l := num.Mul(num, den)
	l.Mod(l, fieldP)
	return chord(l, a, a.x)
}

// chord finishes addition or doubling given the slope l through a and a
// second point with x-coordinate x2.
func chord(l *big.Int, a g1Point, x2 *big.Int) g1Point {
	x3 := new(big.Int).Mul(l, l)
	x3.Sub(x3, a.x)
	x3.Sub(x3, x2)
	x3.Mod(x3, fieldP)
	y3 := new(big.Int).Sub(a.x, x3)
	y3.Mul(y3, l)
	y3.Sub(y3, a.y)
	y3.Mod(y3, fieldP)
	return g1Point{x: x3, y: y3}
}

func g1Mul(p g1Point, k *big.Int) g1Point {
	acc := g1Point{inf: true}
	for i := k.BitLen() - 1; i >= 0; i-- {
		acc = g1Double(acc)
		if k.Bit(i) == 1 {
			acc = g1Add(acc, p)
		}
	}
	return acc
}

// blsPublicFromPrivate derives the G1 public key of a 32-byte big-endian
// secret scalar, which must be in [1, r).
func blsPublicFromPrivate(priv []byte) (g1Point, error) {
	if len(priv) != blsPrivSize {
		return g1Point{}, errors.New("BLS12-381 private key must be 32 bytes")
	}
	k := new(big.Int).SetBytes(priv)
	if k.Sign() == 0 || k.Cmp(groupR) >= 0 {
		return g1Point{}, errors.New("BLS12-381 private key is not a scalar in [1, r)")
	}
	return g1Mul(g1Point{x: g1X, y: g1Y}, k), nil
}

func fp48(v *big.Int) []byte {
	b := make([]byte, 48)
	return v.FillBytes(b)
}

func (p g1Point) compress() []byte {
	b := fp48(p.x)
	b[0] |= flagCompressed
	if p.y.Cmp(halfP) > 0 {
		b[0] |= flagSign
	}
	return b
}

func (p g1Point) uncompressed() []byte {
	return append(fp48(p.x), fp48(p.y)...)
}

// decodeG1 reads a compressed (48-byte) or uncompressed (96-byte) public
// key and checks that it is a finite point on the curve. It does not check
// subgroup membership; callers that hold the private key compare with the
// derived point instead, which implies it.
func decodeG1(b []byte) (g1Point, error) {
	switch len(b) {
	case blsCompressedSize, blsUncompressedSize:
	default:
		return g1Point{}, errors.New("BLS12-381 public key must be 48 (compressed) or 96 (uncompressed) bytes")
	}
	flags := b[0] & (flagCompressed | flagInfinity | flagSign)
	if flags&flagInfinity != 0 {
		return g1Point{}, errors.New("BLS12-381 public key is the point at infinity")
	}
	compressed := flags&flagCompressed != 0
	if compressed != (len(b) == blsCompressedSize) {
		return g1Point{}, errors.New("BLS12-381 public key: compression flag does not match its length")
	}
	xb := append([]byte{b[0] &^ (flagCompressed | flagInfinity | flagSign)}, b[1:48]...)
	x := new(big.Int).SetBytes(xb)
	if x.Cmp(fieldP) >= 0 {
		return g1Point{}, errNotOnG1
	}
	if !compressed {
		if flags&flagSign != 0 {
			return g1Point{}, errors.New("BLS12-381 public key: sign flag set on an uncompressed point")
		}
		y := new(big.Int).SetBytes(b[48:])
		if y.Cmp(fieldP) >= 0 || !onCurve(x, y) {
			return g1Point{}, errNotOnG1
		}
		return g1Point{x: x, y: y}, nil
	}
	y2 := rhs(x)
	y := new(big.Int).Exp(y2, sqrtExp, fieldP)
	if new(big.Int).Mod(new(big.Int).Mul(y, y), fieldP).Cmp(y2) != 0 {
		return g1Point{}, errNotOnG1
	}
	if (y.Cmp(halfP) > 0) != (flags&flagSign != 0) {
		if y.Sign() == 0 {
			return g1Point{}, errors.New("BLS12-381 public key: sign flag set on a point with y = 0")
		}
		y.Sub(fieldP, y)
	}
	return g1Point{x: x, y: y}, nil
}

func (p g1Point) equal(q g1Point) bool {
	if p.inf || q.inf {
		return p.inf == q.inf
	}
	return p.x.Cmp(q.x) == 0 && p.y.Cmp(q.y) == 0
}
