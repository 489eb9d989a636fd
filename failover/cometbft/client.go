// Package cometbft is a client of the few CometBFT RPC routes failoverd
// needs to decide whether a Berachain validator key may move: /status
// (which chain, how high, is this node caught up), /commit?height= (who
// signed each block) and /validators (is the key in the validator set).
// It speaks JSON-RPC 2.0 over HTTP GET (the URI form every CometBFT since
// v0.34 serves, v0.38 and v1.x alike), reading CometBFT's amino-style JSON:
// int64 values as decimal strings, public keys as {type, value}.
//
// Check is the chain-silence decision of DESIGN.md rule 4 for CometBFT
// chains: the validator's address is in none of the last N commits.
// Anything it cannot establish is not silence (rule 7).
package cometbft

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults for a Client.
const (
	DefaultTimeout      = 15 * time.Second
	DefaultMaxBodyBytes = 4 << 20
	maxErrorBodyBytes   = 64 << 10
	// MaxPerPage is CometBFT's largest /validators page.
	MaxPerPage = 100
	// maxValidators bounds the pages a node can make us fetch. Berachain's
	// active set is a few hundred at most.
	maxValidators = 10_000
)

// Sentinel errors, checked with errors.Is.
var (
	// ErrRPC: the node answered with a JSON-RPC error (*RPCError).
	ErrRPC = errors.New("cometbft: RPC error")
	// ErrUnexpected: a non-200 reply without a JSON-RPC error in it.
	ErrUnexpected = errors.New("cometbft: unexpected HTTP status")
	// ErrMalformed: the reply does not have the shape CometBFT sends.
	ErrMalformed = errors.New("cometbft: malformed reply")
	// ErrTooLarge: the reply is larger than the client's body limit.
	ErrTooLarge = errors.New("cometbft: reply too large")
	// ErrInvalidArgument: the request makes no sense; nothing was sent.
	ErrInvalidArgument = errors.New("cometbft: invalid argument")
)

// RPCError is a reply carrying a JSON-RPC error object (RPC true), or a
// non-200 reply without one. CometBFT answers errors with HTTP 500 and
// {"code": -32603, "message": "Internal error", "data": "<why>"}.
type RPCError struct {
	Op         string
	StatusCode int
	RPC        bool
	Code       int
	Message    string
	Data       string
}

func (e *RPCError) Error() string {
	if !e.RPC {
		return fmt.Sprintf("cometbft %s: HTTP %d: %s", e.Op, e.StatusCode, http.StatusText(e.StatusCode))
	}
	msg := e.Message
	if e.Data != "" {
		msg += ": " + e.Data
	}
	return fmt.Sprintf("cometbft %s: HTTP %d: RPC error %d: %s", e.Op, e.StatusCode, e.Code, msg)
}

// Unwrap is ErrRPC for a JSON-RPC error, ErrUnexpected otherwise.
func (e *RPCError) Unwrap() error {
	if !e.RPC {
		return ErrUnexpected
	}
	return ErrRPC
}

// Client talks to one CometBFT node's RPC (beacond serves it on 26657).
// Safe for concurrent use.
type Client struct {
	base    *url.URL
	hc      *http.Client
	timeout time.Duration
	maxBody int64
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (TLS, proxies, the agent's mTLS).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTimeout bounds every call in addition to ctx; ≤0 means no extra bound.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithMaxBodyBytes bounds the size of a reply.
func WithMaxBodyBytes(n int64) Option { return func(c *Client) { c.maxBody = n } }

// New returns a client for the RPC at baseURL (http(s)://host:port, with
// an optional path prefix, e.g. a proxy through the standby agent).
func New(baseURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("%w: base URL: %v", ErrInvalidArgument, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: base URL must be http(s)://host[:port][/prefix]", ErrInvalidArgument)
	}
	c := &Client{base: u, timeout: DefaultTimeout, maxBody: DefaultMaxBodyBytes}
	for _, o := range opts {
		o(c)
	}
	if c.hc == nil {
		c.hc = &http.Client{}
	}
	if c.maxBody <= 0 {
		c.maxBody = DefaultMaxBodyBytes
	}
	return c, nil
}

// String names the endpoint without credentials.
func (c *Client) String() string { return c.base.Redacted() }

var (
	addressRE = regexp.MustCompile(`^[0-9A-Fa-f]{40}$`)
	int64RE   = regexp.MustCompile(`^-?(0|[1-9][0-9]{0,18})$`)
)

// parseInt64 reads CometBFT's int64 (a decimal string).
func parseInt64(s string) (int64, bool) {
	if !int64RE.MatchString(s) {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// ValidAddress reports whether s is a CometBFT address: 20 bytes of hex.
func ValidAddress(s string) bool { return addressRE.MatchString(s) }

// PubKey is a public key as the RPC shows it.
type PubKey struct {
	Type  string `json:"type"`
	Value string `json:"value"` // base64
}

// Status is GET /status.
type Status struct {
	// Network is the chain ID (node_info.network), e.g.
	// "mainnet-beacon-80094" for Berachain mainnet.
	Network         string
	NodeID          string
	Moniker         string
	Version         string
	LatestHeight    int64
	LatestBlockTime time.Time
	// EarliestHeight is the lowest block the node still has.
	EarliestHeight int64
	CatchingUp     bool
	// Validator is the node's own key (validator_info); on a standby
	// without the validator's key it is the placeholder beacond made.
	Validator NodeValidator
}

// NodeValidator is /status validator_info.
type NodeValidator struct {
	Address     string
	PubKey      PubKey
	VotingPower int64
}

// Status fetches the node's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	res, err := c.get(ctx, "status", "/status", nil)
	if err != nil {
		return Status{}, err
	}
	return decodeStatus(res)
}

func decodeStatus(res json.RawMessage) (Status, error) {
	var r struct {
		NodeInfo *struct {
			ID      string  `json:"id"`
			Network *string `json:"network"`
			Version string  `json:"version"`
			Moniker string  `json:"moniker"`
		} `json:"node_info"`
		SyncInfo *struct {
			LatestHeight   *string `json:"latest_block_height"`
			LatestTime     *string `json:"latest_block_time"`
			EarliestHeight *string `json:"earliest_block_height"`
			CatchingUp     *bool   `json:"catching_up"`
		} `json:"sync_info"`
		ValidatorInfo *struct {
			Address     *string `json:"address"`
			PubKey      *PubKey `json:"pub_key"`
			VotingPower *string `json:"voting_power"`
		} `json:"validator_info"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return Status{}, fmt.Errorf("%w: status: %v", ErrMalformed, err)
	}
	if r.NodeInfo == nil || r.NodeInfo.Network == nil || *r.NodeInfo.Network == "" {
		return Status{}, fmt.Errorf("%w: status: node_info.network (the chain ID) required", ErrMalformed)
	}
	si := r.SyncInfo
	if si == nil || si.LatestHeight == nil || si.LatestTime == nil || si.CatchingUp == nil {
		return Status{}, fmt.Errorf("%w: status: sync_info with latest_block_height, latest_block_time, catching_up required", ErrMalformed)
	}
	s := Status{Network: *r.NodeInfo.Network, NodeID: r.NodeInfo.ID, Moniker: r.NodeInfo.Moniker, Version: r.NodeInfo.Version, CatchingUp: *si.CatchingUp}
	var ok bool
	if s.LatestHeight, ok = parseInt64(*si.LatestHeight); !ok || s.LatestHeight < 0 {
		return Status{}, fmt.Errorf("%w: status: latest_block_height %q", ErrMalformed, short(*si.LatestHeight))
	}
	t, err := time.Parse(time.RFC3339Nano, *si.LatestTime)
	if err != nil {
		return Status{}, fmt.Errorf("%w: status: latest_block_time %q", ErrMalformed, short(*si.LatestTime))
	}
	s.LatestBlockTime = t.UTC()
	if si.EarliestHeight != nil {
		if s.EarliestHeight, ok = parseInt64(*si.EarliestHeight); !ok || s.EarliestHeight < 0 || s.EarliestHeight > s.LatestHeight {
			return Status{}, fmt.Errorf("%w: status: earliest_block_height %q", ErrMalformed, short(*si.EarliestHeight))
		}
	}
	if vi := r.ValidatorInfo; vi != nil {
		if vi.Address != nil {
			s.Validator.Address = strings.ToUpper(*vi.Address)
		}
		if vi.PubKey != nil {
			s.Validator.PubKey = *vi.PubKey
		}
		if vi.VotingPower != nil {
			if s.Validator.VotingPower, ok = parseInt64(*vi.VotingPower); !ok || s.Validator.VotingPower < 0 {
				return Status{}, fmt.Errorf("%w: status: validator_info.voting_power %q", ErrMalformed, short(*vi.VotingPower))
			}
		}
	}
	return s, nil
}

// BlockIDFlag says what a validator's entry in a commit holds.
type BlockIDFlag int

// The flags of CometBFT's CommitSig. 1–3 are every CometBFT's; 4–7 come
// with BLS signature aggregation (berachain/cometbft, which beacond runs):
// the validator voted, and its signature is folded into an aggregate,
// carried on this entry or on another one.
const (
	FlagAbsent          BlockIDFlag = 1
	FlagCommit          BlockIDFlag = 2
	FlagNil             BlockIDFlag = 3
	FlagAggCommit       BlockIDFlag = 4
	FlagAggCommitAbsent BlockIDFlag = 5
	FlagAggNil          BlockIDFlag = 6
	FlagAggNilAbsent    BlockIDFlag = 7
)

// Voted reports whether the flag records a vote by the validator — for
// the block or for nil, signed alone or aggregated. Every one of them is
// the validator's key signing.
func (f BlockIDFlag) Voted() bool { return f >= FlagCommit && f <= FlagAggNilAbsent }

func (f BlockIDFlag) String() string {
	switch f {
	case FlagAbsent:
		return "absent"
	case FlagCommit:
		return "commit"
	case FlagNil:
		return "nil"
	case FlagAggCommit:
		return "aggregated commit"
	case FlagAggCommitAbsent:
		return "aggregated commit (signature elsewhere)"
	case FlagAggNil:
		return "aggregated nil"
	case FlagAggNilAbsent:
		return "aggregated nil (signature elsewhere)"
	}
	return fmt.Sprintf("flag %d", int(f))
}

// CommitSig is one validator's entry in a commit. Address is empty for
// absent entries.
type CommitSig struct {
	Flag    BlockIDFlag
	Address string // uppercase hex
}

// Commit is GET /commit?height=: the signatures that committed a block.
type Commit struct {
	ChainID string
	Height  int64
	Round   int32
	Time    time.Time
	// Canonical is false for the latest block, whose commit is the node's
	// own view until the next block carries it.
	Canonical  bool
	Signatures []CommitSig
}

// Vote returns the first entry that is a vote by one of the addresses.
func (c Commit) Vote(addresses map[string]bool) (CommitSig, bool) {
	for _, s := range c.Signatures {
		if s.Flag.Voted() && addresses[s.Address] {
			return s, true
		}
	}
	return CommitSig{}, false
}

// Commit fetches the commit of a block (height ≥ 1).
func (c *Client) Commit(ctx context.Context, height int64) (Commit, error) {
	if height < 1 {
		return Commit{}, fmt.Errorf("%w: commit height %d (heights start at 1)", ErrInvalidArgument, height)
	}
	q := url.Values{"height": {strconv.FormatInt(height, 10)}}
	res, err := c.get(ctx, "commit", "/commit", q)
	if err != nil {
		return Commit{}, err
	}
	return decodeCommit(res, height)
}

func decodeCommit(res json.RawMessage, height int64) (Commit, error) {
	var r struct {
		SignedHeader *struct {
			Header *struct {
				ChainID *string `json:"chain_id"`
				Height  *string `json:"height"`
				Time    *string `json:"time"`
			} `json:"header"`
			Commit *struct {
				Height     *string `json:"height"`
				Round      *int32  `json:"round"`
				Signatures *[]struct {
					Flag    *int    `json:"block_id_flag"`
					Address *string `json:"validator_address"`
				} `json:"signatures"`
			} `json:"commit"`
		} `json:"signed_header"`
		Canonical *bool `json:"canonical"`
	}
	op := fmt.Sprintf("commit %d", height)
	if err := json.Unmarshal(res, &r); err != nil {
		return Commit{}, fmt.Errorf("%w: %s: %v", ErrMalformed, op, err)
	}
	sh := r.SignedHeader
	if sh == nil || sh.Header == nil || sh.Commit == nil || r.Canonical == nil {
		return Commit{}, fmt.Errorf("%w: %s: signed_header.header, signed_header.commit and canonical required", ErrMalformed, op)
	}
	h, cm := sh.Header, sh.Commit
	if h.ChainID == nil || *h.ChainID == "" || h.Height == nil || h.Time == nil {
		return Commit{}, fmt.Errorf("%w: %s: header needs chain_id, height, time", ErrMalformed, op)
	}
	if cm.Height == nil || cm.Round == nil || cm.Signatures == nil {
		return Commit{}, fmt.Errorf("%w: %s: commit needs height, round, signatures", ErrMalformed, op)
	}
	hh, ok1 := parseInt64(*h.Height)
	ch, ok2 := parseInt64(*cm.Height)
	if !ok1 || !ok2 || hh != height || ch != height {
		// A node that answers another height than asked cannot be trusted
		// on who signed the one asked for.
		return Commit{}, fmt.Errorf("%w: %s: reply is for header height %q, commit height %q", ErrMalformed, op, short(*h.Height), short(*cm.Height))
	}
	if *cm.Round < 0 {
		return Commit{}, fmt.Errorf("%w: %s: round %d", ErrMalformed, op, *cm.Round)
	}
	t, err := time.Parse(time.RFC3339Nano, *h.Time)
	if err != nil {
		return Commit{}, fmt.Errorf("%w: %s: header time %q", ErrMalformed, op, short(*h.Time))
	}
	out := Commit{ChainID: *h.ChainID, Height: height, Round: *cm.Round, Time: t.UTC(), Canonical: *r.Canonical}
	if len(*cm.Signatures) == 0 {
		return Commit{}, fmt.Errorf("%w: %s: no signatures", ErrMalformed, op)
	}
	seen := map[string]bool{}
	for i, s := range *cm.Signatures {
		if s.Flag == nil {
			return Commit{}, fmt.Errorf("%w: %s: signatures[%d] has no block_id_flag", ErrMalformed, op, i)
		}
		f := BlockIDFlag(*s.Flag)
		addr := ""
		if s.Address != nil {
			addr = strings.ToUpper(*s.Address)
		}
		switch {
		case f == FlagAbsent:
			if addr != "" {
				return Commit{}, fmt.Errorf("%w: %s: signatures[%d] is absent but names validator %s", ErrMalformed, op, i, short(addr))
			}
		case f.Voted():
			if !ValidAddress(addr) {
				return Commit{}, fmt.Errorf("%w: %s: signatures[%d] (%s) validator_address %q is not 20 bytes of hex", ErrMalformed, op, i, f, short(addr))
			}
			if seen[addr] {
				return Commit{}, fmt.Errorf("%w: %s: validator %s appears twice", ErrMalformed, op, addr)
			}
			seen[addr] = true
		default:
			// An unknown flag may well be a vote: stop rather than guess.
			return Commit{}, fmt.Errorf("%w: %s: signatures[%d] has unknown block_id_flag %d", ErrMalformed, op, i, *s.Flag)
		}
		out.Signatures = append(out.Signatures, CommitSig{Flag: f, Address: addr})
	}
	return out, nil
}

// Validator is one entry of GET /validators.
type Validator struct {
	Address          string // uppercase hex
	PubKey           PubKey
	VotingPower      int64
	ProposerPriority int64
}

// ValidatorSet is the whole set at one height.
type ValidatorSet struct {
	Height     int64
	Validators []Validator
}

// validatorsPage is one page of GET /validators.
type validatorsPage struct {
	Height     int64
	Validators []Validator
	Count      int64
	Total      int64
}

// Validators fetches the whole validator set at height (0: the latest),
// MaxPerPage per request. Every page must be of the same height and total.
func (c *Client) Validators(ctx context.Context, height int64) (ValidatorSet, error) {
	if height < 0 {
		return ValidatorSet{}, fmt.Errorf("%w: validators height %d", ErrInvalidArgument, height)
	}
	var set ValidatorSet
	var total int64 = -1
	seen := map[string]bool{}
	for page := int64(1); ; page++ {
		q := url.Values{"page": {strconv.FormatInt(page, 10)}, "per_page": {strconv.Itoa(MaxPerPage)}}
		if height > 0 {
			q.Set("height", strconv.FormatInt(height, 10))
		}
		res, err := c.get(ctx, "validators", "/validators", q)
		if err != nil {
			return ValidatorSet{}, err
		}
		p, err := decodeValidatorsPage(res)
		if err != nil {
			return ValidatorSet{}, err
		}
		if total < 0 {
			if p.Total < 1 || p.Total > maxValidators {
				return ValidatorSet{}, fmt.Errorf("%w: validators: total %d (want 1 to %d)", ErrMalformed, p.Total, maxValidators)
			}
			if height > 0 && p.Height != height {
				return ValidatorSet{}, fmt.Errorf("%w: validators: asked for height %d, got %d", ErrMalformed, height, p.Height)
			}
			total, set.Height = p.Total, p.Height
		}
		if p.Total != total || p.Height != set.Height {
			return ValidatorSet{}, fmt.Errorf("%w: validators page %d: height %d total %d, page 1 said height %d total %d",
				ErrMalformed, page, p.Height, p.Total, set.Height, total)
		}
		if len(p.Validators) == 0 {
			return ValidatorSet{}, fmt.Errorf("%w: validators page %d is empty before all %d were seen", ErrMalformed, page, total)
		}
		for _, v := range p.Validators {
			if seen[v.Address] {
				return ValidatorSet{}, fmt.Errorf("%w: validators: %s listed twice", ErrMalformed, v.Address)
			}
			seen[v.Address] = true
			set.Validators = append(set.Validators, v)
		}
		switch n := int64(len(set.Validators)); {
		case n == total:
			return set, nil
		case n > total:
			return ValidatorSet{}, fmt.Errorf("%w: validators: %d listed, total says %d", ErrMalformed, n, total)
		}
	}
}

func decodeValidatorsPage(res json.RawMessage) (validatorsPage, error) {
	var r struct {
		BlockHeight *string `json:"block_height"`
		Validators  *[]struct {
			Address          *string `json:"address"`
			PubKey           *PubKey `json:"pub_key"`
			VotingPower      *string `json:"voting_power"`
			ProposerPriority *string `json:"proposer_priority"`
		} `json:"validators"`
		Count *string `json:"count"`
		Total *string `json:"total"`
	}
	if err := json.Unmarshal(res, &r); err != nil {
		return validatorsPage{}, fmt.Errorf("%w: validators: %v", ErrMalformed, err)
	}
	if r.BlockHeight == nil || r.Validators == nil || r.Count == nil || r.Total == nil {
		return validatorsPage{}, fmt.Errorf("%w: validators: block_height, validators, count and total required", ErrMalformed)
	}
	var p validatorsPage
	var ok1, ok2, ok3 bool
	p.Height, ok1 = parseInt64(*r.BlockHeight)
	p.Count, ok2 = parseInt64(*r.Count)
	p.Total, ok3 = parseInt64(*r.Total)
	if !ok1 || !ok2 || !ok3 || p.Height < 1 || p.Count < 0 || p.Total < 0 {
		return validatorsPage{}, fmt.Errorf("%w: validators: block_height, count and total must be decimal strings", ErrMalformed)
	}
	if p.Count != int64(len(*r.Validators)) {
		return validatorsPage{}, fmt.Errorf("%w: validators: count %d but %d listed", ErrMalformed, p.Count, len(*r.Validators))
	}
	for i, v := range *r.Validators {
		if v.Address == nil || !ValidAddress(*v.Address) || v.PubKey == nil || v.PubKey.Type == "" || v.PubKey.Value == "" || v.VotingPower == nil {
			return validatorsPage{}, fmt.Errorf("%w: validators[%d] needs address (20 bytes of hex), pub_key and voting_power", ErrMalformed, i)
		}
		val := Validator{Address: strings.ToUpper(*v.Address), PubKey: *v.PubKey}
		var ok bool
		if val.VotingPower, ok = parseInt64(*v.VotingPower); !ok || val.VotingPower < 0 {
			return validatorsPage{}, fmt.Errorf("%w: validators[%d] voting_power %q", ErrMalformed, i, short(*v.VotingPower))
		}
		if v.ProposerPriority != nil {
			if val.ProposerPriority, ok = parseInt64(*v.ProposerPriority); !ok {
				return validatorsPage{}, fmt.Errorf("%w: validators[%d] proposer_priority %q", ErrMalformed, i, short(*v.ProposerPriority))
			}
		}
		p.Validators = append(p.Validators, val)
	}
	return p, nil
}

// get sends GET path?q and returns the JSON-RPC result.
func (c *Client) get(ctx context.Context, op, path string, q url.Values) (json.RawMessage, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	u := c.base.JoinPath(path)
	if q != nil {
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("cometbft %s: %w", op, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cometbft %s: %w", op, err)
	}
	defer resp.Body.Close()
	limit := c.maxBody
	if resp.StatusCode != http.StatusOK {
		limit = min(limit, maxErrorBodyBytes)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("cometbft %s: reading reply: %w", op, err)
	}
	if int64(len(b)) > limit {
		if resp.StatusCode != http.StatusOK {
			return nil, &RPCError{Op: op, StatusCode: resp.StatusCode}
		}
		return nil, fmt.Errorf("%w: %s: more than %d bytes", ErrTooLarge, op, c.maxBody)
	}
	return decodeEnvelope(op, resp.StatusCode, b)
}

// decodeEnvelope reads the JSON-RPC 2.0 envelope: a result on success, an
// error object otherwise (CometBFT sends errors with HTTP 500, but a 200
// with an error is an error too).
func decodeEnvelope(op string, status int, b []byte) (json.RawMessage, error) {
	var env struct {
		JSONRPC *string         `json:"jsonrpc"`
		Result  json.RawMessage `json:"result"`
		Error   *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
			Data    string `json:"data"`
		} `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&env); err != nil || env.JSONRPC == nil {
		if status != http.StatusOK {
			return nil, &RPCError{Op: op, StatusCode: status}
		}
		if err == nil {
			err = errors.New("no jsonrpc member")
		}
		return nil, fmt.Errorf("%w: %s: not a JSON-RPC reply: %v", ErrMalformed, op, err)
	}
	if *env.JSONRPC != "2.0" {
		return nil, fmt.Errorf("%w: %s: jsonrpc %q, want \"2.0\"", ErrMalformed, op, short(*env.JSONRPC))
	}
	if env.Error != nil {
		return nil, &RPCError{Op: op, StatusCode: status, RPC: true, Code: env.Error.Code, Message: shorten(env.Error.Message, 200), Data: shorten(env.Error.Data, 300)}
	}
	if status != http.StatusOK {
		return nil, &RPCError{Op: op, StatusCode: status}
	}
	if len(env.Result) == 0 || string(env.Result) == "null" {
		return nil, fmt.Errorf("%w: %s: no result", ErrMalformed, op)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: %s: trailing data after the reply", ErrMalformed, op)
	}
	return env.Result, nil
}

func short(s string) string { return shorten(s, 80) }

// shorten keeps a node's text from flooding logs and refusal messages.
func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
