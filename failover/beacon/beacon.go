// Package beacon is a client of the few Ethereum beacon node API routes
// failoverd needs to decide whether keys may move (shared/specs/beacon-apis):
// genesis (which network), node syncing (is this node's view worth
// anything), state validators (slashed or exited?) and validator liveness
// (has the key been seen signing?).
//
// Silent is the chain-silence decision of DESIGN.md rule 4: every index
// is_live=false in each of the last `need` (at least 3) finished epochs.
// Anything it cannot prove — a live sighting, a missing index, an error —
// is an error (rule 7).
package beacon

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
	DefaultMaxBodyBytes = 8 << 20
	maxErrorBodyBytes   = 64 << 10
	// MaxIDsPerRequest is the spec's maxItems for the validators id query.
	MaxIDsPerRequest = 64
)

// Sentinel errors, checked with errors.Is. *APIError wraps the status ones.
var (
	ErrBadRequest = errors.New("beacon: bad request (400)")
	ErrNotFound   = errors.New("beacon: not found (404)")
	ErrTooManyIDs = errors.New("beacon: too many validator IDs (414)")
	ErrServer     = errors.New("beacon: internal error (500)")
	ErrSyncing    = errors.New("beacon: node is syncing (503)")
	ErrUnexpected = errors.New("beacon: unexpected HTTP status")
	// ErrMalformed: the reply does not have the shape the spec requires.
	ErrMalformed = errors.New("beacon: malformed reply")
	// ErrTooLarge: the reply is larger than the client's body limit.
	ErrTooLarge = errors.New("beacon: reply too large")
	// ErrInvalidArgument: the request would not follow the spec; nothing was sent.
	ErrInvalidArgument = errors.New("beacon: invalid argument")
	// ErrNotSilent is wrapped by the error Silent returns when it could
	// not prove silence.
	ErrNotSilent = errors.New("beacon: chain silence not proven")
)

// APIError is a non-200 reply; Message is the spec's ErrorMessage.message
// when the body had one.
type APIError struct {
	Op         string
	StatusCode int
	Message    string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("beacon %s: HTTP %d: %s", e.Op, e.StatusCode, msg)
}

// Unwrap maps the status to a sentinel.
func (e *APIError) Unwrap() error {
	switch e.StatusCode {
	case http.StatusBadRequest:
		return ErrBadRequest
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusRequestURITooLong:
		return ErrTooManyIDs
	case http.StatusInternalServerError:
		return ErrServer
	case http.StatusServiceUnavailable:
		return ErrSyncing
	}
	return ErrUnexpected
}

// Client talks to one beacon node. Safe for concurrent use.
type Client struct {
	base    *url.URL
	hc      *http.Client
	timeout time.Duration
	maxBody int64
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (TLS, proxies).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTimeout bounds every call in addition to ctx; ≤0 means no extra bound.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithMaxBodyBytes bounds the size of a reply.
func WithMaxBodyBytes(n int64) Option { return func(c *Client) { c.maxBody = n } }

// New returns a client for the beacon node at baseURL.
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
	rootRE    = regexp.MustCompile(`^0x[a-fA-F0-9]{64}$`)
	forkRE    = regexp.MustCompile(`^0x[a-fA-F0-9]{8}$`)
	pubkeyRE  = regexp.MustCompile(`^0x[a-fA-F0-9]{96}$`)
	decimalRE = regexp.MustCompile(`^(0|[1-9][0-9]{0,19})$`)
	stateIDRE = regexp.MustCompile(`^(head|genesis|finalized|justified|0|[1-9][0-9]{0,19}|0x[a-fA-F0-9]{64})$`)
)

// parseUint64 reads the spec's Uint64 (a decimal string).
func parseUint64(s string) (uint64, bool) {
	if !decimalRE.MatchString(s) {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// ValidIndex reports whether s is a validator index as the spec writes it
// (a decimal uint64 string).
func ValidIndex(s string) bool { _, ok := parseUint64(s); return ok }

// Genesis is GET /eth/v1/beacon/genesis.
type Genesis struct {
	GenesisTime           uint64 // unix seconds
	GenesisValidatorsRoot string // 0x + 64 hex
	GenesisForkVersion    string // 0x + 8 hex
}

// Clock is the chain clock at mainnet's slot timing.
func (g Genesis) Clock() Clock {
	return Clock{GenesisTime: time.Unix(int64(g.GenesisTime), 0), SecondsPerSlot: 12, SlotsPerEpoch: 32}
}

// Genesis fetches the chain's genesis. 404 (genesis not yet known) wraps
// ErrNotFound.
func (c *Client) Genesis(ctx context.Context) (Genesis, error) {
	var reply struct {
		Data *struct {
			Time *string `json:"genesis_time"`
			Root *string `json:"genesis_validators_root"`
			Fork *string `json:"genesis_fork_version"`
		} `json:"data"`
	}
	if err := c.do(ctx, "genesis", http.MethodGet, "/eth/v1/beacon/genesis", nil, nil, &reply); err != nil {
		return Genesis{}, err
	}
	d := reply.Data
	if d == nil || d.Time == nil || d.Root == nil || d.Fork == nil {
		return Genesis{}, fmt.Errorf("%w: genesis: data with genesis_time, genesis_validators_root, genesis_fork_version required", ErrMalformed)
	}
	t, ok := parseUint64(*d.Time)
	if !ok {
		return Genesis{}, fmt.Errorf("%w: genesis: genesis_time %q", ErrMalformed, *d.Time)
	}
	if !rootRE.MatchString(*d.Root) {
		return Genesis{}, fmt.Errorf("%w: genesis: genesis_validators_root %q", ErrMalformed, *d.Root)
	}
	if !forkRE.MatchString(*d.Fork) {
		return Genesis{}, fmt.Errorf("%w: genesis: genesis_fork_version %q", ErrMalformed, *d.Fork)
	}
	return Genesis{GenesisTime: t, GenesisValidatorsRoot: strings.ToLower(*d.Root), GenesisForkVersion: *d.Fork}, nil
}

// SyncStatus is GET /eth/v1/node/syncing.
type SyncStatus struct {
	HeadSlot     uint64
	SyncDistance uint64
	IsSyncing    bool
	IsOptimistic bool
	ELOffline    bool
}

// Ready reports a node whose view can be trusted: synced, not optimistic,
// execution client online.
func (s SyncStatus) Ready() bool { return !s.IsSyncing && !s.IsOptimistic && !s.ELOffline }

// Syncing fetches the node's sync status. Every field the spec marks
// required must be present.
func (c *Client) Syncing(ctx context.Context) (SyncStatus, error) {
	var reply struct {
		Data *struct {
			HeadSlot     *string `json:"head_slot"`
			SyncDistance *string `json:"sync_distance"`
			IsSyncing    *bool   `json:"is_syncing"`
			IsOptimistic *bool   `json:"is_optimistic"`
			ELOffline    *bool   `json:"el_offline"`
		} `json:"data"`
	}
	if err := c.do(ctx, "syncing", http.MethodGet, "/eth/v1/node/syncing", nil, nil, &reply); err != nil {
		return SyncStatus{}, err
	}
	d := reply.Data
	if d == nil || d.HeadSlot == nil || d.SyncDistance == nil || d.IsSyncing == nil || d.IsOptimistic == nil || d.ELOffline == nil {
		return SyncStatus{}, fmt.Errorf("%w: syncing: data with head_slot, sync_distance, is_syncing, is_optimistic, el_offline required", ErrMalformed)
	}
	hs, ok1 := parseUint64(*d.HeadSlot)
	sd, ok2 := parseUint64(*d.SyncDistance)
	if !ok1 || !ok2 {
		return SyncStatus{}, fmt.Errorf("%w: syncing: head_slot/sync_distance not decimal", ErrMalformed)
	}
	return SyncStatus{HeadSlot: hs, SyncDistance: sd, IsSyncing: *d.IsSyncing, IsOptimistic: *d.IsOptimistic, ELOffline: *d.ELOffline}, nil
}

// Liveness is one data[] entry of the liveness reply.
type Liveness struct {
	Index  string
	IsLive bool
}

// Liveness asks whether the validators were seen live in epoch
// (POST /eth/v1/validator/liveness/{epoch}, body a JSON array of decimal
// index strings, at least one). Entries come back as the node sent them;
// every entry must have index and is_live (a missing is_live is not read
// as false).
func (c *Client) Liveness(ctx context.Context, epoch uint64, indices []string) ([]Liveness, error) {
	if len(indices) == 0 {
		return nil, fmt.Errorf("%w: liveness needs at least one index", ErrInvalidArgument)
	}
	for i, ix := range indices {
		if !ValidIndex(ix) {
			return nil, fmt.Errorf("%w: indices[%d] %q is not a decimal validator index", ErrInvalidArgument, i, ix)
		}
	}
	body, err := json.Marshal(indices)
	if err != nil {
		return nil, err
	}
	var reply struct {
		Data *[]struct {
			Index  *string `json:"index"`
			IsLive *bool   `json:"is_live"`
		} `json:"data"`
	}
	path := "/eth/v1/validator/liveness/" + strconv.FormatUint(epoch, 10)
	if err := c.do(ctx, "liveness", http.MethodPost, path, nil, body, &reply); err != nil {
		return nil, err
	}
	if reply.Data == nil {
		return nil, fmt.Errorf("%w: liveness epoch %d: no data", ErrMalformed, epoch)
	}
	out := make([]Liveness, 0, len(*reply.Data))
	for i, d := range *reply.Data {
		if d.Index == nil || d.IsLive == nil || !ValidIndex(*d.Index) {
			return nil, fmt.Errorf("%w: liveness epoch %d: data[%d] needs a decimal index and is_live", ErrMalformed, epoch, i)
		}
		out = append(out, Liveness{Index: *d.Index, IsLive: *d.IsLive})
	}
	return out, nil
}

// ValidatorStatus is the spec's ValidatorStatus.
type ValidatorStatus string

// The statuses the spec lists.
const (
	PendingInitialized ValidatorStatus = "pending_initialized"
	PendingQueued      ValidatorStatus = "pending_queued"
	ActiveOngoing      ValidatorStatus = "active_ongoing"
	ActiveExiting      ValidatorStatus = "active_exiting"
	ActiveSlashed      ValidatorStatus = "active_slashed"
	ExitedUnslashed    ValidatorStatus = "exited_unslashed"
	ExitedSlashed      ValidatorStatus = "exited_slashed"
	WithdrawalPossible ValidatorStatus = "withdrawal_possible"
	WithdrawalDone     ValidatorStatus = "withdrawal_done"
)

// Known reports whether the status is one the spec lists.
func (s ValidatorStatus) Known() bool {
	switch s {
	case PendingInitialized, PendingQueued, ActiveOngoing, ActiveExiting, ActiveSlashed,
		ExitedUnslashed, ExitedSlashed, WithdrawalPossible, WithdrawalDone:
		return true
	}
	return false
}

// Validator is one ValidatorResponse.
type Validator struct {
	Index   string
	Pubkey  string
	Balance string
	Status  ValidatorStatus
	// Slashed is validator.slashed from the state.
	Slashed bool
}

// IsSlashed: the status says so (active_slashed, exited_slashed) or the
// state's validator.slashed flag is set.
func (v Validator) IsSlashed() bool {
	return v.Slashed || v.Status == ActiveSlashed || v.Status == ExitedSlashed
}

// IsExitedOrExiting: any status from active_exiting on.
func (v Validator) IsExitedOrExiting() bool {
	switch v.Status {
	case ActiveExiting, ActiveSlashed, ExitedUnslashed, ExitedSlashed, WithdrawalPossible, WithdrawalDone:
		return true
	}
	return false
}

// Validators fetches validators from a state (head, genesis, finalized,
// justified, a slot, or a 0x state root) by index or pubkey. More than
// MaxIDsPerRequest ids are fetched in several GET requests. The spec lets a
// node leave out unknown ids: check with Usable.
func (c *Client) Validators(ctx context.Context, state string, ids []string) ([]Validator, error) {
	if !stateIDRE.MatchString(state) {
		return nil, fmt.Errorf("%w: state id %q", ErrInvalidArgument, state)
	}
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: no validator ids (failoverd never asks for all validators)", ErrInvalidArgument)
	}
	seen := map[string]bool{}
	for i, id := range ids {
		if !ValidIndex(id) && !pubkeyRE.MatchString(id) {
			return nil, fmt.Errorf("%w: ids[%d] %q is neither an index nor a pubkey", ErrInvalidArgument, i, id)
		}
		if seen[strings.ToLower(id)] {
			return nil, fmt.Errorf("%w: ids[%d] %q repeated", ErrInvalidArgument, i, id)
		}
		seen[strings.ToLower(id)] = true
	}
	var out []Validator
	for start := 0; start < len(ids); start += MaxIDsPerRequest {
		chunk := ids[start:min(start+MaxIDsPerRequest, len(ids))]
		q := url.Values{"id": chunk}
		var reply struct {
			ExecutionOptimistic *bool `json:"execution_optimistic"`
			Finalized           *bool `json:"finalized"`
			Data                *[]struct {
				Index     *string `json:"index"`
				Balance   *string `json:"balance"`
				Status    *string `json:"status"`
				Validator *struct {
					Pubkey  *string `json:"pubkey"`
					Slashed *bool   `json:"slashed"`
				} `json:"validator"`
			} `json:"data"`
		}
		path := "/eth/v1/beacon/states/" + url.PathEscape(state) + "/validators"
		if err := c.do(ctx, "validators", http.MethodGet, path, q, nil, &reply); err != nil {
			return nil, err
		}
		if reply.Data == nil || reply.ExecutionOptimistic == nil || reply.Finalized == nil {
			return nil, fmt.Errorf("%w: validators: execution_optimistic, finalized and data required", ErrMalformed)
		}
		for i, d := range *reply.Data {
			if d.Index == nil || !ValidIndex(*d.Index) || d.Balance == nil || d.Status == nil || d.Validator == nil ||
				d.Validator.Pubkey == nil || !pubkeyRE.MatchString(*d.Validator.Pubkey) || d.Validator.Slashed == nil {
				return nil, fmt.Errorf("%w: validators: data[%d] needs index, balance, status, validator.pubkey, validator.slashed", ErrMalformed, i)
			}
			out = append(out, Validator{Index: *d.Index, Pubkey: strings.ToLower(*d.Validator.Pubkey), Balance: *d.Balance,
				Status: ValidatorStatus(*d.Status), Slashed: *d.Validator.Slashed})
		}
	}
	return out, nil
}

// Usable is nil only when every id (index or pubkey) is in vals exactly
// once with a known status, not slashed and not exited or exiting. The
// error names each problem.
func Usable(vals []Validator, ids []string) error {
	var probs []string
	for _, id := range ids {
		var found []Validator
		for _, v := range vals {
			if v.Index == id || strings.EqualFold(v.Pubkey, id) {
				found = append(found, v)
			}
		}
		switch {
		case len(found) == 0:
			probs = append(probs, id+": not in the state")
		case len(found) > 1:
			probs = append(probs, id+": more than one validator")
		case !found[0].Status.Known():
			probs = append(probs, fmt.Sprintf("%s: unknown status %q", id, found[0].Status))
		case found[0].IsSlashed():
			probs = append(probs, fmt.Sprintf("%s: slashed (%s)", id, found[0].Status))
		case found[0].IsExitedOrExiting():
			probs = append(probs, fmt.Sprintf("%s: exited or exiting (%s)", id, found[0].Status))
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("validators not usable: %s", strings.Join(probs, "; "))
	}
	return nil
}

func (c *Client) do(ctx context.Context, op, method, path string, q url.Values, body []byte, out any) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	u := c.base.JoinPath(path)
	if q != nil {
		u.RawQuery = q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("beacon %s: %w", op, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("beacon %s: %w", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
		e := &APIError{Op: op, StatusCode: resp.StatusCode}
		var em struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &em) == nil {
			e.Message = em.Message
		}
		return e
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return fmt.Errorf("beacon %s: reading reply: %w", op, err)
	}
	if int64(len(b)) > c.maxBody {
		return fmt.Errorf("%w: %s: more than %d bytes", ErrTooLarge, op, c.maxBody)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, op, err)
	}
	return nil
}
