package beacon_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failoverd/failoverd/failover/beacon"
	"github.com/failoverd/failoverd/failover/beacon/beacontest"
)

// fuzzNode answers the four routes failoverd uses: the one under fuzz with
// the status and body it is set to, the others as a healthy mainnet node
// that knows validators 11 and 12 (pk(11), pk(12)) and saw neither live.
type fuzzNode struct {
	mu     sync.Mutex
	route  string
	status int
	body   []byte
}

func (n *fuzzNode) set(route string, status int, body []byte) {
	n.mu.Lock()
	n.route, n.status, n.body = route, status, body
	n.mu.Unlock()
}

func routeOf(p string) string {
	switch {
	case p == "/eth/v1/beacon/genesis":
		return beacontest.Genesis
	case p == "/eth/v1/node/syncing":
		return beacontest.Syncing
	case strings.HasPrefix(p, "/eth/v1/validator/liveness/"):
		return beacontest.Liveness
	case strings.HasSuffix(p, "/validators"):
		return beacontest.Validators
	}
	return ""
}

func (n *fuzzNode) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	route := routeOf(r.URL.Path)
	n.mu.Lock()
	fuzzed, status, body := n.route == route, n.status, n.body
	n.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if fuzzed {
		w.WriteHeader(status)
		_, _ = w.Write(body)
		return
	}
	var reply any
	switch route {
	case beacontest.Genesis:
		reply = map[string]any{"data": map[string]string{"genesis_time": fmt.Sprint(beacontest.MainnetGenesisTime),
			"genesis_validators_root": beacontest.MainnetRoot, "genesis_fork_version": beacontest.MainnetFork}}
	case beacontest.Syncing:
		reply = map[string]any{"data": map[string]any{"head_slot": "32000", "sync_distance": "0", "is_syncing": false, "is_optimistic": false, "el_offline": false}}
	case beacontest.Validators:
		var data []any
		for _, id := range r.URL.Query()["id"] {
			for _, i := range []int{11, 12} {
				if strings.EqualFold(id, pk(i)) || id == fmt.Sprint(i) {
					data = append(data, map[string]any{"index": fmt.Sprint(i), "balance": "32000000000", "status": "active_ongoing",
						"validator": map[string]any{"pubkey": pk(i), "slashed": false}})
				}
			}
		}
		reply = map[string]any{"execution_optimistic": false, "finalized": false, "data": data}
	case beacontest.Liveness:
		var ids []string
		_ = json.NewDecoder(r.Body).Decode(&ids)
		data := []any{}
		for _, id := range ids {
			data = append(data, map[string]any{"index": id, "is_live": false})
		}
		reply = map[string]any{"data": data}
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"code":404,"message":"no route"}`))
		return
	}
	_ = json.NewEncoder(w).Encode(reply)
}

var (
	fuzzRoutes   = []string{beacontest.Genesis, beacontest.Syncing, beacontest.Validators, beacontest.Liveness}
	fuzzStatuses = []int{200, 200, 200, 200, 202, 204, 400, 404, 414, 500, 503}
	fuzzRoot     = regexp.MustCompile(`^0x[0-9a-f]{64}$`)
	fuzzFork     = regexp.MustCompile(`^0x[0-9a-fA-F]{8}$`)
	fuzzNowTime  = time.Unix(beacontest.MainnetGenesisTime+1000*32*12+30, 0) // epoch 1000
)

// Reply shapes from the beacon API definition (shared/specs/beacon-apis,
// CC0): its examples and a real node's answers.
var beaconSeeds = map[string][]string{
	beacontest.Genesis: {
		`{"data":{"genesis_time":"1590832934","genesis_validators_root":"0xcf8e0d4e9587369b2301d0790347320302cc0943d5a1884560367e8208d920f2","genesis_fork_version":"0x00000000"}}`,
		`{"code":404,"message":"Chain genesis info is not yet known"}`,
	},
	beacontest.Syncing: {
		`{"data":{"head_slot":"1","sync_distance":"1","is_syncing":true,"is_optimistic":true,"el_offline":false}}`,
	},
	beacontest.Validators: {
		`{"execution_optimistic":false,"finalized":false,"data":[{"index":"1","balance":"1","status":"active_ongoing","validator":{"pubkey":"0x93247f2209abcacf57b75a51dafae777f9dd38bc7053d1af526f220a7489a6d3a2753e5f3e8b1cfe39b56f43611df74a","withdrawal_credentials":"0xcf8e0d4e9587369b2301d0790347320302cc0943d5a1884560367e8208d920f2","effective_balance":"1","slashed":false,"activation_eligibility_epoch":"1","activation_epoch":"1","exit_epoch":"1","withdrawable_epoch":"1"}}]}`,
		`{"execution_optimistic":false,"finalized":true,"data":[{"index":"11","balance":"1","status":"active_slashed","validator":{"pubkey":"` + pk(11) + `","slashed":true}}]}`,
	},
	beacontest.Liveness: {
		`{"data":[{"index":"11","is_live":false},{"index":"12","is_live":false}]}`,
		`{"data":[{"index":"11","is_live":true}]}`,
		`{"data":[{"index":"11","is_live":false},{"index":"11","is_live":false},{"index":"12","is_live":false}]}`,
		`{"data":[{"index":"11","is_live":false},{"index":"12","is_live":false},{"index":"13","is_live":false}]}`,
		`{"data":[{"index":"11","is_live":false},{"index":"12"}]}`,
		`{"code":400,"message":"Invalid epoch: -2"}`,
	},
}

// FuzzReplies feeds the client arbitrary replies on one route while the
// others answer as a healthy node. Each call fails with a typed error or
// returns values of the spec's shape; and Check proves silence only when
// the liveness reply, read independently, lists each asked index exactly
// once as not live and nothing else, and calls the validators usable only
// when each is known, unslashed and active.
func FuzzReplies(f *testing.F) {
	node := &fuzzNode{}
	ts := httptest.NewServer(node)
	f.Cleanup(ts.Close)
	c, err := beacon.New(ts.URL, beacon.WithMaxBodyBytes(8<<10), beacon.WithTimeout(5*time.Second))
	if err != nil {
		f.Fatal(err)
	}
	for r, route := range fuzzRoutes {
		for _, s := range beaconSeeds[route] {
			f.Add(uint8(r), uint8(0), false, []byte(s))
			f.Add(uint8(r), uint8(0), true, []byte(s))
		}
		f.Add(uint8(r), uint8(9), true, []byte(`{"code":500,"message":"Internal server error"}`))
	}
	f.Fuzz(func(t *testing.T, route, status uint8, check bool, body []byte) {
		rt := fuzzRoutes[int(route)%len(fuzzRoutes)]
		code := fuzzStatuses[int(status)%len(fuzzStatuses)]
		node.set(rt, code, body)
		ctx := context.Background()
		pubkeys := []string{pk(11), pk(12)}
		var err error
		if check {
			var rep beacon.Report
			rep, err = beacon.Check(ctx, c, pubkeys, beacon.MinSilentEpochs, fuzzNowTime)
			if err == nil {
				checkReport(t, rt, body, rep)
			}
			if err != nil && rt == beacontest.Liveness {
				// Whatever the liveness reply, it can only make Check
				// report "not silent".
				t.Fatalf("Check failed on a liveness reply: %v", err)
			}
			return
		}
		switch rt {
		case beacontest.Genesis:
			var g beacon.Genesis
			if g, err = c.Genesis(ctx); err == nil && (!fuzzRoot.MatchString(g.GenesisValidatorsRoot) || !fuzzFork.MatchString(g.GenesisForkVersion)) {
				t.Fatalf("genesis %+v", g)
			}
		case beacontest.Syncing:
			_, err = c.Syncing(ctx)
		case beacontest.Validators:
			var vals []beacon.Validator
			if vals, err = c.Validators(ctx, "head", pubkeys); err == nil {
				for _, v := range vals {
					if !beacon.ValidIndex(v.Index) || !strings.HasPrefix(v.Pubkey, "0x") || len(v.Pubkey) != 98 || v.Pubkey != strings.ToLower(v.Pubkey) {
						t.Fatalf("validator %+v", v)
					}
				}
			}
		default:
			var live []beacon.Liveness
			if live, err = c.Liveness(ctx, 999, []string{"11", "12"}); err == nil {
				for _, l := range live {
					if !beacon.ValidIndex(l.Index) {
						t.Fatalf("liveness %+v", l)
					}
				}
			}
		}
		if err == nil {
			if code != http.StatusOK {
				t.Fatalf("HTTP %d accepted", code)
			}
			return
		}
		var ae *beacon.APIError
		switch {
		case errors.As(err, &ae):
			if ae.StatusCode != code || code == http.StatusOK {
				t.Fatalf("APIError %+v for HTTP %d", ae, code)
			}
		case code != http.StatusOK:
			t.Fatalf("HTTP %d gave an untyped error: %v", code, err)
		case !errors.Is(err, beacon.ErrMalformed) && !errors.Is(err, beacon.ErrTooLarge):
			t.Fatalf("a 200 reply gave an untyped error: %v", err)
		}
	})
}

// checkReport holds a report Check returned without error against an
// independent reading of the fuzzed reply.
func checkReport(t *testing.T, route string, body []byte, rep beacon.Report) {
	t.Helper()
	if rep.Silent() {
		if len(rep.Indices) != 2 || rep.NotSilent != "" || len(rep.SilentEpochs) != beacon.MinSilentEpochs {
			t.Fatalf("silent report %+v", rep)
		}
		if route == beacontest.Liveness {
			var reply struct {
				Data []struct {
					Index  *string `json:"index"`
					IsLive *bool   `json:"is_live"`
				} `json:"data"`
			}
			if err := json.Unmarshal(body, &reply); err != nil {
				t.Fatalf("silence proven from a reply that does not decode: %v", err)
			}
			count := map[string]int{}
			for _, d := range reply.Data {
				if d.Index == nil || d.IsLive == nil || *d.IsLive {
					t.Fatalf("silence proven from %s", body)
				}
				count[*d.Index]++
			}
			if len(count) != 2 || count[rep.Indices[0]] != 1 || count[rep.Indices[1]] != 1 {
				t.Fatalf("silence of %v proven from %s", rep.Indices, body)
			}
		}
	}
	if rep.Unusable == "" && route == beacontest.Validators {
		var reply struct {
			Data []struct {
				Status    string `json:"status"`
				Validator struct {
					Pubkey  string `json:"pubkey"`
					Slashed bool   `json:"slashed"`
				} `json:"validator"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &reply); err != nil {
			t.Fatalf("validators usable from a reply that does not decode: %v", err)
		}
		found := map[string]int{}
		for _, d := range reply.Data {
			found[strings.ToLower(d.Validator.Pubkey)]++
			if d.Validator.Slashed || !(d.Status == "active_ongoing" || strings.HasPrefix(d.Status, "pending_")) {
				t.Fatalf("validators usable from %s", body)
			}
		}
		if found[pk(11)] != 1 || found[pk(12)] != 1 {
			t.Fatalf("validators usable from %s", body)
		}
	}
}

// FuzzDecideSilence: silence is decided only when every asked index is in
// each of the last `need` finished epochs' replies exactly once, not live,
// with nothing else in them; a live sighting is always reported.
func FuzzDecideSilence(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 2, 0}, uint8(3), uint8(3), uint16(1000))
	f.Add([]byte{0, 1, 1, 0, 2, 0, 3, 0}, uint8(2), uint8(3), uint16(5))
	f.Add([]byte{}, uint8(1), uint8(4), uint16(2))
	f.Fuzz(func(t *testing.T, data []byte, nIdx, need uint8, current uint16) {
		indices := make([]string, int(nIdx)%4)
		for i := range indices {
			indices[i] = fmt.Sprint(10 + i)
		}
		// Each pair of bytes is one entry: epoch offset and index (high
		// nibble), live (low bit).
		replies := map[uint64][]beacon.Liveness{}
		for i := 0; i+1 < len(data); i += 2 {
			e := uint64(current) - 1 - uint64(data[i]%8)
			replies[e] = append(replies[e], beacon.Liveness{Index: fmt.Sprint(10 + int(data[i+1]>>4)%6), IsLive: data[i+1]&1 == 1})
		}
		for i := 0; i < len(data) && data[i] == 0xff; i++ {
			// A reply present but empty for an epoch.
			replies[uint64(current)-1-uint64(i)] = []beacon.Liveness{}
		}
		s, err := beacon.DecideSilence(indices, uint64(current), int(need)%6, replies)
		if err == nil != s.Silent {
			t.Fatalf("Silent = %v with error %v", s.Silent, err)
		}
		var sightings int
		for _, e := range s.Epochs {
			for _, l := range replies[e] {
				if l.IsLive && slicesContains(indices, l.Index) {
					sightings++
				}
			}
		}
		if sightings > 0 && len(s.Live) == 0 {
			t.Fatalf("%d live sightings not reported: %+v", sightings, s)
		}
		if !s.Silent {
			return
		}
		if len(s.Epochs) < beacon.MinSilentEpochs || len(s.Epochs) != int(need)%6 {
			t.Fatalf("silent over epochs %v", s.Epochs)
		}
		for _, e := range s.Epochs {
			if e >= uint64(current) {
				t.Fatalf("epoch %d is not finished at %d", e, current)
			}
			r := replies[e]
			if len(r) != len(indices) {
				t.Fatalf("epoch %d reply %+v for indices %v", e, r, indices)
			}
			for _, l := range r {
				if l.IsLive || !slicesContains(indices, l.Index) {
					t.Fatalf("silent with %+v in epoch %d", l, e)
				}
			}
		}
	})
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
