// Package keymanager is a client of the Ethereum Keymanager API's local
// keystore routes (shared/specs/keymanager-apis: GET, POST and DELETE
// /eth/v1/keystores), as served by a validator client.
//
// failoverd uses DELETE to fence the home signer (DESIGN.md rule 4) and the
// standby agent uses POST to import keys with their slashing protection. The
// daemon itself never calls ImportKeystores: keystores and passwords travel
// from the approver's machine to the standby (rule 2). Nothing in this
// package logs or puts into an error a token, a keystore or a password.
//
// Fenced is the decision on a DELETE reply: it is nil only when every key
// asked for came back deleted or not_active. Anything else — not_found,
// error, a missing entry, a status the spec does not list — is not fenced
// (rule 7, stop on anything unknown).
package keymanager

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
	"strings"
	"time"
)

// Defaults for a Client.
const (
	DefaultTimeout      = 30 * time.Second
	DefaultMaxBodyBytes = 32 << 20 // slashing protection for many keys can be large
	maxErrorBodyBytes   = 64 << 10
)

// Sentinel errors, checked with errors.Is. An *APIError wraps one of the
// status ones.
var (
	ErrBadRequest   = errors.New("keymanager: bad request (400)")
	ErrUnauthorized = errors.New("keymanager: unauthorized, no token found (401)")
	ErrForbidden    = errors.New("keymanager: forbidden, token invalid (403)")
	ErrNotFound     = errors.New("keymanager: path not found (404)")
	ErrServer       = errors.New("keymanager: internal server error (500)")
	ErrUnexpected   = errors.New("keymanager: unexpected HTTP status")
	// ErrMalformed: the reply does not have the shape the spec requires.
	ErrMalformed = errors.New("keymanager: malformed reply")
	// ErrTooLarge: the reply is larger than the client's body limit.
	ErrTooLarge = errors.New("keymanager: reply too large")
	// ErrInvalidArgument: the request would not follow the spec; nothing was sent.
	ErrInvalidArgument = errors.New("keymanager: invalid argument")
	// ErrNotFenced is wrapped by the error Fenced returns.
	ErrNotFenced = errors.New("keymanager: home signer not proven fenced")
	// ErrNotImported is wrapped by the error AllImported returns.
	ErrNotImported = errors.New("keymanager: not every keystore imported")
)

// APIError is a non-2xx reply. Message is the spec's ErrorResponse.message
// when the body had one.
type APIError struct {
	Op         string // "list", "import", "delete"
	StatusCode int
	Message    string
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("keymanager %s: HTTP %d: %s", e.Op, e.StatusCode, msg)
}

// Unwrap maps the status to a sentinel.
func (e *APIError) Unwrap() error {
	switch e.StatusCode {
	case http.StatusBadRequest:
		return ErrBadRequest
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusForbidden:
		return ErrForbidden
	case http.StatusNotFound:
		return ErrNotFound
	case http.StatusInternalServerError:
		return ErrServer
	}
	return ErrUnexpected
}

// Client talks to one keymanager. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	token   string
	hc      *http.Client
	timeout time.Duration
	maxBody int64
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (for TLS: its Transport's
// TLSClientConfig with the validator client's CA).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTimeout bounds every call (in addition to ctx). Zero or negative
// means no extra bound.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithMaxBodyBytes bounds the size of a reply.
func WithMaxBodyBytes(n int64) Option { return func(c *Client) { c.maxBody = n } }

// New returns a client for the keymanager at baseURL (http or https; the
// spec says routes SHOULD be behind a secure channel) authenticating with
// the bearer token (the contents of the validator client's token file,
// surrounding whitespace trimmed).
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("%w: base URL: %v", ErrInvalidArgument, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: base URL must be http(s)://host[:port][/prefix]", ErrInvalidArgument)
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, fmt.Errorf("%w: empty token", ErrInvalidArgument)
	}
	c := &Client{base: u, token: token, timeout: DefaultTimeout, maxBody: DefaultMaxBodyBytes}
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

var pubkeyRE = regexp.MustCompile(`^0x[a-fA-F0-9]{96}$`)

// ValidPubkey reports whether s matches the spec's Pubkey pattern.
func ValidPubkey(s string) bool { return pubkeyRE.MatchString(s) }

// Key is one entry of ListKeystores.
type Key struct {
	ValidatingPubkey string `json:"validating_pubkey"`
	DerivationPath   string `json:"derivation_path,omitempty"`
	Readonly         bool   `json:"readonly,omitempty"`
}

// ListKeystores lists the validating pubkeys known to and decrypted by the
// keymanager.
func (c *Client) ListKeystores(ctx context.Context) ([]Key, error) {
	var reply struct {
		Data *[]struct {
			ValidatingPubkey *string `json:"validating_pubkey"`
			DerivationPath   string  `json:"derivation_path"`
			Readonly         bool    `json:"readonly"`
		} `json:"data"`
	}
	if err := c.do(ctx, "list", http.MethodGet, nil, &reply); err != nil {
		return nil, err
	}
	if reply.Data == nil {
		return nil, fmt.Errorf("%w: list: no data", ErrMalformed)
	}
	out := make([]Key, 0, len(*reply.Data))
	for i, d := range *reply.Data {
		if d.ValidatingPubkey == nil || !ValidPubkey(*d.ValidatingPubkey) {
			return nil, fmt.Errorf("%w: list: data[%d].validating_pubkey missing or not a pubkey", ErrMalformed, i)
		}
		out = append(out, Key{ValidatingPubkey: *d.ValidatingPubkey, DerivationPath: d.DerivationPath, Readonly: d.Readonly})
	}
	return out, nil
}

// DeleteStatus is a per-key status of DELETE /eth/v1/keystores.
type DeleteStatus string

// The statuses the spec lists.
const (
	Deleted   DeleteStatus = "deleted"    // key was active and removed
	NotActive DeleteStatus = "not_active" // slashing protection returned, key was not active
	NotFound  DeleteStatus = "not_found"  // no key, no slashing protection
	DelError  DeleteStatus = "error"      // found but could not be stopped
)

// KeyDeleteStatus is the outcome for one requested key. Pubkey is the key
// as requested (the reply is positional: same length and order).
type KeyDeleteStatus struct {
	Pubkey  string
	Status  DeleteStatus
	Message string
}

// DeleteResult is a DELETE reply. SlashingProtection is the EIP-3076
// interchange exactly as the keymanager returned it.
type DeleteResult struct {
	Keys               []KeyDeleteStatus
	SlashingProtection string
	// Malformed says what was wrong with a reply that did not follow the
	// spec (empty otherwise); Fenced refuses such a result.
	Malformed string
}

// DeleteKeystores asks the keymanager to stop signing with and delete the
// given keys. On ErrMalformed the returned result holds what could be read
// (keep its slashing protection: the keys may already be gone).
func (c *Client) DeleteKeystores(ctx context.Context, pubkeys []string) (DeleteResult, error) {
	if err := checkPubkeys(pubkeys); err != nil {
		return DeleteResult{}, err
	}
	body, err := json.Marshal(struct {
		Pubkeys []string `json:"pubkeys"`
	}{pubkeys})
	if err != nil {
		return DeleteResult{}, err
	}
	var reply struct {
		Data *[]struct {
			Status  *string `json:"status"`
			Message string  `json:"message"`
		} `json:"data"`
		SlashingProtection *string `json:"slashing_protection"`
	}
	if err := c.do(ctx, "delete", http.MethodDelete, body, &reply); err != nil {
		return DeleteResult{}, err
	}
	var res DeleteResult
	var problems []string
	if reply.SlashingProtection != nil {
		res.SlashingProtection = *reply.SlashingProtection
	} else {
		problems = append(problems, "no slashing_protection")
	}
	if reply.Data == nil {
		problems = append(problems, "no data")
	} else {
		data := *reply.Data
		if len(data) != len(pubkeys) {
			problems = append(problems, fmt.Sprintf("%d statuses for %d keys", len(data), len(pubkeys)))
		}
		for i, d := range data {
			if i >= len(pubkeys) {
				break
			}
			st := KeyDeleteStatus{Pubkey: pubkeys[i], Message: d.Message}
			if d.Status == nil {
				problems = append(problems, fmt.Sprintf("data[%d] has no status", i))
			} else {
				st.Status = DeleteStatus(*d.Status)
			}
			res.Keys = append(res.Keys, st)
		}
	}
	if len(problems) > 0 {
		res.Malformed = strings.Join(problems, "; ")
		return res, fmt.Errorf("%w: delete: %s", ErrMalformed, res.Malformed)
	}
	return res, nil
}

// KeyProblem is one key that is not proven fenced.
type KeyProblem struct {
	Pubkey string
	Status string // the reply's status, or "missing"
	Detail string
}

// NotFencedError lists every key Fenced refused.
type NotFencedError struct {
	Keys []KeyProblem
	// Malformed is set when the reply itself did not follow the spec.
	Malformed string
}

func (e *NotFencedError) Error() string {
	parts := make([]string, len(e.Keys))
	for i, k := range e.Keys {
		parts[i] = k.Pubkey + ": " + k.Status
		if k.Detail != "" {
			parts[i] += " (" + k.Detail + ")"
		}
	}
	msg := "home signer not proven fenced"
	if e.Malformed != "" {
		msg += ": reply does not follow the spec: " + e.Malformed
	}
	if len(e.Keys) > 0 {
		msg += fmt.Sprintf(": %d key(s): %s", len(e.Keys), strings.Join(parts, "; "))
	}
	return msg
}

// Unwrap returns ErrNotFenced.
func (e *NotFencedError) Unwrap() error { return ErrNotFenced }

// Fenced is nil only when the reply followed the spec and every key in
// pubkeys has exactly one status in the result and that status is deleted
// or not_active. Otherwise it returns
// a *NotFencedError naming each key and what was wrong: not_found (the key
// may be running somewhere this keymanager does not know), error (found but
// could not be stopped), an unknown status, or missing. Pubkeys compare
// case-insensitively.
func Fenced(res DeleteResult, pubkeys []string) error {
	byKey := map[string][]KeyDeleteStatus{}
	for _, k := range res.Keys {
		lk := strings.ToLower(k.Pubkey)
		byKey[lk] = append(byKey[lk], k)
	}
	var probs []KeyProblem
	if len(pubkeys) == 0 {
		probs = append(probs, KeyProblem{Pubkey: "(none)", Status: "no keys asked for"})
	}
	for _, pk := range pubkeys {
		got := byKey[strings.ToLower(pk)]
		switch {
		case len(got) == 0:
			probs = append(probs, KeyProblem{Pubkey: pk, Status: "missing", Detail: "no status in the reply"})
		case len(got) > 1:
			probs = append(probs, KeyProblem{Pubkey: pk, Status: "ambiguous", Detail: fmt.Sprintf("%d statuses", len(got))})
		default:
			switch got[0].Status {
			case Deleted, NotActive:
			case NotFound:
				probs = append(probs, KeyProblem{Pubkey: pk, Status: string(NotFound), Detail: "unknown to this keymanager; it may be signing elsewhere"})
			case DelError:
				probs = append(probs, KeyProblem{Pubkey: pk, Status: string(DelError), Detail: got[0].Message})
			default:
				probs = append(probs, KeyProblem{Pubkey: pk, Status: fmt.Sprintf("unknown status %q", got[0].Status), Detail: got[0].Message})
			}
		}
	}
	if len(probs) > 0 || res.Malformed != "" {
		return &NotFencedError{Keys: probs, Malformed: res.Malformed}
	}
	return nil
}

// ImportState is a per-keystore status of POST /eth/v1/keystores.
type ImportState string

// The statuses the spec lists.
const (
	Imported  ImportState = "imported"
	Duplicate ImportState = "duplicate"
	ImpError  ImportState = "error"
)

// ImportStatus is the outcome for keystores[i].
type ImportStatus struct {
	Status  ImportState
	Message string
}

// ImportKeystores imports EIP-2335 keystores (JSON text each); passwords[i]
// unlocks keystores[i]. slashingProtection is an EIP-3076 interchange
// (JSON text), sent as is; empty leaves the optional field out. The reply
// has one status per keystore, same order.
func (c *Client) ImportKeystores(ctx context.Context, keystores, passwords []string, slashingProtection string) ([]ImportStatus, error) {
	if len(keystores) == 0 {
		return nil, fmt.Errorf("%w: no keystores", ErrInvalidArgument)
	}
	if len(keystores) != len(passwords) {
		return nil, fmt.Errorf("%w: %d keystores but %d passwords", ErrInvalidArgument, len(keystores), len(passwords))
	}
	for i, ks := range keystores {
		if !json.Valid([]byte(ks)) {
			return nil, fmt.Errorf("%w: keystores[%d] is not JSON", ErrInvalidArgument, i)
		}
	}
	if slashingProtection != "" && !json.Valid([]byte(slashingProtection)) {
		return nil, fmt.Errorf("%w: slashing protection is not JSON", ErrInvalidArgument)
	}
	req := struct {
		Keystores          []string `json:"keystores"`
		Passwords          []string `json:"passwords"`
		SlashingProtection string   `json:"slashing_protection,omitempty"`
	}{keystores, passwords, slashingProtection}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	var reply struct {
		Data *[]struct {
			Status  *string `json:"status"`
			Message string  `json:"message"`
		} `json:"data"`
	}
	err = c.do(ctx, "import", http.MethodPost, body, &reply)
	clear(body) // the body held passwords
	if err != nil {
		return nil, err
	}
	if reply.Data == nil {
		return nil, fmt.Errorf("%w: import: no data", ErrMalformed)
	}
	// Every entry is kept (a missing status as ""), so that statuses
	// returned with ErrMalformed never pass AllImported: stopping at the
	// first bad entry could leave exactly n good-looking ones.
	out := make([]ImportStatus, 0, len(*reply.Data))
	var problems []string
	for i, d := range *reply.Data {
		st := ImportStatus{Message: d.Message}
		if d.Status == nil {
			problems = append(problems, fmt.Sprintf("data[%d] has no status", i))
		} else {
			st.Status = ImportState(*d.Status)
		}
		out = append(out, st)
	}
	if len(out) != len(keystores) {
		problems = append(problems, fmt.Sprintf("%d statuses for %d keystores", len(out), len(keystores)))
	}
	if len(problems) > 0 {
		return out, fmt.Errorf("%w: import: %s", ErrMalformed, strings.Join(problems, "; "))
	}
	return out, nil
}

// AllImported is nil only when there are n statuses and every one is
// imported (a duplicate means the key was already loaded on the standby,
// which a migration does not expect: stop and look).
func AllImported(statuses []ImportStatus, n int) error {
	var bad []string
	if len(statuses) != n {
		bad = append(bad, fmt.Sprintf("%d statuses for %d keystores", len(statuses), n))
	}
	for i, s := range statuses {
		if s.Status != Imported {
			d := fmt.Sprintf("keystores[%d]: %q", i, s.Status)
			if s.Message != "" {
				d += " (" + s.Message + ")"
			}
			bad = append(bad, d)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrNotImported, strings.Join(bad, "; "))
	}
	return nil
}

func checkPubkeys(pubkeys []string) error {
	if len(pubkeys) == 0 {
		return fmt.Errorf("%w: no pubkeys", ErrInvalidArgument)
	}
	seen := make(map[string]bool, len(pubkeys))
	for i, pk := range pubkeys {
		if !ValidPubkey(pk) {
			return fmt.Errorf("%w: pubkeys[%d] %q is not a 0x-prefixed 48-byte hex key", ErrInvalidArgument, i, pk)
		}
		lk := strings.ToLower(pk)
		if seen[lk] {
			return fmt.Errorf("%w: pubkeys[%d] %s repeated", ErrInvalidArgument, i, pk)
		}
		seen[lk] = true
	}
	return nil
}

func (c *Client) do(ctx context.Context, op, method string, body []byte, out any) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	u := c.base.JoinPath("/eth/v1/keystores")
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("keymanager %s: %w", op, err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.hc.Do(req)
	if err != nil {
		// url.Error carries the URL only (the token is in a header).
		return fmt.Errorf("keymanager %s: %w", op, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
		e := &APIError{Op: op, StatusCode: resp.StatusCode}
		var er struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(b, &er) == nil {
			e.Message = er.Message
		}
		return e
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBody+1))
	if err != nil {
		return fmt.Errorf("keymanager %s: reading reply: %w", op, err)
	}
	if int64(len(b)) > c.maxBody {
		return fmt.Errorf("%w: %s: more than %d bytes", ErrTooLarge, op, c.maxBody)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMalformed, op, err)
	}
	return nil
}
