package beacon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// MinSilentEpochs is the fewest finished epochs of silence DESIGN.md rule 4
// accepts.
const MinSilentEpochs = 3

// Sighting is a validator index seen live in an epoch.
type Sighting struct {
	Index string
	Epoch uint64
}

// Silence is what Silent observed.
type Silence struct {
	// Silent is true only when every index was is_live=false in every
	// checked epoch.
	Silent bool
	// Epochs checked, newest first: currentEpoch-1 … currentEpoch-need.
	Epochs  []uint64
	Indices []string
	// Live lists every (index, epoch) reported is_live=true.
	Live []Sighting
}

// NotSilentError says why silence is not proven.
type NotSilentError struct {
	Live []Sighting
	// Problems: indices missing from or repeated in a reply, entries for
	// indices not asked for.
	Problems []string
}

func (e *NotSilentError) Error() string {
	var parts []string
	for _, s := range e.Live {
		parts = append(parts, fmt.Sprintf("index %s live in epoch %d", s.Index, s.Epoch))
	}
	parts = append(parts, e.Problems...)
	return "chain silence not proven: " + strings.Join(parts, "; ")
}

// Unwrap returns ErrNotSilent.
func (e *NotSilentError) Unwrap() error { return ErrNotSilent }

// Silent asks c for liveness in each of the last need finished epochs
// (currentEpoch-1 down to currentEpoch-need) and decides with
// DecideSilence. Any error — a request that fails, a live index, a missing
// one — means not silent; every error wraps ErrNotSilent. It stops at the
// first request that fails; live sightings do not stop it, so the error
// names all of them.
func Silent(ctx context.Context, c *Client, indices []string, currentEpoch uint64, need int) (Silence, error) {
	epochs, err := silenceEpochs(indices, currentEpoch, need)
	if err != nil {
		return Silence{Indices: indices}, err
	}
	replies := make(map[uint64][]Liveness, len(epochs))
	for _, e := range epochs {
		r, err := c.Liveness(ctx, e, indices)
		if err != nil {
			return Silence{Epochs: epochs, Indices: indices}, fmt.Errorf("%w: liveness for epoch %d: %w", ErrNotSilent, e, err)
		}
		replies[e] = r
	}
	return DecideSilence(indices, currentEpoch, need, replies)
}

func silenceEpochs(indices []string, currentEpoch uint64, need int) ([]uint64, error) {
	if need < MinSilentEpochs {
		return nil, fmt.Errorf("%w: %w: need %d epochs, at least %d", ErrNotSilent, ErrInvalidArgument, need, MinSilentEpochs)
	}
	if currentEpoch < uint64(need) {
		return nil, fmt.Errorf("%w: current epoch %d has fewer than %d finished epochs before it", ErrNotSilent, currentEpoch, need)
	}
	if len(indices) == 0 {
		return nil, fmt.Errorf("%w: %w: no validator indices", ErrNotSilent, ErrInvalidArgument)
	}
	seen := map[string]bool{}
	for _, ix := range indices {
		if !ValidIndex(ix) {
			return nil, fmt.Errorf("%w: %w: %q is not a decimal validator index", ErrNotSilent, ErrInvalidArgument, ix)
		}
		if seen[ix] {
			return nil, fmt.Errorf("%w: %w: index %s repeated", ErrNotSilent, ErrInvalidArgument, ix)
		}
		seen[ix] = true
	}
	epochs := make([]uint64, need)
	for i := range epochs {
		epochs[i] = currentEpoch - 1 - uint64(i)
	}
	return epochs, nil
}

// DecideSilence is the pure decision on liveness replies keyed by epoch.
// Silent only when, for each of the last need finished epochs, the reply
// has exactly one entry per index, every one is_live=false, and nothing
// else. A missing epoch or index is unknown, and unknown is not silent.
func DecideSilence(indices []string, currentEpoch uint64, need int, replies map[uint64][]Liveness) (Silence, error) {
	epochs, err := silenceEpochs(indices, currentEpoch, need)
	if err != nil {
		return Silence{Indices: indices}, err
	}
	s := Silence{Epochs: epochs, Indices: indices}
	nse := &NotSilentError{}
	for _, e := range epochs {
		r, ok := replies[e]
		if !ok {
			nse.Problems = append(nse.Problems, fmt.Sprintf("no liveness reply for epoch %d", e))
			continue
		}
		byIndex := map[string][]bool{}
		for _, l := range r {
			byIndex[l.Index] = append(byIndex[l.Index], l.IsLive)
		}
		want := map[string]bool{}
		for _, ix := range indices {
			want[ix] = true
			got := byIndex[ix]
			switch {
			case len(got) == 0:
				nse.Problems = append(nse.Problems, fmt.Sprintf("index %s missing from epoch %d reply", ix, e))
			case len(got) > 1:
				nse.Problems = append(nse.Problems, fmt.Sprintf("index %s appears %d times in epoch %d reply", ix, len(got), e))
				for _, live := range got {
					if live {
						nse.Live = append(nse.Live, Sighting{Index: ix, Epoch: e})
						break
					}
				}
			case got[0]:
				nse.Live = append(nse.Live, Sighting{Index: ix, Epoch: e})
			}
		}
		for ix := range byIndex {
			if !want[ix] {
				nse.Problems = append(nse.Problems, fmt.Sprintf("epoch %d reply has index %s that was not asked for", e, ix))
			}
		}
	}
	s.Live = nse.Live
	if len(nse.Live) > 0 || len(nse.Problems) > 0 {
		return s, nse
	}
	s.Silent = true
	return s, nil
}

// IsNotSilent reports whether err is a decision (live or unknown index)
// rather than an argument error; both refuse.
func IsNotSilent(err error) bool {
	var nse *NotSilentError
	return errors.As(err, &nse)
}

// Clock is the beacon chain clock. Zero SecondsPerSlot / SlotsPerEpoch mean
// mainnet's 12 and 32.
type Clock struct {
	GenesisTime    time.Time
	SecondsPerSlot uint64
	SlotsPerEpoch  uint64
}

func (c Clock) sps() uint64 {
	if c.SecondsPerSlot == 0 {
		return 12
	}
	return c.SecondsPerSlot
}

func (c Clock) spe() uint64 {
	if c.SlotsPerEpoch == 0 {
		return 32
	}
	return c.SlotsPerEpoch
}

// BeforeGenesis reports whether now is before the chain started.
func (c Clock) BeforeGenesis(now time.Time) bool { return now.Before(c.GenesisTime) }

// Slot is the slot at now (0 before genesis: check BeforeGenesis).
func (c Clock) Slot(now time.Time) uint64 {
	if c.BeforeGenesis(now) {
		return 0
	}
	return uint64(now.Sub(c.GenesisTime)/time.Second) / c.sps()
}

// Epoch is the epoch at now (0 before genesis).
func (c Clock) Epoch(now time.Time) uint64 { return c.Slot(now) / c.spe() }

// SlotStart is when slot begins.
func (c Clock) SlotStart(slot uint64) time.Time {
	return c.GenesisTime.Add(time.Duration(slot*c.sps()) * time.Second)
}

// EpochStart is when epoch begins.
func (c Clock) EpochStart(epoch uint64) time.Time { return c.SlotStart(epoch * c.spe()) }
