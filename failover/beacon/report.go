package beacon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Report is one beacon node's view of the validators a key move concerns:
// the network, the chain clock, each validator's status, and whether the
// chain shows them silent. It travels as JSON (the standby agent computes it
// for failoverd), so every verdict is a plain string.
type Report struct {
	// Source names the beacon node (its redacted URL, or "standby").
	Source                string    `json:"source"`
	GenesisValidatorsRoot string    `json:"genesisValidatorsRoot"`
	GenesisTime           time.Time `json:"genesisTime"`
	// Epoch and Slot are the chain clock's at the time of the check.
	Epoch uint64 `json:"epoch"`
	Slot  uint64 `json:"slot"`
	// Indices are the validators' indices, in the order of the pubkeys.
	Indices []string `json:"indices,omitempty"`
	// Unusable is empty when every key is a known validator, not slashed and
	// not exited or exiting; otherwise it says which is not and why.
	Unusable string `json:"unusable,omitempty"`
	// SilentEpochs are the finished epochs in which every index was
	// is_live=false (set only when silence was proven).
	SilentEpochs []uint64 `json:"silentEpochs,omitempty"`
	// NotSilent is empty only when silence over the last epochs was proven;
	// otherwise it says what was seen (or what could not be asked).
	NotSilent string `json:"notSilent,omitempty"`
}

// Silent reports whether the report proves silence.
func (r Report) Silent() bool { return r.NotSilent == "" && len(r.SilentEpochs) > 0 }

// Check asks c about pubkeys at now: genesis, validator statuses at head and
// liveness over the last need finished epochs. A transport failure is an
// error; everything the chain says (a live key, a slashed one) is in the
// report. Anything that cannot be established counts as not silent.
func Check(ctx context.Context, c *Client, pubkeys []string, need int, now time.Time) (Report, error) {
	r := Report{Source: c.String()}
	g, err := c.Genesis(ctx)
	if err != nil {
		return r, fmt.Errorf("beacon node %s: genesis: %w", c, err)
	}
	clock := g.Clock()
	r.GenesisValidatorsRoot, r.GenesisTime = g.GenesisValidatorsRoot, clock.GenesisTime.UTC()
	if clock.BeforeGenesis(now) {
		return r, fmt.Errorf("beacon node %s: the chain has not started (genesis %s)", c, r.GenesisTime.Format(time.RFC3339))
	}
	r.Slot, r.Epoch = clock.Slot(now), clock.Epoch(now)
	vals, err := c.Validators(ctx, "head", pubkeys)
	if err != nil {
		return r, fmt.Errorf("beacon node %s: validators: %w", c, err)
	}
	if err := Usable(vals, pubkeys); err != nil {
		r.Unusable = err.Error()
	}
	for _, pk := range pubkeys {
		for _, v := range vals {
			if strings.EqualFold(v.Pubkey, pk) {
				r.Indices = append(r.Indices, v.Index)
				break
			}
		}
	}
	if len(r.Indices) != len(pubkeys) {
		r.NotSilent = "not every key has a validator index, so liveness cannot be asked"
		return r, nil
	}
	s, err := Silent(ctx, c, r.Indices, r.Epoch, need)
	switch {
	case err == nil && s.Silent:
		r.SilentEpochs = s.Epochs
	case err == nil:
		r.NotSilent = "silence not proven"
	case errors.Is(err, ErrNotSilent):
		r.NotSilent = err.Error()
	default:
		return r, fmt.Errorf("beacon node %s: liveness: %w", c, err)
	}
	return r, nil
}
