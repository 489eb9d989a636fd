package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/cometbft"
	"github.com/failoverd/failoverd/failover/grant"
	"github.com/failoverd/failoverd/failover/privval"
)

// Berachain's validator signs inside beacond (CometBFT), not in a validator
// client with a Keymanager API. The agent cannot touch beacond or systemd:
// it stages the key files in a directory it shares with the host and asks
// the host's failoverd-cometbft-key path unit to swap them in
// (failover/bootstrap, templates/signer.sh.tmpl, "cometbft-key").

// ChainRequest.Kind values.
const (
	ChainKindBeacon   = "beacon"
	ChainKindCometBFT = "cometbft"
)

// The files of the host's key unit in CometBFTOptions.KeyDir.
const (
	// CometBFTKeyFile and CometBFTStateFile are staged by the agent (0600)
	// and consumed (removed) by the host.
	CometBFTKeyFile   = "priv_validator_key.json"
	CometBFTStateFile = "priv_validator_state.json"
	// CometBFTInstallRequested holds the generation; written last and
	// atomically, it is what starts the host's install.
	CometBFTInstallRequested = "install-requested"
	// CometBFTRemoveRequested holds the generation of a fence; it wins over
	// an install.
	CometBFTRemoveRequested = "remove-requested"
	// CometBFTResult is the host's answer: "installed G", "removed G",
	// "refused G: why" or "failed G: why".
	CometBFTResult = "result"
	// CometBFTReturnedState is beacond's priv_validator_state.json as it was
	// when the host removed the key.
	CometBFTReturnedState = "returned_priv_validator_state.json"
)

// Defaults of a Berachain standby (failover/bootstrap installs them).
const (
	DefaultCometBFTURL    = "http://127.0.0.1:26657"
	DefaultCometBFTKeyDir = "/var/lib/failoverd-agent/cometbft"
	// DefaultCometBFTHostTimeout bounds the wait for the host's answer: it
	// stops beacond first, and beacond's unit allows 180 s for a clean stop
	// (30 s more before systemd kills it).
	DefaultCometBFTHostTimeout = 4 * time.Minute
	defaultCometBFTPoll        = 250 * time.Millisecond
	// cometCheckTimeout bounds one cometbft.Check (N /commit requests to
	// the local node), so an install answers within the approver's CLI's
	// 5-minute wait: check, then the host.
	cometCheckTimeout = 45 * time.Second
	// maxResultSize bounds what is read of the host's answer.
	maxResultSize = 4 << 10
)

// CometBFTOptions make the agent a Berachain (CometBFT) validator's agent.
type CometBFTOptions struct {
	// URL is the local beacond's CometBFT RPC (DefaultCometBFTURL). It
	// serves POST /v1/chain with kind "cometbft" and the silence check
	// right before an install.
	URL string
	// KeyDir is the directory shared with the host's key unit
	// (DefaultCometBFTKeyDir). When set, the key routes install and remove
	// a CometBFT key instead of importing keystores (Keys.AllowedSigners
	// still decides whether they do anything), and Options.ControlDir,
	// where validator-start is written, is required.
	KeyDir string
	// ChainID is the chain ID the node must be on right before an install
	// (mainnet-beacon-80094, bepolia-beacon-80069). Empty: not checked; the
	// reply says which chain it was.
	ChainID string
	// Blocks is how many of the latest commits must lack the validator's
	// signature right before an install (default cometbft.DefaultBlocks).
	Blocks int
	// HostTimeout bounds the wait for the host's answer to an install or a
	// removal (default DefaultCometBFTHostTimeout).
	HostTimeout time.Duration
	// PollInterval is how often the host's answer is looked for.
	PollInterval time.Duration
}

type cometKeys struct {
	o      CometBFTOptions
	client *cometbft.Client
}

// newCometKeys is nil on an Ethereum agent (no CometBFT options).
func newCometKeys(o CometBFTOptions, timeout time.Duration) (*cometKeys, error) {
	if o.URL == "" && o.KeyDir == "" {
		return nil, nil
	}
	if o.URL == "" {
		return nil, errors.New("agent: a CometBFT key directory needs the CometBFT node's URL (--cometbft-url)")
	}
	if _, err := checkURL("CometBFT URL", o.URL); err != nil {
		return nil, err
	}
	c, err := cometbft.New(o.URL, cometbft.WithTimeout(timeout))
	if err != nil {
		return nil, fmt.Errorf("agent: CometBFT URL: %w", err)
	}
	if o.Blocks == 0 {
		o.Blocks = cometbft.DefaultBlocks
	}
	if o.Blocks < cometbft.MinBlocks || o.Blocks > cometbft.MaxBlocks {
		return nil, fmt.Errorf("agent: %d silent blocks: want %d to %d", o.Blocks, cometbft.MinBlocks, cometbft.MaxBlocks)
	}
	if o.HostTimeout <= 0 {
		o.HostTimeout = DefaultCometBFTHostTimeout
	}
	if o.PollInterval <= 0 {
		o.PollInterval = defaultCometBFTPoll
	}
	return &cometKeys{o: o, client: c}, nil
}

// installs reports whether the key routes are Berachain's.
func (c *cometKeys) installs() bool { return c != nil && c.o.KeyDir != "" }

// ready checks what a key install needs, with approvers configured.
func (c *cometKeys) ready(o KeyOptions, controlDir string) error {
	if o.StateDir == "" || len(o.CAPEM) == 0 || o.StandbyName == "" || controlDir == "" {
		return errors.New("agent: CometBFT key install needs a state directory, the control directory (where validator-start goes), the CA and the standby's name")
	}
	// The bootstrap makes it (0700, the agent's own); a missing one is made
	// rather than failing every install later.
	if err := os.MkdirAll(c.o.KeyDir, 0o700); err != nil {
		return fmt.Errorf("agent: CometBFT key directory: %w", err)
	}
	return nil
}

// extendWrite lets a key route's answer outlive the server's write
// timeout: it waits for the host, which may take minutes to stop beacond.
func (c *cometKeys) extendWrite(w http.ResponseWriter) {
	if !c.installs() {
		return
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(cometCheckTimeout + c.o.HostTimeout + time.Minute))
}

// importCometBFT installs a Berachain validator's key: the same grant and
// approval checks as keystores, the key file checked against the grant's
// one key, silence re-checked on the local beacond right before anything is
// written, the signing state raised past the height the chain was working
// on. Called with k.mu held.
func (k *keys) importCometBFT(ctx context.Context, req ImportRequest) (ImportReply, error) {
	if len(req.Keystores) > 0 || len(req.Passwords) > 0 || req.SlashingProtection != "" {
		return ImportReply{}, refuse(http.StatusBadRequest, "this agent's validator is on Berachain: send its priv_validator_key.json and priv_validator_state.json, not keystores or EIP-3076 slashing protection")
	}
	now := k.s.o.Now()
	g, err := k.migrationGrant(req, now)
	if err != nil {
		return ImportReply{}, err
	}
	if req.PrivValidatorKey == "" {
		return ImportReply{}, refuse(http.StatusBadRequest, "no priv_validator_key: a Berachain import carries the validator's priv_validator_key.json")
	}
	key, err := privval.ParseKey([]byte(req.PrivValidatorKey))
	if err != nil {
		return ImportReply{}, refuse(http.StatusBadRequest, "priv_validator_key: %v", err)
	}
	if len(g.Pubkeys) != 1 || !g.Covers([]string{key.Pubkey}) {
		return ImportReply{}, refuse(http.StatusForbidden, "the key file is %s, not exactly the one key the grant names (%s)", key.Pubkey, strings.Join(g.Pubkeys, ", "))
	}
	next, err := k.approved(req, g, []string{key.Pubkey})
	if err != nil {
		return ImportReply{}, err
	}
	var sent *privval.State
	if req.PrivValidatorState != "" {
		st, err := privval.ParseState([]byte(req.PrivValidatorState))
		if err != nil {
			return ImportReply{}, refuse(http.StatusBadRequest, "priv_validator_state: %v", err)
		}
		sent = &st
	}
	// Right before the install: the chain must still show the key silent.
	cctx, cancel := context.WithTimeout(ctx, cometCheckTimeout)
	rep, err := cometbft.Check(cctx, k.comet.client, cometbft.KeyIdentity(key), k.comet.o.Blocks, now)
	cancel()
	if err != nil {
		return ImportReply{}, refuse(http.StatusServiceUnavailable, "cannot check chain silence on this standby's CometBFT node: %v", err)
	}
	if rep.Unusable != "" {
		return ImportReply{}, refuse(http.StatusConflict, "%s", rep.Unusable)
	}
	if !rep.Silent() {
		return ImportReply{}, refuse(http.StatusConflict, "chain silence not proven right before the install: %s", rep.NotSilent)
	}
	if want := k.comet.o.ChainID; want != "" && rep.Network != want {
		return ImportReply{}, refuse(http.StatusConflict, "this standby's CometBFT node is on chain %q, not %q: wrong network, nothing installed", rep.Network, want)
	}
	var state privval.State
	if sent != nil {
		state = privval.Raise(*sent, rep.NextHeight())
	} else if state, err = privval.Synthesize(rep.NextHeight()); err != nil {
		return ImportReply{}, refuse(http.StatusConflict, "%v", err)
	}

	// Record the generation before the host is asked: after a crash the
	// agent still refuses this grant a second time.
	gen := g.Generation
	pk := approval.NormalizePubkey(key.Pubkey)
	next.SignerState = failover.SignerState{Generation: gen, Phase: failover.SignerImporting, KeyStatuses: map[string]string{pk: failover.SignerImporting},
		Message: fmt.Sprintf("installing validator %s's CometBFT key through the host (failoverd-cometbft-key)", key.Address)}
	k.state = next
	if err := k.save(); err != nil {
		return ImportReply{}, fmt.Errorf("agent: save signer state: %w", err)
	}
	// The host installs only for the generation in validator-start, and
	// beacond's gate opens only while it matches the installed key's.
	if err := k.allowValidator(gen); err != nil {
		return k.failCometBFT(pk, rep.Network, "cannot open beacond's gate: "+err.Error())
	}
	// An install the host does not answer is taken back below (failCometBFT
	// unstages), so a host that comes to it later finds nothing to install.
	if err := k.comet.stage(key, state, gen); err != nil {
		return k.failCometBFT(pk, rep.Network, "cannot stage the key for the host: "+err.Error())
	}
	a, err := k.comet.await(gen, "installed")
	if err != nil {
		return k.failCometBFT(pk, rep.Network, err.Error())
	}
	if a.verb != "installed" {
		return k.failCometBFT(pk, rep.Network, "the host answered: "+a.line)
	}
	k.state.SignerState = failover.SignerState{Generation: gen, Phase: failover.SignerImported, KeyStatuses: map[string]string{pk: "imported"},
		Message: fmt.Sprintf("CometBFT key of validator %s installed on %s with a signing state at %s (nothing at or below height %d signs: silence was proven over blocks %d to %d); "+
			"beacond restarts with it behind its gate and must run with double_sign_check_height = %d",
			key.Address, rep.Network, state, rep.NextHeight(), rep.CheckedFrom, rep.CheckedTo, cometbft.DoubleSignCheckHeight)}
	if err := k.save(); err != nil {
		return ImportReply{}, fmt.Errorf("agent: save signer state: %w", err)
	}
	return ImportReply{Generation: gen, Phase: failover.SignerImported, KeyStatuses: k.state.KeyStatuses, Message: k.state.Message, Network: rep.Network}, nil
}

// recoverCometBFT settles an install the agent was waiting for when it
// stopped, from the host's answer if there is one by now; otherwise the
// signer stays "importing" and failoverd's import timeout decides.
func (k *keys) recoverCometBFT() error {
	if !k.comet.installs() || k.state.Phase != failover.SignerImporting {
		return nil
	}
	b, err := readSmall(filepath.Join(k.comet.o.KeyDir, CometBFTResult), maxResultSize)
	if err != nil {
		return nil
	}
	line, _, _ := strings.Cut(string(b), "\n")
	a, ok := parseAnswer(strings.TrimSpace(line))
	if !ok || !a.answers(k.state.Generation) {
		return nil
	}
	statuses := map[string]string{}
	for pk := range k.state.KeyStatuses {
		statuses[pk] = "error"
	}
	if a.verb == "installed" {
		for pk := range statuses {
			statuses[pk] = "imported"
		}
		k.state.SignerState = failover.SignerState{Generation: k.state.Generation, Phase: failover.SignerImported, KeyStatuses: statuses,
			Message: "CometBFT key installed (the host answered while the agent was restarting); beacond must run with double_sign_check_height = " + strconv.Itoa(cometbft.DoubleSignCheckHeight)}
	} else {
		k.closeValidator()
		_ = k.comet.unstage()
		k.state.SignerState = failover.SignerState{Generation: k.state.Generation, Phase: failover.SignerFailed, KeyStatuses: statuses,
			Message: "the host answered while the agent was restarting: " + a.line + "; beacond's gate is closed"}
	}
	if err := k.save(); err != nil {
		return fmt.Errorf("agent: save signer state: %w", err)
	}
	return nil
}

// failCometBFT stops an install: beacond's gate closes (a key the host did
// install never starts signing) and the staged files go. The generation
// stays spent.
func (k *keys) failCometBFT(pk, network, why string) (ImportReply, error) {
	k.closeValidator()
	if err := k.comet.unstage(); err != nil {
		why += "; removing the staged key failed too (" + err.Error() + "): remove " + k.comet.o.KeyDir + "/" + CometBFTKeyFile + " by hand"
	}
	statuses := map[string]string{pk: "error"}
	k.state.SignerState = failover.SignerState{Generation: k.state.Generation, Phase: failover.SignerFailed, KeyStatuses: statuses,
		Message: why + "; beacond's gate is closed (no validator-start): it stays stopped until a person looks (journalctl -u failoverd-cometbft-key -u failoverd-beacon)"}
	if err := k.save(); err != nil {
		why += "; saving the state failed: " + err.Error()
	}
	return ImportReply{Generation: k.state.Generation, Phase: failover.SignerFailed, KeyStatuses: statuses, Message: k.state.Message, Network: network},
		refuse(http.StatusConflict, "import stopped: %s", why)
}

// fenceCometBFT removes the key on a failback grant (already checked):
// the host stops beacond, puts a throwaway key back and leaves beacond's
// last signing state, which goes back in the reply for the home signer.
// Called with k.mu held.
func (k *keys) fenceCometBFT(g grant.Grant) (FenceReply, error) {
	again := k.state.Phase == failover.SignerFenced && k.state.Generation == g.Generation
	a, err := k.comet.remove(g.Generation, again)
	// Whatever the host answered: beacond's gate closes, so a key still
	// installed never starts again.
	k.closeValidator()
	if err == nil && a.verb != "removed" {
		err = fmt.Errorf("the host answered: %s", a.line)
	}
	if err != nil {
		k.state.SignerState = failover.SignerState{Generation: g.Generation, Phase: failover.SignerFailed,
			Message: "fence incomplete: " + err.Error() + "; beacond's gate is closed; check the host (journalctl -u failoverd-cometbft-key)"}
		if serr := k.save(); serr != nil {
			return FenceReply{}, fmt.Errorf("agent: save signer state: %w (and the fence: %w)", serr, err)
		}
		return FenceReply{}, &refusal{code: http.StatusBadGateway, msg: "fence incomplete: " + err.Error()}
	}
	status := "deleted"
	if again {
		// A repeat (a lost reply): the key was gone already.
		status = "not_active"
	}
	statuses := map[string]string{}
	for _, pk := range g.Pubkeys {
		statuses[approval.NormalizePubkey(pk)] = status
	}
	reply := FenceReply{FenceReport: failover.FenceReport{KeyStatuses: statuses}}
	reply.PrivValidatorState, reply.Message = k.comet.returnedState()
	k.state.SignerState = failover.SignerState{Generation: g.Generation, Phase: failover.SignerFenced, KeyStatuses: statuses,
		Message: "CometBFT key removed; beacond runs with a throwaway key. " + reply.Message}
	if err := k.save(); err != nil {
		return FenceReply{}, fmt.Errorf("agent: save signer state: %w", err)
	}
	return reply, nil
}

// returnedState is beacond's signing state the host left, if any, with a
// word on what it is.
func (c *cometKeys) returnedState() (string, string) {
	b, err := readSmall(filepath.Join(c.o.KeyDir, CometBFTReturnedState), privval.MaxStateFileSize)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "", "beacond had no validator key or no signing state: there is no state to return"
	case err != nil:
		return "", "beacond's last signing state cannot be read: " + err.Error()
	}
	st, err := privval.ParseState(b)
	if err != nil {
		return "", "beacond's last signing state is not usable: " + err.Error()
	}
	return string(b), "beacond's last signing state (" + st.String() + ") is returned: the home signer must start at or above it"
}

// cometChain answers POST /v1/chain kind "cometbft": cometbft.Check on the
// local node for the one key in the request.
func (s *server) cometChain(w http.ResponseWriter, r *http.Request, req ChainRequest) {
	c := s.keys.comet
	if c == nil {
		writeJSON(w, http.StatusNotImplemented, map[string]string{"error": "this agent has no CometBFT node configured (--cometbft-url)"})
		return
	}
	if len(req.Pubkeys) != 1 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("a CometBFT validator has one key; %d pubkeys given", len(req.Pubkeys))})
		return
	}
	blocks := req.Blocks
	if blocks == 0 {
		blocks = c.o.Blocks
	}
	// As with epochs: fewer than the minimum is asked as the minimum.
	blocks = max(blocks, cometbft.MinBlocks)
	ctx, cancel := context.WithTimeout(r.Context(), cometCheckTimeout)
	defer cancel()
	rep, err := cometbft.Check(ctx, c.client, cometbft.Identity{Pubkey: req.Pubkeys[0]}, blocks, s.o.Now())
	switch {
	case errors.Is(err, cometbft.ErrInvalidArgument):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
	case err != nil:
		writeJSON(w, http.StatusBadGateway, map[string]string{"error": err.Error()})
	default:
		writeJSON(w, http.StatusOK, rep)
	}
}

// hostAnswer is one line of the host's result file.
type hostAnswer struct {
	verb, gen, why string
	line           string
}

func parseAnswer(line string) (hostAnswer, bool) {
	a := hostAnswer{line: line}
	verb, rest, ok := strings.Cut(line, " ")
	if !ok {
		return a, false
	}
	a.verb = verb
	switch verb {
	case "installed", "removed":
		a.gen = rest
	case "refused", "failed":
		if a.gen, a.why, ok = strings.Cut(rest, ": "); !ok {
			return a, false
		}
	default:
		return a, false
	}
	return a, a.gen != ""
}

// answers reports whether a is the host's answer to this agent's request
// for gen. A refusal or failure for an unreadable generation ("unknown")
// answers it too: the host read a request and dropped it.
func (a hostAnswer) answers(gen int64) bool {
	if a.gen == strconv.FormatInt(gen, 10) {
		return true
	}
	return a.gen == "unknown" && (a.verb == "refused" || a.verb == "failed")
}

// stage writes the key files, then the request, for the host. Anything
// left of earlier requests goes first, so the answer awaited is to this one.
func (c *cometKeys) stage(key privval.Key, st privval.State, gen int64) error {
	if err := c.unstage(); err != nil {
		return err
	}
	if err := removeIfThere(filepath.Join(c.o.KeyDir, CometBFTResult)); err != nil {
		return err
	}
	kb := key.File()
	defer clear(kb)
	if len(kb) == 0 {
		return errors.New("the checked key has no file form")
	}
	if err := writeAtomic(filepath.Join(c.o.KeyDir, CometBFTKeyFile), kb); err != nil {
		return err
	}
	if err := writeAtomic(filepath.Join(c.o.KeyDir, CometBFTStateFile), st.File()); err != nil {
		return err
	}
	return writeAtomic(filepath.Join(c.o.KeyDir, CometBFTInstallRequested), fmt.Appendf(nil, "%d\n", gen))
}

// unstage removes the requests and the staged files (the private key among
// them) and any temporary file a crash left.
func (c *cometKeys) unstage() error {
	var errs []error
	for _, name := range []string{CometBFTInstallRequested, CometBFTRemoveRequested, CometBFTKeyFile, CometBFTStateFile} {
		for _, p := range []string{filepath.Join(c.o.KeyDir, name), tempName(filepath.Join(c.o.KeyDir, name))} {
			if err := removeIfThere(p); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// remove asks the host to remove the key for gen and waits for it. A repeat
// (again) keeps the state the first removal returned.
func (c *cometKeys) remove(gen int64, again bool) (hostAnswer, error) {
	// An install still pending is superseded by the failback grant.
	if err := c.unstage(); err != nil {
		return hostAnswer{}, err
	}
	if err := removeIfThere(filepath.Join(c.o.KeyDir, CometBFTResult)); err != nil {
		return hostAnswer{}, err
	}
	if !again {
		if err := removeIfThere(filepath.Join(c.o.KeyDir, CometBFTReturnedState)); err != nil {
			return hostAnswer{}, err
		}
	}
	if err := writeAtomic(filepath.Join(c.o.KeyDir, CometBFTRemoveRequested), fmt.Appendf(nil, "%d\n", gen)); err != nil {
		return hostAnswer{}, err
	}
	return c.await(gen, "removed")
}

// await waits for the host's answer to the request for gen. It runs on the
// real clock and is not cancelled with the request: the host acts whether
// or not the caller still listens, and the outcome must be recorded.
func (c *cometKeys) await(gen int64, want string) (hostAnswer, error) {
	deadline := time.Now().Add(c.o.HostTimeout)
	path := filepath.Join(c.o.KeyDir, CometBFTResult)
	for {
		b, err := readSmall(path, maxResultSize)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return hostAnswer{}, fmt.Errorf("cannot read the host's answer: %w", err)
		}
		if err == nil {
			line, _, _ := strings.Cut(string(b), "\n")
			if a, ok := parseAnswer(strings.TrimSpace(line)); ok && a.answers(gen) {
				return a, nil
			}
		}
		if time.Now().After(deadline) {
			return hostAnswer{}, fmt.Errorf("the host did not answer %q for generation %d within %s: whether it acted is unknown", want, gen, c.o.HostTimeout)
		}
		time.Sleep(c.o.PollInterval)
	}
}

func tempName(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
}

// writeAtomic writes path (0600) through a temporary file and one rename,
// so the host never reads half a file, and a request file appears only
// whole.
func writeAtomic(path string, b []byte) error {
	tmp := tempName(path)
	// A left-over temporary file could keep a wider mode through O_TRUNC.
	if err := removeIfThere(tmp); err != nil {
		return err
	}
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func removeIfThere(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// readSmall reads at most limit bytes of a regular file.
func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is over %d bytes", path, limit)
	}
	return b, nil
}
