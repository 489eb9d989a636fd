package privval

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestParseStateFixtures(t *testing.T) {
	for _, c := range []struct {
		path string
		want State
	}{
		{"testdata/state-initial.json", State{}},
		{"testdata/state-signed.json", State{Height: 4242117, Round: 1, Step: StepPrecommit}},
	} {
		raw := read(t, c.path)
		s, err := ParseState(raw)
		if err != nil {
			t.Fatalf("%s: %v", c.path, err)
		}
		if Compare(s, c.want) != 0 {
			t.Fatalf("%s: %v, want %v", c.path, s, c.want)
		}
		if got := append(s.File(), '\n'); !bytes.Equal(got, raw) {
			t.Fatalf("%s: File() is not the file CometBFT writes:\n%s\n---\n%s", c.path, got, raw)
		}
	}
	s, _ := ParseState(read(t, "testdata/state-signed.json"))
	if len(s.Signature) != 96 || !bytes.HasSuffix(s.SignBytes, []byte("mainnet-beacon-80094")) {
		t.Fatalf("signature %d bytes, signbytes %q", len(s.Signature), s.SignBytes)
	}
}

func TestParseStateRefuses(t *testing.T) {
	for _, c := range []struct{ name, file, want string }{
		{"height as a number", `{"height":5,"round":0,"step":0}`, "decimal string"},
		{"negative height", `{"height":"-1","round":0,"step":0}`, "non-negative"},
		{"height with a sign", `{"height":"+5","round":0,"step":0}`, "non-negative"},
		{"height with leading zero", `{"height":"05","round":0,"step":0}`, "non-negative"},
		{"height past int64", `{"height":"9223372036854775808","round":0,"step":0}`, "non-negative"},
		{"no height", `{"round":0,"step":0}`, "decimal string"},
		{"no round", `{"height":"1","step":0}`, "no round"},
		{"negative round", `{"height":"1","round":-1,"step":0}`, "round must be an integer"},
		{"round past int32", `{"height":"1","round":2147483648,"step":0}`, "round must be an integer"},
		{"round as a string", `{"height":"1","round":"0","step":0}`, "round must be an integer"},
		{"fractional step", `{"height":"1","round":0,"step":1.5}`, "step must be an integer"},
		{"step 4", `{"height":"1","round":0,"step":4}`, "step must be an integer from 0 to 3"},
		{"signature not base64", `{"height":"1","round":0,"step":3,"signature":"%%"}`, "signature is not base64"},
		{"signbytes not hex", `{"height":"1","round":0,"step":3,"signature":"AAAA","signbytes":"XYZ"}`, "signbytes is not hex"},
		{"signbytes without signature", `{"height":"1","round":0,"step":3,"signbytes":"AB"}`, "signbytes without a signature"},
		{"not an object", `"height"`, "where an object belongs"},
		{"trailing", `{"height":"1","round":0,"step":0} x`, "trailing data"},
		{"too large", `{"height":"1","round":0,"step":0,"x":"` + strings.Repeat("a", MaxStateFileSize) + `"}`, "more than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseState([]byte(c.file))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("%v wraps neither sentinel", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func TestCompare(t *testing.T) {
	order := []State{
		{},
		{Height: 0, Round: 0, Step: StepPrecommit},
		{Height: 0, Round: 1, Step: StepNone},
		{Height: 1},
		{Height: 1, Round: 0, Step: StepPropose},
		{Height: 1, Round: 0, Step: StepPrevote},
		{Height: 1, Round: 2, Step: StepPropose},
		{Height: 1, Round: MaxRound, Step: StepPrecommit},
		{Height: 2},
	}
	for i := range order {
		for j := range order {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := Compare(order[i], order[j]); got != want {
				t.Errorf("Compare(%v, %v) = %d, want %d", order[i], order[j], got, want)
			}
		}
	}
	if Compare(State{Height: 3, Signature: []byte{1}}, State{Height: 3}) != 0 {
		t.Error("signatures change the order")
	}
}

// wouldSign is CometBFT's FilePV rule (privval/file.go CheckHRS): sign at
// (h, r, step) only above the last signed position, or at the same
// position again when the sign bytes were kept (it then re-sends the old
// signature, which is not a new vote).
func wouldSign(s State, h int64, r int32, step int8) (bool, bool) {
	switch c := Compare(State{Height: h, Round: r, Step: step}, s); {
	case c > 0:
		return true, false
	case c == 0 && s.SignBytes != nil:
		return true, true
	}
	return false, false
}

func TestRaise(t *testing.T) {
	signed := State{Height: 500, Round: 2, Step: StepPrevote, Signature: []byte{1, 2}, SignBytes: []byte{3}}
	for _, c := range []struct {
		name   string
		in     State
		height int64
		want   State
	}{
		{"below: raised, signature cleared", signed, 600, State{Height: 600, Round: MaxRound, Step: StepPrecommit}},
		{"same height, lower round: raised", signed, 500, State{Height: 500, Round: MaxRound, Step: StepPrecommit}},
		{"above: unchanged", signed, 499, signed},
		{"empty: raised", State{}, 7, State{Height: 7, Round: MaxRound, Step: StepPrecommit}},
		{"already at the top of the height: unchanged", State{Height: 9, Round: MaxRound, Step: StepPrecommit}, 9,
			State{Height: 9, Round: MaxRound, Step: StepPrecommit}},
		{"height 0 on an empty state: all of height 0 refused", State{}, 0, State{Height: 0, Round: MaxRound, Step: StepPrecommit}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := Raise(c.in, c.height)
			if Compare(got, c.want) != 0 || !bytes.Equal(got.Signature, c.want.Signature) || !bytes.Equal(got.SignBytes, c.want.SignBytes) {
				t.Fatalf("Raise(%v, %d) = %+v, want %+v", c.in, c.height, got, c.want)
			}
		})
	}
}

// TestRaiseSignsNothingAtOrBelow: whatever the old state, after Raise(s, h)
// CometBFT's rule signs nothing new at any height up to h, in any round,
// and signs again from h+1.
func TestRaiseSignsNothingAtOrBelow(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	rounds := []int32{0, 1, 2, 7, 1 << 20, MaxRound - 1, MaxRound}
	for i := 0; i < 300; i++ {
		s := State{Height: rng.Int64N(1000), Round: rounds[rng.IntN(len(rounds))], Step: int8(rng.IntN(4))}
		if rng.IntN(2) == 0 {
			s.Signature, s.SignBytes = []byte{1}, []byte{2}
		}
		h := rng.Int64N(1000)
		r := Raise(s, h)
		if Compare(r, s) < 0 {
			t.Fatalf("Raise(%v, %d) = %v went down", s, h, r)
		}
		for _, hh := range []int64{0, h / 2, h - 1, h} {
			if hh < 0 {
				continue
			}
			for _, rr := range rounds {
				for step := StepPropose; step <= StepPrecommit; step++ {
					if ok, again := wouldSign(r, hh, rr, step); ok && !again {
						t.Fatalf("Raise(%v, %d) = %v still signs new at (%d, %d, %d)", s, h, r, hh, rr, step)
					}
				}
			}
		}
		if ok, _ := wouldSign(r, max(h, r.Height)+1, 0, StepPropose); !ok {
			t.Fatalf("Raise(%v, %d) = %v signs nothing above", s, h, r)
		}
	}
	// Why Raise uses MaxRound: a round-0 state still signs round 1.
	if ok, _ := wouldSign(State{Height: 10, Round: 0, Step: StepPrecommit}, 10, 1, StepPrevote); !ok {
		t.Fatal("wouldSign does not model CometBFT: round 1 above a round-0 state must sign")
	}
}

func TestSynthesize(t *testing.T) {
	for _, h := range []int64{0, -3} {
		if _, err := Synthesize(h); !errors.Is(err, ErrInvalid) {
			t.Errorf("Synthesize(%d): %v", h, err)
		}
	}
	s, err := Synthesize(1234)
	if err != nil {
		t.Fatal(err)
	}
	if Compare(s, State{Height: 1234, Round: MaxRound, Step: StepPrecommit}) != 0 || s.Signature != nil || s.SignBytes != nil {
		t.Fatalf("Synthesize(1234) = %+v", s)
	}
	again, err := ParseState(s.File())
	if err != nil || Compare(again, s) != 0 {
		t.Fatalf("synthesized state does not reparse: %v %v\n%s", again, err, s.File())
	}
	if !strings.Contains(string(s.File()), `"height": "1234"`) || strings.Contains(string(s.File()), "signature") {
		t.Fatalf("file:\n%s", s.File())
	}
}
