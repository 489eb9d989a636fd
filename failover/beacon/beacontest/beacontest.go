// Package beacontest is a local beacon node on 127.0.0.1 that follows
// shared/specs/beacon-apis for the routes failoverd uses:
// GET /eth/v1/beacon/genesis, GET /eth/v1/node/syncing,
// GET /eth/v1/beacon/states/{state_id}/validators and
// POST /eth/v1/validator/liveness/{epoch}.
//
// Liveness is configurable per epoch and index, as are the genesis, the
// sync status and validator statuses. Requests are checked against the
// spec's shapes (400 with an ErrorMessage otherwise); failures (any status
// per route), raw reply bodies and delays can be injected; every exchange
// is recorded for tests that check them against the spec.
package beacontest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Mainnet values, the defaults.
const (
	MainnetGenesisTime = 1606824023
	MainnetRoot        = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"
	MainnetFork        = "0x00000000"
	FarFutureEpoch     = "18446744073709551615"
)

// Route names for Fail and Raw.
const (
	Genesis    = "genesis"
	Syncing    = "syncing"
	Validators = "validators"
	Liveness   = "liveness"
)

var (
	uintRE    = regexp.MustCompile(`^(0|[1-9][0-9]{0,19})$`)
	pubkeyRE  = regexp.MustCompile(`^0x[a-fA-F0-9]{96}$`)
	rootRE    = regexp.MustCompile(`^0x[a-fA-F0-9]{64}$`)
	statuses  = []string{"pending_initialized", "pending_queued", "active_ongoing", "active_exiting", "active_slashed", "exited_unslashed", "exited_slashed", "withdrawal_possible", "withdrawal_done"}
	statusTop = []string{"active", "pending", "exited", "withdrawal"}
)

// Validator is a validator in the fake state.
type Validator struct {
	Index   uint64
	Pubkey  string
	Status  string // one of the spec's ValidatorStatus values
	Slashed bool   // validator.slashed; set it with the *_slashed statuses
	Balance uint64 // gwei; 0 means 32 ETH
}

// SyncState is the node's /eth/v1/node/syncing answer.
type SyncState struct {
	HeadSlot     uint64
	SyncDistance uint64
	IsSyncing    bool
	IsOptimistic bool
	ELOffline    bool
}

// Exchange is one recorded request and reply.
type Exchange struct {
	Route        string // Genesis, Syncing, Validators, Liveness or "" (unknown path)
	Method       string
	Path         string
	Query        string
	RequestBody  []byte
	Status       int
	ResponseBody []byte
}

type raw struct {
	status int
	body   string
}

// Server is the fake beacon node.
type Server struct {
	URL string

	srv *httptest.Server

	mu             sync.Mutex
	genesisTime    uint64
	root, fork     string
	genesisUnknown bool
	sync           SyncState
	vals           map[uint64]Validator
	live           map[uint64]map[uint64]bool
	omit           map[uint64]map[uint64]bool
	currentEpoch   uint64
	minEpoch       uint64
	fail           map[string]int
	raw            map[string]raw
	delay          time.Duration
	log            []Exchange
}

// New starts a synced mainnet-like node on 127.0.0.1, closed by t.Cleanup.
// The current epoch starts at 1000 (liveness accepted for any epoch up to
// current+1 and at or above SetMinLivenessEpoch).
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		genesisTime:  MainnetGenesisTime,
		root:         MainnetRoot,
		fork:         MainnetFork,
		sync:         SyncState{HeadSlot: 1000 * 32},
		vals:         map[uint64]Validator{},
		live:         map[uint64]map[uint64]bool{},
		omit:         map[uint64]map[uint64]bool{},
		currentEpoch: 1000,
		fail:         map[string]int{},
		raw:          map[string]raw{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

// SetGenesis sets the genesis answer.
func (s *Server) SetGenesis(genesisTime uint64, root, fork string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.genesisTime, s.root, s.fork, s.genesisUnknown = genesisTime, root, fork, false
}

// SetGenesisUnknown makes genesis answer 404 (not yet known).
func (s *Server) SetGenesisUnknown() { s.mu.Lock(); s.genesisUnknown = true; s.mu.Unlock() }

// SetSyncing sets the syncing answer.
func (s *Server) SetSyncing(st SyncState) { s.mu.Lock(); s.sync = st; s.mu.Unlock() }

// SetCurrentEpoch sets the node's current epoch (liveness for later than
// current+1 is a 400).
func (s *Server) SetCurrentEpoch(e uint64) { s.mu.Lock(); s.currentEpoch = e; s.mu.Unlock() }

// SetMinLivenessEpoch: liveness for earlier epochs is a 400 (a node that
// keeps only recent epochs).
func (s *Server) SetMinLivenessEpoch(e uint64) { s.mu.Lock(); s.minEpoch = e; s.mu.Unlock() }

// AddValidator puts a validator in the state. Liveness answers for known
// validators only (false unless SetLive).
func (s *Server) AddValidator(v Validator) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v.Status == "" {
		v.Status = "active_ongoing"
	}
	if v.Balance == 0 {
		v.Balance = 32_000_000_000
	}
	s.vals[v.Index] = v
}

// SetLive sets is_live for index in epoch.
func (s *Server) SetLive(epoch, index uint64, live bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.live[epoch] == nil {
		s.live[epoch] = map[uint64]bool{}
	}
	s.live[epoch][index] = live
}

// OmitLiveness leaves index out of the liveness reply for epoch.
func (s *Server) OmitLiveness(epoch, index uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.omit[epoch] == nil {
		s.omit[epoch] = map[uint64]bool{}
	}
	s.omit[epoch][index] = true
}

// Fail makes route answer code with the spec's ErrorMessage; 0 stops.
func (s *Server) Fail(route string, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == 0 {
		delete(s.fail, route)
		return
	}
	s.fail[route] = code
}

// Raw makes route answer status with body verbatim (for malformed
// replies); status 0 stops.
func (s *Server) Raw(route string, status int, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if status == 0 {
		delete(s.raw, route)
		return
	}
	s.raw[route] = raw{status, body}
}

// Delay waits d (or until the client gives up) before every answer.
func (s *Server) Delay(d time.Duration) { s.mu.Lock(); s.delay = d; s.mu.Unlock() }

// Exchanges returns every request and reply so far.
func (s *Server) Exchanges() []Exchange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.log)
}

// LivenessRequests counts liveness requests per epoch.
func (s *Server) LivenessRequests() map[uint64]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[uint64]int{}
	for _, e := range s.log {
		if e.Route == Liveness {
			if ep, err := strconv.ParseUint(strings.TrimPrefix(e.Path, "/eth/v1/validator/liveness/"), 10, 64); err == nil {
				out[ep]++
			}
		}
	}
	return out
}

type errorMessage struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func errMsg(code int, format string, args ...any) (int, any) {
	return code, errorMessage{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	route, status, out := s.route(r, body)
	s.mu.Lock()
	s.log = append(s.log, Exchange{Route: route, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery,
		RequestBody: body, Status: status, ResponseBody: out})
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(out)
}

func (s *Server) route(r *http.Request, body []byte) (string, int, []byte) {
	p := r.URL.Path
	var route string
	switch {
	case p == "/eth/v1/beacon/genesis":
		route = Genesis
	case p == "/eth/v1/node/syncing":
		route = Syncing
	case strings.HasPrefix(p, "/eth/v1/validator/liveness/"):
		route = Liveness
	case strings.HasPrefix(p, "/eth/v1/beacon/states/") && strings.HasSuffix(p, "/validators"):
		route = Validators
	default:
		code, v := errMsg(http.StatusNotFound, "no route %s", p)
		b, _ := json.Marshal(v)
		return "", code, b
	}
	s.mu.Lock()
	delay := s.delay
	fail := s.fail[route]
	rw, hasRaw := s.raw[route]
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
	}
	if hasRaw {
		return route, rw.status, []byte(rw.body)
	}
	var code int
	var v any
	if fail != 0 {
		code, v = errMsg(fail, "configured failure %d", fail)
	} else {
		switch route {
		case Genesis:
			code, v = s.genesis(r)
		case Syncing:
			code, v = s.syncing(r)
		case Liveness:
			code, v = s.liveness(r, body)
		case Validators:
			code, v = s.validators(r)
		}
	}
	b, _ := json.Marshal(v)
	return route, code, b
}

func u64(v uint64) string { return strconv.FormatUint(v, 10) }

func (s *Server) genesis(r *http.Request) (int, any) {
	if r.Method != http.MethodGet {
		return errMsg(http.StatusMethodNotAllowed, "method not allowed")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.genesisUnknown {
		return errMsg(http.StatusNotFound, "Chain genesis info is not yet known")
	}
	return http.StatusOK, map[string]any{"data": map[string]any{
		"genesis_time": u64(s.genesisTime), "genesis_validators_root": s.root, "genesis_fork_version": s.fork,
	}}
}

func (s *Server) syncing(r *http.Request) (int, any) {
	if r.Method != http.MethodGet {
		return errMsg(http.StatusMethodNotAllowed, "method not allowed")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.sync
	return http.StatusOK, map[string]any{"data": map[string]any{
		"head_slot": u64(st.HeadSlot), "sync_distance": u64(st.SyncDistance),
		"is_syncing": st.IsSyncing, "is_optimistic": st.IsOptimistic, "el_offline": st.ELOffline,
	}}
}

func (s *Server) liveness(r *http.Request, body []byte) (int, any) {
	if r.Method != http.MethodPost {
		return errMsg(http.StatusMethodNotAllowed, "method not allowed")
	}
	es := strings.TrimPrefix(r.URL.Path, "/eth/v1/validator/liveness/")
	if !uintRE.MatchString(es) {
		return errMsg(http.StatusBadRequest, "Invalid epoch: %s", es)
	}
	epoch, err := strconv.ParseUint(es, 10, 64)
	if err != nil {
		return errMsg(http.StatusBadRequest, "Invalid epoch: %s", es)
	}
	var arr []any
	if err := json.Unmarshal(body, &arr); err != nil || arr == nil {
		return errMsg(http.StatusBadRequest, "request body must be a JSON array of validator indices")
	}
	if len(arr) < 1 {
		return errMsg(http.StatusBadRequest, "at least one validator index required")
	}
	indices := make([]uint64, 0, len(arr))
	for i, v := range arr {
		str, ok := v.(string)
		if !ok || !uintRE.MatchString(str) {
			return errMsg(http.StatusBadRequest, "Invalid index at %d: must be a decimal string", i)
		}
		ix, err := strconv.ParseUint(str, 10, 64)
		if err != nil {
			return errMsg(http.StatusBadRequest, "Invalid index at %d", i)
		}
		indices = append(indices, ix)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch > s.currentEpoch+1 || epoch < s.minEpoch {
		return errMsg(http.StatusBadRequest, "Invalid epoch: %d (supported %d..%d)", epoch, s.minEpoch, s.currentEpoch+1)
	}
	type entry struct {
		Index  string `json:"index"`
		IsLive bool   `json:"is_live"`
	}
	data := []entry{}
	for _, ix := range indices {
		if _, known := s.vals[ix]; !known || s.omit[epoch][ix] {
			continue
		}
		data = append(data, entry{Index: u64(ix), IsLive: s.live[epoch][ix]})
	}
	return http.StatusOK, map[string]any{"data": data}
}

func (s *Server) validators(r *http.Request) (int, any) {
	if r.Method != http.MethodGet {
		return errMsg(http.StatusMethodNotAllowed, "method not allowed")
	}
	state := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/eth/v1/beacon/states/"), "/validators")
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case state == "head" || state == "genesis" || state == "finalized" || state == "justified":
	case uintRE.MatchString(state):
		slot, _ := strconv.ParseUint(state, 10, 64)
		if slot > s.sync.HeadSlot {
			return errMsg(http.StatusNotFound, "State not found")
		}
	case rootRE.MatchString(state):
		return errMsg(http.StatusNotFound, "State not found")
	default:
		return errMsg(http.StatusBadRequest, "Invalid state ID: %s", state)
	}
	var ids []string
	for _, v := range r.URL.Query()["id"] {
		for _, id := range strings.Split(v, ",") {
			if id = strings.TrimSpace(id); id != "" {
				ids = append(ids, id)
			}
		}
	}
	if len(ids) > 64 {
		return errMsg(http.StatusRequestURITooLong, "Too many validator IDs in request")
	}
	var want []string
	for _, v := range r.URL.Query()["status"] {
		for _, st := range strings.Split(v, ",") {
			if !slices.Contains(statuses, st) && !slices.Contains(statusTop, st) {
				return errMsg(http.StatusBadRequest, "Invalid status: %s", st)
			}
			want = append(want, st)
		}
	}
	match := map[uint64]bool{}
	for _, id := range ids {
		switch {
		case uintRE.MatchString(id):
			ix, _ := strconv.ParseUint(id, 10, 64)
			if _, ok := s.vals[ix]; ok {
				match[ix] = true
			}
		case pubkeyRE.MatchString(id):
			for ix, v := range s.vals {
				if strings.EqualFold(v.Pubkey, id) {
					match[ix] = true
				}
			}
		default:
			return errMsg(http.StatusBadRequest, "Invalid validator ID: %s", id)
		}
	}
	if len(ids) == 0 {
		for ix := range s.vals {
			match[ix] = true
		}
	}
	keys := make([]uint64, 0, len(match))
	for ix := range match {
		keys = append(keys, ix)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	data := []any{}
	for _, ix := range keys {
		v := s.vals[ix]
		if len(want) > 0 && !slices.Contains(want, v.Status) && !slices.Contains(want, strings.SplitN(v.Status, "_", 2)[0]) {
			continue
		}
		exit, withdrawable := FarFutureEpoch, FarFutureEpoch
		if strings.HasPrefix(v.Status, "exited") || strings.HasPrefix(v.Status, "withdrawal") || v.Status == "active_exiting" || v.Status == "active_slashed" {
			exit, withdrawable = u64(s.currentEpoch), u64(s.currentEpoch+256)
		}
		data = append(data, map[string]any{
			"index":   u64(ix),
			"balance": u64(v.Balance),
			"status":  v.Status,
			"validator": map[string]any{
				"pubkey":                       strings.ToLower(v.Pubkey),
				"withdrawal_credentials":       "0x01000000000000000000000000000000000000000000000000000000000000aa",
				"effective_balance":            "32000000000",
				"slashed":                      v.Slashed,
				"activation_eligibility_epoch": "0",
				"activation_epoch":             "0",
				"exit_epoch":                   exit,
				"withdrawable_epoch":           withdrawable,
			},
		})
	}
	return http.StatusOK, map[string]any{"execution_optimistic": s.sync.IsOptimistic, "finalized": state == "finalized" || state == "genesis", "data": data}
}
