// Package cometbfttest is a local CometBFT RPC on 127.0.0.1 that answers
// the routes failoverd uses the way CometBFT does (v0.38 and v1.x, as
// beacond serves them on 26657): GET /status, /commit?height= and
// /validators?height=&page=&per_page=, also under the /v1 prefix.
//
// Replies are JSON-RPC 2.0 envelopes with id -1 (CometBFT's id for URI
// requests) and amino-style JSON: int64 as decimal strings, int32 and
// block_id_flag as numbers, addresses as uppercase hex, public keys as
// {type, value} with a base64 value. Errors are HTTP 500 with a JSON-RPC
// error object ({code, message, data}), as CometBFT sends them.
//
// The chain is settable: chain ID, head height and time, the earliest
// height kept, catching_up, the validator set, and which validator voted
// at which height (every validator signs every block unless told
// otherwise). Failures (any status per route), raw reply bodies and delays
// can be injected; every exchange is recorded.
package cometbfttest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Route names for Fail and Raw.
const (
	Status     = "status"
	Commit     = "commit"
	Validators = "validators"
)

// Berachain mainnet's chain ID, the default.
const MainnetChainID = "mainnet-beacon-80094"

// BlockInterval is the fake chain's block time (Berachain's ~2 s).
const BlockInterval = 2 * time.Second

// Block ID flags, as CometBFT numbers them.
const (
	FlagAbsent          = 1
	FlagCommit          = 2
	FlagNil             = 3
	FlagAggCommit       = 4
	FlagAggCommitAbsent = 5
	FlagAggNil          = 6
	FlagAggNilAbsent    = 7
)

// Validator is a validator in the fake set.
type Validator struct {
	// Address is 40 hex digits. Empty: SHA-256 of PubKey, first 20 bytes,
	// as CometBFT derives it.
	Address string
	// PubKeyType defaults to beacond's "cometbft/PubKeyBls12_381".
	PubKeyType string
	PubKey     []byte
	Power      int64
}

// Exchange is one recorded request and reply.
type Exchange struct {
	Route        string // Status, Commit, Validators or "" (unknown path)
	Path         string
	Query        string
	Status       int
	ResponseBody []byte
}

type raw struct {
	status int
	body   string
}

// Server is the fake node.
type Server struct {
	URL string

	srv *httptest.Server

	mu         sync.Mutex
	chainID    string
	height     int64
	headTime   time.Time
	earliest   int64
	catchingUp bool
	vals       []Validator
	votes      map[int64]map[string]int
	fail       map[string]int
	raw        map[string]raw
	delay      time.Duration
	log        []Exchange
}

// New starts a synced node on 127.0.0.1 at height 1000 of Berachain
// mainnet, its latest block made just now; closed by t.Cleanup. It has no
// validators until AddValidator.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		chainID:  MainnetChainID,
		height:   1000,
		headTime: time.Now().UTC().Truncate(time.Millisecond),
		earliest: 1,
		votes:    map[int64]map[string]int{},
		fail:     map[string]int{},
		raw:      map[string]raw{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// SetChainID sets node_info.network and every header's chain_id.
func (s *Server) SetChainID(id string) { s.mu.Lock(); s.chainID = id; s.mu.Unlock() }

// SetHead sets the latest committed height and its block time; earlier
// blocks are BlockInterval apart.
func (s *Server) SetHead(height int64, t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.height, s.headTime = height, t.UTC()
}

// Head returns the latest height and its block time.
func (s *Server) Head() (int64, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.height, s.headTime
}

// SetEarliest sets the lowest height the node keeps (a pruned node).
func (s *Server) SetEarliest(h int64) { s.mu.Lock(); s.earliest = h; s.mu.Unlock() }

// SetCatchingUp sets sync_info.catching_up.
func (s *Server) SetCatchingUp(b bool) { s.mu.Lock(); s.catchingUp = b; s.mu.Unlock() }

// AddValidator adds a validator to the set and returns its address.
func (s *Server) AddValidator(v Validator) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v.PubKeyType == "" {
		v.PubKeyType = "cometbft/PubKeyBls12_381"
	}
	if v.Address == "" {
		sum := sha256.Sum256(v.PubKey)
		v.Address = hex.EncodeToString(sum[:20])
	}
	v.Address = strings.ToUpper(v.Address)
	s.vals = append(s.vals, v)
	return v.Address
}

// SetVote sets the block_id_flag of address in the commit of height
// (FlagAbsent: it did not vote).
func (s *Server) SetVote(height int64, address string, flag int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.votes[height] == nil {
		s.votes[height] = map[string]int{}
	}
	s.votes[height][strings.ToUpper(address)] = flag
}

// SetAbsent marks address absent from the commits of heights from…to.
func (s *Server) SetAbsent(address string, from, to int64) {
	for h := from; h <= to; h++ {
		s.SetVote(h, address, FlagAbsent)
	}
}

// Fail makes route answer code with a JSON-RPC internal error; 0 stops.
func (s *Server) Fail(route string, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == 0 {
		delete(s.fail, route)
		return
	}
	s.fail[route] = code
}

// Raw makes route answer status with body verbatim (malformed or
// oversized replies); status 0 stops.
func (s *Server) Raw(route string, status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		delete(s.raw, route)
		return
	}
	s.raw[route] = raw{status, body}
}

// SetDelay delays every reply.
func (s *Server) SetDelay(d time.Duration) { s.mu.Lock(); s.delay = d; s.mu.Unlock() }

// Exchanges returns the recorded exchanges.
func (s *Server) Exchanges() []Exchange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Exchange(nil), s.log...)
}

// Requests counts the recorded requests to route.
func (s *Server) Requests(route string) int {
	n := 0
	for _, e := range s.Exchanges() {
		if e.Route == route {
			n++
		}
	}
	return n
}

type recorder struct {
	http.ResponseWriter
	status int
	body   []byte
}

func (r *recorder) WriteHeader(c int) { r.status = c; r.ResponseWriter.WriteHeader(c) }
func (r *recorder) Write(b []byte) (int, error) {
	r.body = append(r.body, b...)
	return r.ResponseWriter.Write(b)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/v1")
	route := ""
	switch path {
	case "/status", "/commit", "/validators":
		route = path[1:]
	}
	rec := &recorder{ResponseWriter: w, status: http.StatusOK}
	s.mu.Lock()
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
	}
	s.handle(rec, r, route)
	s.mu.Lock()
	s.log = append(s.log, Exchange{Route: route, Path: r.URL.Path, Query: r.URL.RawQuery, Status: rec.status, ResponseBody: rec.body})
	s.mu.Unlock()
}

func (s *Server) handle(w http.ResponseWriter, r *http.Request, route string) {
	if route == "" {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rw, ok := s.raw[route]; ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rw.status)
		_, _ = w.Write([]byte(rw.body))
		return
	}
	if code, ok := s.fail[route]; ok {
		writeError(w, code, -32603, "Internal error", "injected failure")
		return
	}
	switch route {
	case Status:
		writeResult(w, s.status())
	case Commit:
		h, err := s.height0(r, "height")
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.code, err.msg, err.data)
			return
		}
		writeResult(w, s.commit(h))
	case Validators:
		s.validators(w, r)
	}
}

type rpcErr struct {
	code      int
	msg, data string
}

var reInt = regexp.MustCompile(`^-?[0-9]+$`)

// intParam reads an integer URI parameter the way CometBFT does (a bare
// or quoted decimal); absent is (0, false).
func intParam(r *http.Request, name string) (int64, bool, *rpcErr) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return 0, false, nil
	}
	v = strings.Trim(v, `"`)
	if !reInt.MatchString(v) {
		return 0, false, &rpcErr{-32602, "Invalid params", fmt.Sprintf("error converting http params to arguments: %s %q is not an integer", name, v)}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, &rpcErr{-32602, "Invalid params", fmt.Sprintf("error converting http params to arguments: %v", err)}
	}
	return n, true, nil
}

// height0 resolves the height parameter: absent is the latest; it must be
// in [earliest, latest].
func (s *Server) height0(r *http.Request, name string) (int64, *rpcErr) {
	h, ok, perr := intParam(r, name)
	switch {
	case perr != nil:
		return 0, perr
	case !ok:
		return s.height, nil
	case h <= 0:
		return 0, &rpcErr{-32603, "Internal error", fmt.Sprintf("height must be greater than zero (requested height: %d)", h)}
	case h > s.height:
		return 0, &rpcErr{-32603, "Internal error", fmt.Sprintf("height must be less than or equal to the head of the blockchain (requested height: %d, blockchain height: %d)", h, s.height)}
	case h < s.earliest:
		return 0, &rpcErr{-32603, "Internal error", fmt.Sprintf("height is not available (requested height: %d, base height: %d)", h, s.earliest)}
	}
	return h, nil
}

func (s *Server) blockTime(h int64) time.Time {
	return s.headTime.Add(-time.Duration(s.height-h) * BlockInterval)
}

func hash(parts ...any) string {
	sum := sha256.Sum256([]byte(fmt.Sprint(parts...)))
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// sorted is the set in CometBFT's order: voting power descending, then
// address ascending.
func (s *Server) sorted() []Validator {
	vs := append([]Validator(nil), s.vals...)
	sort.SliceStable(vs, func(i, j int) bool {
		if vs[i].Power != vs[j].Power {
			return vs[i].Power > vs[j].Power
		}
		return vs[i].Address < vs[j].Address
	})
	return vs
}

type pubKey struct {
	Type  string `json:"type"`
	Value string `json:"value"`
}

func (s *Server) status() any {
	nodeKey := sha256.Sum256([]byte("fake node " + s.chainID))
	earliest := s.earliest
	return map[string]any{
		"node_info": map[string]any{
			"protocol_version": map[string]string{"p2p": "8", "block": "11", "app": "0"},
			"id":               hex.EncodeToString(nodeKey[:20]),
			"listen_addr":      "tcp://0.0.0.0:26656",
			"network":          s.chainID,
			"version":          "1.0.1",
			"channels":         "40202122233038606100",
			"moniker":          "cometbfttest",
			"other":            map[string]string{"tx_index": "off", "rpc_address": "tcp://127.0.0.1:26657"},
		},
		"sync_info": map[string]any{
			"latest_block_hash":     hash("block", s.height),
			"latest_app_hash":       hash("app", s.height),
			"latest_block_height":   strconv.FormatInt(s.height, 10),
			"latest_block_time":     s.headTime.Format(time.RFC3339Nano),
			"earliest_block_hash":   hash("block", earliest),
			"earliest_app_hash":     hash("app", earliest),
			"earliest_block_height": strconv.FormatInt(earliest, 10),
			"earliest_block_time":   s.blockTime(earliest).Format(time.RFC3339Nano),
			"catching_up":           s.catchingUp,
		},
		// A standby's beacond runs with the key `beacond init` made, which
		// has no voting power.
		"validator_info": map[string]any{
			"address":      strings.ToUpper(hex.EncodeToString(nodeKey[12:])),
			"pub_key":      pubKey{"cometbft/PubKeyBls12_381", base64.StdEncoding.EncodeToString(append(nodeKey[:], nodeKey[:]...))},
			"voting_power": "0",
		},
	}
}

func (s *Server) commit(h int64) any {
	blockID := map[string]any{"hash": hash("block", h), "parts": map[string]any{"total": 1, "hash": hash("parts", h)}}
	var sigs []any
	for _, v := range s.sorted() {
		flag := FlagCommit
		if f, ok := s.votes[h][v.Address]; ok {
			flag = f
		}
		if flag == FlagAbsent {
			sigs = append(sigs, map[string]any{"block_id_flag": FlagAbsent, "validator_address": "", "timestamp": "0001-01-01T00:00:00Z", "signature": nil})
			continue
		}
		sig := sha256.Sum256([]byte(fmt.Sprint("sig", h, v.Address)))
		sigs = append(sigs, map[string]any{
			"block_id_flag":     flag,
			"validator_address": v.Address,
			"timestamp":         s.blockTime(h).Add(time.Second).Format(time.RFC3339Nano),
			"signature":         base64.StdEncoding.EncodeToString(append(append(sig[:], sig[:]...), sig[:]...)),
		})
	}
	if sigs == nil {
		sigs = []any{}
	}
	proposer := ""
	if vs := s.sorted(); len(vs) > 0 {
		proposer = vs[int(h)%len(vs)].Address
	}
	return map[string]any{
		"signed_header": map[string]any{
			"header": map[string]any{
				"version":              map[string]string{"block": "11", "app": "0"},
				"chain_id":             s.chainID,
				"height":               strconv.FormatInt(h, 10),
				"time":                 s.blockTime(h).Format(time.RFC3339Nano),
				"last_block_id":        map[string]any{"hash": hash("block", h-1), "parts": map[string]any{"total": 1, "hash": hash("parts", h-1)}},
				"last_commit_hash":     hash("commit", h-1),
				"data_hash":            hash("data", h),
				"validators_hash":      hash("validators"),
				"next_validators_hash": hash("validators"),
				"consensus_hash":       hash("consensus"),
				"app_hash":             hash("app", h-1),
				"last_results_hash":    hash("results", h-1),
				"evidence_hash":        hash("evidence"),
				"proposer_address":     proposer,
			},
			"commit": map[string]any{
				"height":     strconv.FormatInt(h, 10),
				"round":      0,
				"block_id":   blockID,
				"signatures": sigs,
			},
		},
		// The latest commit is the node's own view until the next block
		// carries it.
		"canonical": h < s.height,
	}
}

func (s *Server) validators(w http.ResponseWriter, r *http.Request) {
	h, perr := s.height0(r, "height")
	if perr != nil {
		writeError(w, http.StatusInternalServerError, perr.code, perr.msg, perr.data)
		return
	}
	perPage, ok, perr := intParam(r, "per_page")
	if perr != nil {
		writeError(w, http.StatusInternalServerError, perr.code, perr.msg, perr.data)
		return
	}
	switch {
	case !ok || perPage < 1:
		perPage = 30
	case perPage > 100:
		perPage = 100
	}
	vs := s.sorted()
	pages := max(1, (int64(len(vs))+perPage-1)/perPage)
	page, ok, perr := intParam(r, "page")
	if perr != nil {
		writeError(w, http.StatusInternalServerError, perr.code, perr.msg, perr.data)
		return
	}
	if !ok {
		page = 1
	}
	if page < 1 || page > pages {
		writeError(w, http.StatusInternalServerError, -32603, "Internal error", fmt.Sprintf("page should be within [1, %d] range, given %d", pages, page))
		return
	}
	lo, hi := (page-1)*perPage, min(page*perPage, int64(len(vs)))
	list := []any{}
	for _, v := range vs[lo:hi] {
		list = append(list, map[string]any{
			"address":           v.Address,
			"pub_key":           pubKey{v.PubKeyType, base64.StdEncoding.EncodeToString(v.PubKey)},
			"voting_power":      strconv.FormatInt(v.Power, 10),
			"proposer_priority": "0",
		})
	}
	writeResult(w, map[string]any{
		"block_height": strconv.FormatInt(h, 10),
		"validators":   list,
		"count":        strconv.Itoa(len(list)),
		"total":        strconv.Itoa(len(vs)),
	})
}

func writeResult(w http.ResponseWriter, result any) {
	b, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": -1, "result": result})
	if err != nil {
		writeError(w, http.StatusInternalServerError, -32603, "Internal error", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, status, code int, msg, data string) {
	b, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": -1, "error": map[string]any{"code": code, "message": msg, "data": data}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
