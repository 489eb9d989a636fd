package privval

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Steps of CometBFT's signing state, in the order a height goes through
// them. A validator never signs at a (height, round, step) at or below the
// one its state file holds.
const (
	StepNone      int8 = 0
	StepPropose   int8 = 1
	StepPrevote   int8 = 2
	StepPrecommit int8 = 3
)

// MaxRound is the highest round CometBFT can represent (int32). A state at
// (h, MaxRound, StepPrecommit) refuses every round at h.
const MaxRound int32 = math.MaxInt32

// State is priv_validator_state.json: the last height, round and step the
// validator signed at, with that signature and its sign bytes (CometBFT
// reuses them if asked to sign the same thing again after a crash).
type State struct {
	Height    int64
	Round     int32
	Step      int8
	Signature []byte
	SignBytes []byte
}

// String is the position, without the signature.
func (s State) String() string {
	return fmt.Sprintf("height %d round %d step %d", s.Height, s.Round, s.Step)
}

// Compare orders states by (height, round, step): -1 when a is below b,
// 0 when at the same position, +1 when above. Signatures are not compared.
func Compare(a, b State) int {
	switch {
	case a.Height != b.Height:
		return cmp3(a.Height < b.Height)
	case a.Round != b.Round:
		return cmp3(a.Round < b.Round)
	case a.Step != b.Step:
		return cmp3(a.Step < b.Step)
	}
	return 0
}

func cmp3(less bool) int {
	if less {
		return -1
	}
	return 1
}

// Raise returns a state from which CometBFT signs nothing at height or
// below. A state already above height is returned unchanged: it is the
// signer's own record and more precise than anything failoverd knows. A
// state at or below height becomes (height, MaxRound, StepPrecommit) with
// no signature: every round at height is then a regression CometBFT
// refuses, and the first thing the new signer can sign is at height+1.
//
// Round 0 would not do: CometBFT signs at (h, r, step) whenever r is
// above the state's round, so a state at (h, 0, precommit) still signs
// rounds 1, 2, … at h — exactly the rounds a chain runs when a height is
// slow, which is when the old signer may have voted.
//
// Pass the height the chain was working on when silence was proven (the
// latest committed height + 1, cometbft.Report.NextHeight): the old signer
// may have voted there in rounds that never made it into a block.
func Raise(s State, height int64) State {
	if Compare(s, State{Height: height, Round: MaxRound, Step: StepPrecommit}) >= 0 {
		return s
	}
	return State{Height: height, Round: MaxRound, Step: StepPrecommit}
}

// Synthesize is the state to use when the old signer's state file is not
// available: nothing at height or below is signed.
func Synthesize(height int64) (State, error) {
	if height < 1 {
		return State{}, fmt.Errorf("%w: synthesized state at height %d would protect nothing; pass the chain's height", ErrInvalid, height)
	}
	return Raise(State{}, height), nil
}

// File is priv_validator_state.json as CometBFT writes it: height as a
// decimal string, round and step as numbers, signature base64 and
// signbytes uppercase hex, both left out when empty.
func (s State) File() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\n  \"height\": \"%d\",\n  \"round\": %d,\n  \"step\": %d", s.Height, s.Round, s.Step)
	if len(s.Signature) > 0 {
		fmt.Fprintf(&b, ",\n  \"signature\": %q", base64.StdEncoding.EncodeToString(s.Signature))
	}
	if len(s.SignBytes) > 0 {
		fmt.Fprintf(&b, ",\n  \"signbytes\": %q", strings.ToUpper(hex.EncodeToString(s.SignBytes)))
	}
	b.WriteString("\n}")
	return b.Bytes()
}

// ParseState reads a priv_validator_state.json. It refuses what CometBFT
// would refuse or crash on: a height that is not a decimal string, a
// negative round, an unknown step, sign bytes without a signature.
func ParseState(b []byte) (State, error) {
	if len(b) > MaxStateFileSize {
		return State{}, fmt.Errorf("%w: priv_validator_state.json: %d bytes, more than %d", ErrTooLarge, len(b), MaxStateFileSize)
	}
	const in = "priv_validator_state.json"
	o, err := object(b, in)
	if err != nil {
		return State{}, err
	}
	var s State
	hs, err := str(o, "height", in)
	if err != nil {
		// CometBFT encodes int64 as a string and refuses a bare number.
		return State{}, invalid("%s: height must be a decimal string such as \"123\"", in)
	}
	if s.Height, err = strconv.ParseInt(hs, 10, 64); err != nil || s.Height < 0 || hs != strconv.FormatInt(s.Height, 10) {
		return State{}, invalid("%s: height %q is not a non-negative decimal int64", in, short(hs))
	}
	round, err := number(o, "round", in, 0, math.MaxInt32)
	if err != nil {
		return State{}, err
	}
	step, err := number(o, "step", in, int64(StepNone), int64(StepPrecommit))
	if err != nil {
		return State{}, err
	}
	s.Round, s.Step = int32(round), int8(step)
	if raw, ok := o["signature"]; ok && !isNull(raw) {
		v, err := str(o, "signature", in)
		if err != nil {
			return State{}, err
		}
		if s.Signature, err = base64.StdEncoding.Strict().DecodeString(v); err != nil {
			return State{}, invalid("%s: signature is not base64: %v", in, err)
		}
	}
	if raw, ok := o["signbytes"]; ok && !isNull(raw) {
		v, err := str(o, "signbytes", in)
		if err != nil {
			return State{}, err
		}
		if s.SignBytes, err = hex.DecodeString(v); err != nil {
			return State{}, invalid("%s: signbytes is not hex: %v", in, err)
		}
	}
	if len(s.Signature) == 0 {
		s.Signature = nil
	}
	if len(s.SignBytes) == 0 {
		s.SignBytes = nil
	}
	if s.SignBytes != nil && s.Signature == nil {
		// CometBFT panics when asked to sign at this position again.
		return State{}, invalid("%s: signbytes without a signature", in)
	}
	return s, nil
}

// number reads an integer JSON number in [lo, hi].
func number(o map[string]json.RawMessage, key, in string, lo, hi int64) (int64, error) {
	raw, ok := o[key]
	if !ok || isNull(raw) {
		return 0, invalid("%s: no %s", in, key)
	}
	t := string(bytes.TrimSpace(raw))
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || v < lo || v > hi {
		return 0, invalid("%s: %s must be an integer from %d to %d", in, key, lo, hi)
	}
	return v, nil
}
