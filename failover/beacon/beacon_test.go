package beacon_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/failoverd/failoverd/failover/beacon"
	"github.com/failoverd/failoverd/failover/beacon/beacontest"
)

func pk(n int) string { return fmt.Sprintf("0x%096x", n) }

func setup(t *testing.T, n int) (*beacontest.Server, *beacon.Client) {
	t.Helper()
	s := beacontest.New(t)
	for i := 0; i < n; i++ {
		s.AddValidator(beacontest.Validator{Index: uint64(100 + i), Pubkey: pk(100 + i)})
	}
	c, err := beacon.New(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return s, c
}

func TestGenesis(t *testing.T) {
	tests := []struct {
		name  string
		setup func(s *beacontest.Server)
		want  error
	}{
		{"ok", nil, nil},
		{"not yet known 404", func(s *beacontest.Server) { s.SetGenesisUnknown() }, beacon.ErrNotFound},
		{"500", func(s *beacontest.Server) { s.Fail(beacontest.Genesis, 500) }, beacon.ErrServer},
		{"bad root", func(s *beacontest.Server) {
			s.Raw(beacontest.Genesis, 200, `{"data":{"genesis_time":"1","genesis_validators_root":"0x12","genesis_fork_version":"0x00000000"}}`)
		}, beacon.ErrMalformed},
		{"time not a decimal string", func(s *beacontest.Server) {
			s.Raw(beacontest.Genesis, 200, `{"data":{"genesis_time":1,"genesis_validators_root":"`+beacontest.MainnetRoot+`","genesis_fork_version":"0x00000000"}}`)
		}, beacon.ErrMalformed},
		{"missing fork version", func(s *beacontest.Server) {
			s.Raw(beacontest.Genesis, 200, `{"data":{"genesis_time":"1","genesis_validators_root":"`+beacontest.MainnetRoot+`"}}`)
		}, beacon.ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, c := setup(t, 0)
			if tc.setup != nil {
				tc.setup(s)
			}
			g, err := c.Genesis(context.Background())
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want == nil {
				if g.GenesisTime != beacontest.MainnetGenesisTime || g.GenesisValidatorsRoot != beacontest.MainnetRoot || g.GenesisForkVersion != "0x00000000" {
					t.Fatalf("got %+v", g)
				}
				if got := g.Clock().Epoch(time.Unix(beacontest.MainnetGenesisTime+32*12*10+5, 0)); got != 10 {
					t.Errorf("clock epoch %d", got)
				}
			}
		})
	}
}

func TestSyncing(t *testing.T) {
	s, c := setup(t, 0)
	ctx := context.Background()
	s.SetSyncing(beacontest.SyncState{HeadSlot: 5, SyncDistance: 3, IsSyncing: true, IsOptimistic: true, ELOffline: true})
	st, err := c.Syncing(ctx)
	if err != nil || st != (beacon.SyncStatus{HeadSlot: 5, SyncDistance: 3, IsSyncing: true, IsOptimistic: true, ELOffline: true}) || st.Ready() {
		t.Fatalf("%+v %v", st, err)
	}
	s.SetSyncing(beacontest.SyncState{HeadSlot: 7})
	if st, err := c.Syncing(ctx); err != nil || !st.Ready() {
		t.Fatalf("%+v %v", st, err)
	}
	s.Raw(beacontest.Syncing, 200, `{"data":{"head_slot":"1","sync_distance":"0","is_syncing":false,"is_optimistic":false}}`)
	if _, err := c.Syncing(ctx); !errors.Is(err, beacon.ErrMalformed) {
		t.Fatalf("missing el_offline: %v", err)
	}
	s.Raw(beacontest.Syncing, 0, "")
	s.Fail(beacontest.Syncing, 500)
	if _, err := c.Syncing(ctx); !errors.Is(err, beacon.ErrServer) {
		t.Fatalf("500: %v", err)
	}
}

func TestLiveness(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(s *beacontest.Server)
		epoch   uint64
		indices []string
		want    error
		live    map[string]bool
	}{
		{name: "ok", setup: func(s *beacontest.Server) { s.SetLive(999, 101, true) }, epoch: 999, indices: []string{"100", "101"},
			live: map[string]bool{"100": false, "101": true}},
		{name: "future epoch 400", epoch: 1002, indices: []string{"100"}, want: beacon.ErrBadRequest},
		{name: "epoch too old 400", setup: func(s *beacontest.Server) { s.SetMinLivenessEpoch(998) }, epoch: 997, indices: []string{"100"}, want: beacon.ErrBadRequest},
		{name: "syncing 503", setup: func(s *beacontest.Server) { s.Fail(beacontest.Liveness, 503) }, epoch: 999, indices: []string{"100"}, want: beacon.ErrSyncing},
		{name: "500", setup: func(s *beacontest.Server) { s.Fail(beacontest.Liveness, 500) }, epoch: 999, indices: []string{"100"}, want: beacon.ErrServer},
		{name: "entry without is_live is malformed, not false", setup: func(s *beacontest.Server) {
			s.Raw(beacontest.Liveness, 200, `{"data":[{"index":"100"}]}`)
		}, epoch: 999, indices: []string{"100"}, want: beacon.ErrMalformed},
		{name: "numeric index is malformed", setup: func(s *beacontest.Server) {
			s.Raw(beacontest.Liveness, 200, `{"data":[{"index":100,"is_live":false}]}`)
		}, epoch: 999, indices: []string{"100"}, want: beacon.ErrMalformed},
		{name: "no data", setup: func(s *beacontest.Server) { s.Raw(beacontest.Liveness, 200, `{}`) }, epoch: 999, indices: []string{"100"}, want: beacon.ErrMalformed},
		{name: "no indices: nothing sent", epoch: 999, want: beacon.ErrInvalidArgument},
		{name: "non-decimal index: nothing sent", epoch: 999, indices: []string{"0x1"}, want: beacon.ErrInvalidArgument},
		{name: "leading zero: nothing sent", epoch: 999, indices: []string{"01"}, want: beacon.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, c := setup(t, 2)
			if tc.setup != nil {
				tc.setup(s)
			}
			got, err := c.Liveness(context.Background(), tc.epoch, tc.indices)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if errors.Is(err, beacon.ErrInvalidArgument) && len(s.Exchanges()) != 0 {
				t.Error("request sent")
			}
			if tc.want != nil {
				return
			}
			if len(got) != len(tc.live) {
				t.Fatalf("got %+v", got)
			}
			for _, l := range got {
				if want, ok := tc.live[l.Index]; !ok || want != l.IsLive {
					t.Errorf("index %s live=%v", l.Index, l.IsLive)
				}
			}
		})
	}
}

func TestSilent(t *testing.T) {
	idx := []string{"100", "101", "102"}
	tests := []struct {
		name    string
		setup   func(s *beacontest.Server)
		indices []string
		current uint64
		need    int
		silent  bool
		errHas  []string
		also    error
	}{
		{name: "silent for 3 finished epochs", current: 1000, need: 3, silent: true},
		{name: "silent for 5", current: 1000, need: 5, silent: true},
		{name: "live in the current (unfinished) epoch does not count", setup: func(s *beacontest.Server) { s.SetLive(1000, 100, true) }, current: 1000, need: 3, silent: true},
		{name: "live just before the window does not count", setup: func(s *beacontest.Server) { s.SetLive(996, 100, true) }, current: 1000, need: 3, silent: true},
		{name: "live in the last finished epoch", setup: func(s *beacontest.Server) { s.SetLive(999, 101, true) }, current: 1000, need: 3,
			errHas: []string{"index 101 live in epoch 999"}},
		{name: "live in the oldest epoch of the window", setup: func(s *beacontest.Server) { s.SetLive(997, 102, true) }, current: 1000, need: 3,
			errHas: []string{"index 102 live in epoch 997"}},
		{name: "every sighting named", setup: func(s *beacontest.Server) {
			s.SetLive(999, 100, true)
			s.SetLive(998, 102, true)
			s.SetLive(997, 100, true)
		}, current: 1000, need: 3, errHas: []string{"index 100 live in epoch 999", "index 102 live in epoch 998", "index 100 live in epoch 997"}},
		{name: "index missing from a reply is unknown, not silent", setup: func(s *beacontest.Server) { s.OmitLiveness(998, 101) }, current: 1000, need: 3,
			errHas: []string{"index 101 missing from epoch 998 reply"}},
		{name: "index the node does not know", indices: []string{"100", "555"}, current: 1000, need: 3,
			errHas: []string{"index 555 missing from epoch 999 reply"}},
		{name: "node cannot answer an old epoch", setup: func(s *beacontest.Server) { s.SetMinLivenessEpoch(998) }, current: 1000, need: 3,
			errHas: []string{"epoch 997"}, also: beacon.ErrBadRequest},
		{name: "node syncing", setup: func(s *beacontest.Server) { s.Fail(beacontest.Liveness, 503) }, current: 1000, need: 3, also: beacon.ErrSyncing},
		{name: "malformed reply", setup: func(s *beacontest.Server) { s.Raw(beacontest.Liveness, 200, `{"data":[{"index":"100"}]}`) }, current: 1000, need: 3, also: beacon.ErrMalformed},
		{name: "need below 3", current: 1000, need: 2, also: beacon.ErrInvalidArgument},
		{name: "not enough finished epochs", current: 2, need: 3, errHas: []string{"fewer than 3"}},
		{name: "no indices", indices: []string{}, current: 1000, need: 3, also: beacon.ErrInvalidArgument},
		{name: "repeated index", indices: []string{"100", "100"}, current: 1000, need: 3, also: beacon.ErrInvalidArgument},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, c := setup(t, 3)
			if tc.setup != nil {
				tc.setup(s)
			}
			ix := idx
			if tc.indices != nil {
				ix = tc.indices
			}
			got, err := beacon.Silent(context.Background(), c, ix, tc.current, tc.need)
			if tc.silent {
				if err != nil || !got.Silent {
					t.Fatalf("want silent, got %+v %v", got, err)
				}
				if len(got.Epochs) != tc.need || got.Epochs[0] != tc.current-1 || got.Epochs[tc.need-1] != tc.current-uint64(tc.need) {
					t.Errorf("epochs %v", got.Epochs)
				}
				reqs := s.LivenessRequests()
				for _, e := range got.Epochs {
					if reqs[e] != 1 {
						t.Errorf("epoch %d asked %d times", e, reqs[e])
					}
				}
				if reqs[tc.current] != 0 {
					t.Error("asked about the unfinished current epoch")
				}
				return
			}
			if err == nil || got.Silent {
				t.Fatalf("want not silent, got %+v %v", got, err)
			}
			if !errors.Is(err, beacon.ErrNotSilent) {
				t.Errorf("error does not wrap ErrNotSilent: %v", err)
			}
			if tc.also != nil && !errors.Is(err, tc.also) {
				t.Errorf("error does not wrap %v: %v", tc.also, err)
			}
			for _, h := range tc.errHas {
				if !strings.Contains(err.Error(), h) {
					t.Errorf("error %q lacks %q", err, h)
				}
			}
		})
	}
}

func TestDecideSilence(t *testing.T) {
	ix := []string{"1", "2"}
	f := func(i string) beacon.Liveness { return beacon.Liveness{Index: i} }
	tr := func(i string) beacon.Liveness { return beacon.Liveness{Index: i, IsLive: true} }
	all := func(l ...beacon.Liveness) map[uint64][]beacon.Liveness {
		return map[uint64][]beacon.Liveness{9: l, 8: l, 7: l}
	}
	tests := []struct {
		name    string
		replies map[uint64][]beacon.Liveness
		errHas  string
	}{
		{"silent", all(f("1"), f("2")), ""},
		{"order does not matter", all(f("2"), f("1")), ""},
		{"epoch missing", map[uint64][]beacon.Liveness{9: {f("1"), f("2")}, 8: {f("1"), f("2")}}, "no liveness reply for epoch 7"},
		{"duplicate entry", all(f("1"), f("2"), f("2")), "index 2 appears 2 times"},
		{"duplicate conflicting", all(f("1"), f("2"), tr("2")), "index 2 live in epoch 9"},
		{"unrequested index", all(f("1"), f("2"), f("3")), "index 3 that was not asked for"},
		{"empty reply", all(), "index 1 missing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := beacon.DecideSilence(ix, 10, 3, tc.replies)
			if tc.errHas == "" {
				if err != nil || !s.Silent {
					t.Fatalf("%+v %v", s, err)
				}
				return
			}
			if err == nil || s.Silent || !strings.Contains(err.Error(), tc.errHas) || !beacon.IsNotSilent(err) {
				t.Fatalf("got %+v %v, want %q", s, err, tc.errHas)
			}
		})
	}
}

func TestValidators(t *testing.T) {
	s, c := setup(t, 0)
	ctx := context.Background()
	st := []string{"active_ongoing", "active_slashed", "exited_slashed", "exited_unslashed", "active_exiting", "pending_queued", "withdrawal_done"}
	for i, status := range st {
		s.AddValidator(beacontest.Validator{Index: uint64(i), Pubkey: pk(i), Status: status, Slashed: strings.HasSuffix(status, "_slashed")})
	}
	ids := []string{"0", "1", pk(2), "3", "4", "5", "6"}
	vals, err := c.Validators(ctx, "head", ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(vals) != len(st) {
		t.Fatalf("got %d", len(vals))
	}
	for _, v := range vals {
		i, _ := strconv.Atoi(v.Index)
		if string(v.Status) != st[i] || v.Pubkey != pk(i) {
			t.Errorf("%+v", v)
		}
		wantSlashed := strings.HasSuffix(st[i], "_slashed")
		if v.IsSlashed() != wantSlashed {
			t.Errorf("%s: IsSlashed %v", v.Status, v.IsSlashed())
		}
	}
	if err := beacon.Usable(vals, []string{"0"}); err != nil {
		t.Errorf("active_ongoing refused: %v", err)
	}
	if err := beacon.Usable(vals, []string{pk(0), "5"}); err != nil {
		t.Errorf("pending_queued refused: %v", err)
	}
	for id, want := range map[string]string{"1": "slashed (active_slashed)", pk(2): "slashed (exited_slashed)", "3": "exited or exiting (exited_unslashed)",
		"4": "exited or exiting (active_exiting)", "6": "exited or exiting (withdrawal_done)", "77": "77: not in the state"} {
		if err := beacon.Usable(vals, []string{"0", id}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", id, err, want)
		}
	}
	// The slashed flag alone is enough.
	if err := beacon.Usable([]beacon.Validator{{Index: "9", Status: beacon.ActiveOngoing, Slashed: true}}, []string{"9"}); err == nil {
		t.Error("slashed flag ignored")
	}
	if err := beacon.Usable([]beacon.Validator{{Index: "9", Status: "mystery"}}, []string{"9"}); err == nil || !strings.Contains(err.Error(), "unknown status") {
		t.Errorf("unknown status: %v", err)
	}

	// More than 64 ids: chunked under the spec's maxItems.
	var many []string
	for i := 0; i < 150; i++ {
		s.AddValidator(beacontest.Validator{Index: uint64(1000 + i), Pubkey: pk(1000 + i)})
		many = append(many, strconv.Itoa(1000+i))
	}
	before := len(s.Exchanges())
	vals, err = c.Validators(ctx, "finalized", many)
	if err != nil || len(vals) != 150 {
		t.Fatalf("%d %v", len(vals), err)
	}
	if n := len(s.Exchanges()) - before; n != 3 {
		t.Errorf("%d requests for 150 ids", n)
	}

	for name, tc := range map[string]struct {
		state string
		ids   []string
		setup func()
		want  error
	}{
		"bad state id":      {"latest", []string{"1"}, nil, beacon.ErrInvalidArgument},
		"no ids":            {"head", nil, nil, beacon.ErrInvalidArgument},
		"bad id":            {"head", []string{"abc"}, nil, beacon.ErrInvalidArgument},
		"repeated id":       {"head", []string{"1", "1"}, nil, beacon.ErrInvalidArgument},
		"unknown state 404": {"0x" + strings.Repeat("ab", 32), []string{"1"}, nil, beacon.ErrNotFound},
		"future slot 404":   {"99999999", []string{"1"}, nil, beacon.ErrNotFound},
		"500":               {"head", []string{"1"}, func() { s.Fail(beacontest.Validators, 500) }, beacon.ErrServer},
		"414":               {"head", []string{"1"}, func() { s.Fail(beacontest.Validators, 414) }, beacon.ErrTooManyIDs},
		"malformed": {"head", []string{"1"}, func() {
			s.Raw(beacontest.Validators, 200, `{"execution_optimistic":false,"finalized":false,"data":[{"index":"1","balance":"1","status":"active_ongoing","validator":{"pubkey":"`+pk(1)+`"}}]}`)
		}, beacon.ErrMalformed},
		"no finalized": {"head", []string{"1"}, func() { s.Raw(beacontest.Validators, 200, `{"execution_optimistic":false,"data":[]}`) }, beacon.ErrMalformed},
	} {
		t.Run(name, func(t *testing.T) {
			s.Fail(beacontest.Validators, 0)
			s.Raw(beacontest.Validators, 0, "")
			if tc.setup != nil {
				tc.setup()
			}
			if _, err := c.Validators(ctx, tc.state, tc.ids); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestTimeoutAndBodyLimit(t *testing.T) {
	s, _ := setup(t, 1)
	s.Delay(2 * time.Second)
	c, _ := beacon.New(s.URL, beacon.WithTimeout(100*time.Millisecond))
	start := time.Now()
	if _, err := c.Liveness(context.Background(), 999, []string{"100"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	if time.Since(start) > time.Second {
		t.Errorf("took %v", time.Since(start))
	}
	if _, err := beacon.Silent(context.Background(), c, []string{"100"}, 1000, 3); !errors.Is(err, beacon.ErrNotSilent) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Silent on timeout: %v", err)
	}
	s.Delay(0)
	c2, _ := beacon.New(s.URL, beacon.WithMaxBodyBytes(20))
	if _, err := c2.Genesis(context.Background()); !errors.Is(err, beacon.ErrTooLarge) {
		t.Fatalf("got %v", err)
	}
	for _, u := range []string{"", "localhost:5052", "ftp://x"} {
		if _, err := beacon.New(u); !errors.Is(err, beacon.ErrInvalidArgument) {
			t.Errorf("New(%q): %v", u, err)
		}
	}
}

func TestClock(t *testing.T) {
	g := time.Unix(1606824023, 0)
	c := beacon.Clock{GenesisTime: g, SecondsPerSlot: 12, SlotsPerEpoch: 32}
	zero := beacon.Clock{GenesisTime: g} // defaults to 12 / 32
	tests := []struct {
		at          time.Time
		slot, epoch uint64
		before      bool
	}{
		{g.Add(-time.Second), 0, 0, true},
		{g, 0, 0, false},
		{g.Add(11 * time.Second), 0, 0, false},
		{g.Add(12 * time.Second), 1, 0, false},
		{g.Add(383 * time.Second), 31, 0, false},
		{g.Add(384 * time.Second), 32, 1, false},
		{g.Add(384*1000*time.Second + 500*time.Millisecond), 32000, 1000, false},
	}
	for _, tc := range tests {
		for _, ck := range []beacon.Clock{c, zero} {
			if ck.Slot(tc.at) != tc.slot || ck.Epoch(tc.at) != tc.epoch || ck.BeforeGenesis(tc.at) != tc.before {
				t.Errorf("%v: slot %d epoch %d before %v", tc.at.Sub(g), ck.Slot(tc.at), ck.Epoch(tc.at), ck.BeforeGenesis(tc.at))
			}
		}
	}
	if !c.EpochStart(1000).Equal(g.Add(384000*time.Second)) || !c.SlotStart(1).Equal(g.Add(12*time.Second)) {
		t.Error("starts")
	}
	gn := beacon.Clock{GenesisTime: g, SecondsPerSlot: 6, SlotsPerEpoch: 8} // a faster test network
	if gn.Epoch(g.Add(48*time.Second)) != 1 {
		t.Error("custom timing")
	}
}
