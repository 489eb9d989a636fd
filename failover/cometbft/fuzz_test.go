package cometbft

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeReplies: whatever a node sends, the decoders never panic, fail
// only with the package's errors, and what they accept keeps their
// promises — a vote always names a valid address, an absent entry none,
// heights are the ones asked for, counts add up.
func FuzzDecodeReplies(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.json")
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for route := byte(0); route < 3; route++ {
			f.Add(route, uint16(200+300*(i%2)), b)
		}
	}
	f.Add(byte(1), uint16(200), []byte(`{"jsonrpc":"2.0","result":{"signed_header":{"header":{"chain_id":"c","height":"4242117","time":"2026-01-01T00:00:00Z"},"commit":{"height":"4242117","round":0,"signatures":[{"block_id_flag":7,"validator_address":"abababababababababababababababababababab"}]}},"canonical":false}}`))
	f.Add(byte(2), uint16(200), []byte(`{"jsonrpc":"2.0","result":{"block_height":"1","validators":[],"count":"0","total":"0"}}`))
	f.Add(byte(0), uint16(502), []byte(`<html>`))
	f.Fuzz(func(t *testing.T, route byte, status uint16, body []byte) {
		res, err := decodeEnvelope("fuzz", int(status), body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrRPC) && !errors.Is(err, ErrUnexpected) {
				t.Fatalf("envelope error %T %v", err, err)
			}
			return
		}
		if status != 200 {
			t.Fatalf("a result accepted with HTTP %d", status)
		}
		switch route % 3 {
		case 0:
			s, err := decodeStatus(res)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("status error %v", err)
				}
				return
			}
			if s.Network == "" || s.LatestHeight < 0 || s.EarliestHeight > s.LatestHeight {
				t.Fatalf("accepted status %+v", s)
			}
		case 1:
			const h = 4242117
			c, err := decodeCommit(res, h)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("commit error %v", err)
				}
				return
			}
			if c.Height != h || c.ChainID == "" || len(c.Signatures) == 0 {
				t.Fatalf("accepted commit %+v", c)
			}
			seen := map[string]bool{}
			for _, s := range c.Signatures {
				switch {
				case s.Flag == FlagAbsent && s.Address != "":
					t.Fatalf("absent entry with address %q", s.Address)
				case s.Flag.Voted() && (!ValidAddress(s.Address) || seen[s.Address]):
					t.Fatalf("vote with address %q (seen before: %v)", s.Address, seen[s.Address])
				case s.Flag != FlagAbsent && !s.Flag.Voted():
					t.Fatalf("unknown flag %d accepted", s.Flag)
				}
				seen[s.Address] = true
			}
		case 2:
			p, err := decodeValidatorsPage(res)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("validators error %v", err)
				}
				return
			}
			if p.Count != int64(len(p.Validators)) || p.Height < 1 {
				t.Fatalf("accepted page %+v", p)
			}
			for _, v := range p.Validators {
				if !ValidAddress(v.Address) || v.VotingPower < 0 {
					t.Fatalf("accepted validator %+v", v)
				}
			}
		}
	})
}
