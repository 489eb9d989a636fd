package failover

import (
	"context"
	"fmt"
	"time"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/failover/cometbft"
	"github.com/failoverd/failoverd/failover/config"
)

// CometBFTChainer asks a standby's CometBFT node (beacond) through its agent
// whether a validator key is silent: what beacon.Check is on Ethereum. The
// standby agent client implements it; a StandbyKeys without it cannot move
// Berachain keys.
type CometBFTChainer interface {
	CometBFTChain(ctx context.Context, sb cloud.Standby, pubkeys []string, blocks int) (cometbft.Report, error)
}

// cometFenceTimeout bounds failoverd's wait for a Berachain standby to take
// its key out (the agent's host timeout, 4 minutes, and its own checks).
const cometFenceTimeout = 6 * time.Minute

// cometSilent is chain silence on Berachain: the validator is in the set and
// its address signed none of the last blocks (cometbft.DefaultBlocks,
// about 5 minutes), on the standby's node and on every
// approval.cometbftNodes entry, all on the validator's network.
func (e *Engine) cometSilent(ctx context.Context, inc Incident, sb *cloud.Standby, m *Migration) error {
	cc, ok := e.mig.Keys.(CometBFTChainer)
	if !ok {
		return refused(RefuseConfig, "this failoverd's standby agent client cannot check CometBFT commit signatures: Berachain keys cannot move")
	}
	if len(m.Pubkeys) != 1 {
		return refused(RefuseKeys, "a Berachain validator has exactly one key (priv_validator_key.json); the approval names %d", len(m.Pubkeys))
	}
	blocks := max(e.mig.SilentBlocks, cometbft.DefaultBlocks)
	cctx, cancel := context.WithTimeout(ctx, e.cfg.Engine.CallTimeout)
	defer cancel()
	var reports []cometbft.Report
	if sb != nil {
		first, err := cc.CometBFTChain(cctx, *sb, m.Pubkeys, blocks)
		if err != nil {
			return refused(RefuseUnverified, "cannot ask the standby's beacond: %v", err)
		}
		first.Source = "standby " + sb.Name
		reports = append(reports, first)
	} else if len(e.mig.CometNodes) == 0 {
		return refused(RefuseUnverified, "the standby is gone and no other CometBFT node is configured (approval.cometbftNodes): failoverd cannot prove the chain silent; add one")
	}
	for _, n := range e.mig.CometNodes {
		r, err := cometbft.Check(cctx, n, cometbft.Identity{Pubkey: m.Pubkeys[0]}, blocks, e.now())
		if err != nil {
			return refused(RefuseUnverified, "cannot ask CometBFT node %s: %v", n, err)
		}
		reports = append(reports, r)
	}
	// Every node asked must report the validator's network.
	want := config.CometBFTChainID(inc.Network)
	for _, r := range reports {
		if want == "" {
			want = r.Network
		}
		if r.Network != want {
			return refused(RefuseRoot, "node %s is on chain %s, want %s (%s): wrong network, nothing moves", r.Source, r.Network, want, inc.Network)
		}
		if r.Unusable != "" {
			return refused(RefuseUnusable, "%s (seen by %s)", r.Unusable, r.Source)
		}
		if !r.Silent() {
			return refused(RefuseNotSilent, "%s: %s; the old signer may still be signing. Make sure it is stopped and try again after %d more blocks (about %s)",
				r.Source, r.NotSilent, blocks, time.Duration(blocks)*2*time.Second)
		}
	}
	first := reports[0]
	m.Silence = fmt.Sprintf("no commit signature in heights %d-%d (%d nodes)", first.CheckedFrom, first.CheckedTo, len(reports))
	m.Chain = &ChainPoint{ChainID: first.Network, Height: first.Height}
	return nil
}
