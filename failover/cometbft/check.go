package cometbft

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/failoverd/failoverd/failover/privval"
)

// Chain-silence parameters.
const (
	// DoubleSignCheckHeight is the double_sign_check_height the standby's
	// beacond runs with once it holds the key: at start it looks for the
	// key's signature in that many recent blocks and refuses to run if it
	// finds one. CometBFT's own docs use 10 for validators behind sentries.
	DoubleSignCheckHeight = 10
	// MinBlocks is the fewest commits Check accepts as evidence. Fewer than
	// double_sign_check_height would prove less than the new signer checks
	// for itself at start.
	MinBlocks = DoubleSignCheckHeight
	// DefaultBlocks is how many of the latest commits must lack the
	// validator's signature: about five minutes of Berachain's ~2 s blocks,
	// fifteen times double_sign_check_height. A running validator signs
	// nearly every block, so 150 commits in a row without it mean its
	// signer is stopped, not unlucky; five minutes is also longer than a
	// beacond restart, so a signer that was merely restarting would have
	// shown up again. It costs 150 small /commit requests.
	DefaultBlocks = 150
	// MaxBlocks bounds the requests one Check makes (over 5 hours of blocks).
	MaxBlocks = 10_000
	// MaxHeadAge: a node whose latest block is older than this (or this
	// far in the future) is not following the chain, and its commits say
	// nothing about now. Berachain makes a block every ~2 s.
	MaxHeadAge = time.Minute
)

// Identity names a validator for Check: its public key ("0x"+hex, as in
// fleet[].pubkeys), its consensus addresses (40 hex), or both. Every
// address it may have is looked for, so pass all you know.
type Identity struct {
	Pubkey    string
	Addresses []string
}

// KeyIdentity is the identity of a checked key file: its public key and
// every address beacond may give it.
func KeyIdentity(k privval.Key) Identity {
	return Identity{Pubkey: k.Pubkey, Addresses: k.Addresses()}
}

func (id Identity) String() string {
	if id.Pubkey != "" {
		return id.Pubkey
	}
	return strings.Join(id.Addresses, "/")
}

// Report is one CometBFT node's view of the validator a key move concerns:
// the chain, its height, whether the validator is in the set, and whether
// the last blocks show it silent. It travels as JSON (the standby agent
// computes it for failoverd), so every verdict is a plain string.
type Report struct {
	// Source names the node (its redacted URL, or "standby").
	Source string `json:"source"`
	// Network is the chain ID, e.g. "mainnet-beacon-80094".
	Network string `json:"network"`
	// Height is the latest committed height at the time of the check, and
	// BlockTime that block's time.
	Height    int64     `json:"height"`
	BlockTime time.Time `json:"blockTime"`
	// Address is the validator's address in the validator set ("" when
	// not in it).
	Address        string `json:"address,omitempty"`
	InValidatorSet bool   `json:"inValidatorSet"`
	VotingPower    int64  `json:"votingPower,omitempty"`
	// Unusable is empty when the validator is in the set with voting
	// power; otherwise it says why a key move would not make it sign.
	Unusable string `json:"unusable,omitempty"`
	// CheckedFrom…CheckedTo are the heights whose commits were read.
	CheckedFrom int64 `json:"checkedFrom,omitempty"`
	CheckedTo   int64 `json:"checkedTo,omitempty"`
	// LastSigned is the newest checked height the validator signed (0: none).
	LastSigned int64 `json:"lastSigned,omitempty"`
	// NotSilent is empty only when silence was proven; otherwise it says
	// what was seen (or what could not be established), ready to be shown
	// as the refusal.
	NotSilent string `json:"notSilent,omitempty"`
}

// Silent reports whether the report proves silence.
func (r Report) Silent() bool {
	return r.NotSilent == "" && r.CheckedTo > 0 && r.CheckedFrom >= 1 && r.CheckedFrom <= r.CheckedTo
}

// NextHeight is the height the chain was working on at the check. The old
// signer may have voted there in rounds no block records, so the new
// signer's priv_validator_state.json must be raised to it
// (privval.Raise(state, r.NextHeight())).
func (r Report) NextHeight() int64 { return r.Height + 1 }

// Check asks node c about the validator at now: chain ID and head
// (/status), the validator set at the head (/validators) and the last
// `blocks` commits (/commit). A request that fails is an error; what the
// chain says (a signature, a stalled node, a validator outside the set) is
// in the report. Anything that cannot be established is not silence.
func Check(ctx context.Context, c *Client, who Identity, blocks int, now time.Time) (Report, error) {
	r := Report{Source: c.String()}
	if blocks < MinBlocks || blocks > MaxBlocks {
		return r, fmt.Errorf("%w: %d blocks; want %d (proves anything) to %d", ErrInvalidArgument, blocks, MinBlocks, MaxBlocks)
	}
	want, err := who.addresses()
	if err != nil {
		return r, err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return r, fmt.Errorf("cometbft node %s: %w", c, err)
	}
	r.Network, r.Height, r.BlockTime = st.Network, st.LatestHeight, st.LatestBlockTime
	switch age := now.Sub(st.LatestBlockTime); {
	case st.CatchingUp:
		r.NotSilent = fmt.Sprintf("node %s is catching up (at height %d): its view of the chain is not current; wait until it has synced", c, st.LatestHeight)
		return r, nil
	case age > MaxHeadAge:
		r.NotSilent = fmt.Sprintf("node %s's latest block %d is %s old: the node is not following the chain (or the chain has halted); silence cannot be told from a stalled node",
			c, st.LatestHeight, age.Round(time.Second))
		return r, nil
	case -age > MaxHeadAge:
		r.NotSilent = fmt.Sprintf("node %s's latest block %d is %s in the future: fix the clock of this machine or of the node", c, st.LatestHeight, (-age).Round(time.Second))
		return r, nil
	}
	from := st.LatestHeight - int64(blocks) + 1
	if from < 1 {
		r.NotSilent = fmt.Sprintf("the chain has only %d blocks; silence needs %d", st.LatestHeight, blocks)
		return r, nil
	}
	if st.EarliestHeight > from {
		r.NotSilent = fmt.Sprintf("node %s keeps blocks from %d only; silence needs blocks %d to %d", c, st.EarliestHeight, from, st.LatestHeight)
		return r, nil
	}

	set, err := c.Validators(ctx, st.LatestHeight)
	if err != nil {
		return r, fmt.Errorf("cometbft node %s: %w", c, err)
	}
	matches := match(set, who, want)
	switch {
	case len(matches) > 1:
		r.Unusable = fmt.Sprintf("more than one validator in the set at height %d matches %s", set.Height, who)
	case len(matches) == 0:
		r.Unusable = fmt.Sprintf("%s is not in the validator set at height %d: moving its key would not make it sign", who, set.Height)
	case matches[0].VotingPower == 0:
		r.Address = matches[0].Address
		r.Unusable = fmt.Sprintf("validator %s has no voting power at height %d", r.Address, set.Height)
	default:
		r.Address, r.InValidatorSet, r.VotingPower = matches[0].Address, true, matches[0].VotingPower
	}
	for _, m := range matches {
		// The chain's own address for the key is the one commits carry,
		// whatever this key's file said.
		want[m.Address] = true
	}

	for h := st.LatestHeight; h >= from; h-- {
		cm, err := c.Commit(ctx, h)
		if err != nil {
			return r, fmt.Errorf("cometbft node %s: %w", c, err)
		}
		if cm.ChainID != st.Network {
			return r, fmt.Errorf("%w: cometbft node %s: commit %d is for chain %q, the node's status says %q", ErrMalformed, c, h, cm.ChainID, st.Network)
		}
		if s, ok := cm.Vote(want); ok {
			r.CheckedFrom, r.CheckedTo, r.LastSigned = h, st.LatestHeight, h
			ago := "the latest block"
			switch d := st.LatestHeight - h; {
			case d == 1:
				ago = fmt.Sprintf("1 block before the latest (%d)", st.LatestHeight)
			case d > 1:
				ago = fmt.Sprintf("%d blocks before the latest (%d)", d, st.LatestHeight)
			}
			r.NotSilent = fmt.Sprintf("validator %s signed block %d (%s), %s on %s: its signer is still running; fence it, then wait until %d blocks pass without its signature",
				s.Address, h, s.Flag, ago, st.Network, blocks)
			return r, nil
		}
	}
	r.CheckedFrom, r.CheckedTo = from, st.LatestHeight
	return r, nil
}

// addresses is every address to look for: the given ones and those of the
// public key in each encoding.
func (id Identity) addresses() (map[string]bool, error) {
	want := map[string]bool{}
	for _, a := range id.Addresses {
		if !ValidAddress(a) {
			return nil, fmt.Errorf("%w: address %q is not 20 bytes of hex", ErrInvalidArgument, a)
		}
		want[strings.ToUpper(a)] = true
	}
	if id.Pubkey != "" {
		pk, err := normalizePubkey(id.Pubkey)
		if err != nil {
			return nil, err
		}
		for _, a := range pk.Addresses {
			want[a] = true
		}
	}
	if len(want) == 0 {
		return nil, fmt.Errorf("%w: no public key or address to look for", ErrInvalidArgument)
	}
	return want, nil
}

// normalizePubkey reads "0x"+hex: 48 or 96 bytes are BLS12-381, 32 bytes
// Ed25519.
func normalizePubkey(s string) (privval.PubKey, error) {
	t := privval.BLS12381
	if len(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X")) == 64 {
		t = privval.Ed25519
	}
	pk, err := privval.NormalizePubkey(t, s)
	if err != nil {
		return privval.PubKey{}, fmt.Errorf("%w: public key: %v", ErrInvalidArgument, err)
	}
	return pk, nil
}

// match finds the validator by public key (in whichever encoding the node
// shows it) or by address.
func match(set ValidatorSet, who Identity, want map[string]bool) []Validator {
	var pub string
	if who.Pubkey != "" {
		if pk, err := normalizePubkey(who.Pubkey); err == nil {
			pub = pk.Pubkey
		}
	}
	var out []Validator
	for _, v := range set.Validators {
		hit := want[v.Address]
		if !hit && pub != "" {
			if pk, err := privval.ParsePubKey(v.PubKey.Type, v.PubKey.Value); err == nil && pk.Pubkey == pub {
				hit = true
			}
		}
		if hit {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Address < out[j].Address })
	return out
}
