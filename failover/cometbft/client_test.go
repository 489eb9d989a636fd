package cometbft

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/failoverd/failoverd/failover/cometbft/cometbfttest"
)

// Addresses in testdata: the privval throwaway key and two keys of the
// consensus-spec BLS tests.
const (
	addrFixture = "4A5D6F9A1C5E2A2A5F027FC6DF6C177786F3A0BE"
	addrSpec2   = "563F99A4F2B529A27CDEE0B0A0405DA571921E9F"
	addrSpec3   = "06A437278718CBBCE447B2E39B74F17F23E69941"
)

func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newClient(t testing.TB, base string, opts ...Option) *Client {
	t.Helper()
	c, err := New(base, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The testdata replies have every field CometBFT sends, in its encoding.
func TestDecodeSamples(t *testing.T) {
	res, err := decodeEnvelope("status", 200, sample(t, "status.json"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := decodeStatus(res)
	if err != nil {
		t.Fatal(err)
	}
	if st.Network != "mainnet-beacon-80094" || st.LatestHeight != 4242118 || st.EarliestHeight != 4100001 || st.CatchingUp ||
		!st.LatestBlockTime.Equal(time.Date(2026, 11, 21, 10, 0, 2, 123456789, time.UTC)) || st.Validator.Address != addrSpec3 || st.Validator.VotingPower != 0 {
		t.Fatalf("status: %+v", st)
	}

	res, err = decodeEnvelope("commit", 200, sample(t, "commit.json"))
	if err != nil {
		t.Fatal(err)
	}
	cm, err := decodeCommit(res, 4242117)
	if err != nil {
		t.Fatal(err)
	}
	want := []CommitSig{{FlagAggCommit, addrSpec2}, {FlagAggCommitAbsent, addrFixture}, {FlagAbsent, ""}}
	if cm.ChainID != "mainnet-beacon-80094" || cm.Round != 1 || !cm.Canonical || fmt.Sprint(cm.Signatures) != fmt.Sprint(want) {
		t.Fatalf("commit: %+v", cm)
	}
	// An aggregated entry without its own signature is still a vote.
	if s, ok := cm.Vote(map[string]bool{addrFixture: true}); !ok || s.Flag != FlagAggCommitAbsent {
		t.Fatalf("vote of %s not found: %v", addrFixture, s)
	}
	if _, err := decodeCommit(res, 4242116); !errors.Is(err, ErrMalformed) {
		t.Fatalf("commit for another height accepted: %v", err)
	}

	res, err = decodeEnvelope("validators", 200, sample(t, "validators.json"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := decodeValidatorsPage(res)
	if err != nil {
		t.Fatal(err)
	}
	if p.Height != 4242118 || p.Count != 3 || p.Total != 3 || p.Validators[1].Address != addrFixture ||
		p.Validators[0].VotingPower != 10000000000000000 || p.Validators[0].ProposerPriority != -12250000000000000 {
		t.Fatalf("validators: %+v", p)
	}

	_, err = decodeEnvelope("commit", 500, sample(t, "error-height.json"))
	var re *RPCError
	if !errors.As(err, &re) || !errors.Is(err, ErrRPC) || re.Code != -32603 || !strings.Contains(err.Error(), "requested height: 5000000") {
		t.Fatalf("error reply: %v", err)
	}
}

func TestClientAgainstFake(t *testing.T) {
	srv := cometbfttest.New(t)
	head, headTime := srv.Head()
	// 250 validators: three pages of at most 100.
	for i := 0; i < 250; i++ {
		pk := make([]byte, 96)
		pk[0], pk[1] = byte(i), byte(i>>8)
		srv.AddValidator(cometbfttest.Validator{PubKey: pk, Power: int64(1000 - i%7)})
	}
	for _, base := range []string{srv.URL, srv.URL + "/v1"} {
		c := newClient(t, base)
		ctx := context.Background()
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Network != cometbfttest.MainnetChainID || st.LatestHeight != head || !st.LatestBlockTime.Equal(headTime) || st.CatchingUp {
			t.Fatalf("status %+v", st)
		}
		set, err := c.Validators(ctx, head)
		if err != nil {
			t.Fatal(err)
		}
		if set.Height != head || len(set.Validators) != 250 {
			t.Fatalf("validators: height %d, %d of them", set.Height, len(set.Validators))
		}
		for i := 1; i < len(set.Validators); i++ {
			a, b := set.Validators[i-1], set.Validators[i]
			if a.VotingPower < b.VotingPower || (a.VotingPower == b.VotingPower && a.Address >= b.Address) {
				t.Fatalf("validators not in CometBFT's order at %d", i)
			}
		}
		cm, err := c.Commit(ctx, head-3)
		if err != nil {
			t.Fatal(err)
		}
		if cm.Height != head-3 || !cm.Canonical || len(cm.Signatures) != 250 {
			t.Fatalf("commit: %d canonical=%v %d sigs", cm.Height, cm.Canonical, len(cm.Signatures))
		}
		latest, err := c.Commit(ctx, head)
		if err != nil || latest.Canonical {
			t.Fatalf("latest commit: canonical=%v %v", latest.Canonical, err)
		}
	}
	// The requests are CometBFT's URI form.
	var pages []string
	for _, e := range srv.Exchanges() {
		if e.Route == cometbfttest.Validators {
			q, _ := url.ParseQuery(e.Query)
			if q.Get("per_page") != "100" || q.Get("height") != fmt.Sprint(head) {
				t.Fatalf("validators query %q", e.Query)
			}
			pages = append(pages, q.Get("page"))
		}
	}
	if strings.Join(pages, ",") != "1,2,3,1,2,3" {
		t.Fatalf("pages asked: %v", pages)
	}
}

func TestClientErrorsFromNode(t *testing.T) {
	srv := cometbfttest.New(t)
	srv.AddValidator(cometbfttest.Validator{PubKey: []byte{1}, Power: 1})
	head, _ := srv.Head()
	c := newClient(t, srv.URL)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		call func() error
		want string
	}{
		{"above the head", func() error { _, err := c.Commit(ctx, head+1); return err }, "head of the blockchain"},
		{"pruned", func() error { srv.SetEarliest(500); defer srv.SetEarliest(1); _, err := c.Commit(ctx, 10); return err }, "not available"},
		{"injected", func() error {
			srv.Fail(cometbfttest.Status, 500)
			defer srv.Fail(cometbfttest.Status, 0)
			_, err := c.Status(ctx)
			return err
		}, "injected failure"},
	} {
		err := c.call()
		var re *RPCError
		if !errors.As(err, &re) || !errors.Is(err, ErrRPC) || re.StatusCode != 500 || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if _, err := c.Commit(ctx, 0); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("height 0: %v", err)
	}
	if _, err := c.Validators(ctx, -1); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("height -1: %v", err)
	}
	if n := srv.Requests(cometbfttest.Commit); n != 2 {
		t.Errorf("%d commit requests; invalid arguments must send nothing", n)
	}
}

// TestClientRefusesMalformed: every reply that is not what CometBFT sends
// is refused, with an error that says what is wrong.
func TestClientRefusesMalformed(t *testing.T) {
	srv := cometbfttest.New(t)
	srv.AddValidator(cometbfttest.Validator{PubKey: []byte{1}, Power: 1})
	head, _ := srv.Head()
	c := newClient(t, srv.URL, WithMaxBodyBytes(64<<10))
	ctx := context.Background()
	env := func(result string) string { return `{"jsonrpc":"2.0","id":-1,"result":` + result + `}` }
	commit := func(sigs string) string {
		return env(fmt.Sprintf(`{"signed_header":{"header":{"chain_id":"c","height":"%d","time":"2026-01-01T00:00:00Z"},"commit":{"height":"%d","round":0,"signatures":[%s]}},"canonical":true}`, head, head, sigs))
	}
	addr := strings.Repeat("AB", 20)
	statusCall := func() error { _, err := c.Status(ctx); return err }
	commitCall := func() error { _, err := c.Commit(ctx, head); return err }
	valsCall := func() error { _, err := c.Validators(ctx, head); return err }
	for _, tc := range []struct {
		name, route string
		status      int
		body        string
		call        func() error
		is          error
		want        string
	}{
		{"not JSON", cometbfttest.Status, 200, `<html>`, statusCall, ErrMalformed, "not a JSON-RPC reply"},
		{"no jsonrpc member", cometbfttest.Status, 200, `{"result":{}}`, statusCall, ErrMalformed, "no jsonrpc member"},
		{"jsonrpc 1.0", cometbfttest.Status, 200, `{"jsonrpc":"1.0","result":{}}`, statusCall, ErrMalformed, `want "2.0"`},
		{"null result", cometbfttest.Status, 200, env(`null`), statusCall, ErrMalformed, "no result"},
		{"trailing data", cometbfttest.Status, 200, env(`{}`) + `{}`, statusCall, ErrMalformed, "trailing data"},
		{"error on 200", cometbfttest.Status, 200, `{"jsonrpc":"2.0","id":-1,"error":{"code":-32601,"message":"Method not found"}}`, statusCall, ErrRPC, "Method not found"},
		{"HTML 502 from a proxy", cometbfttest.Status, 502, `<html>bad gateway</html>`, statusCall, ErrUnexpected, "HTTP 502"},
		{"oversized", cometbfttest.Status, 200, env(`{"x":"` + strings.Repeat("a", 70<<10) + `"}`), statusCall, ErrTooLarge, "more than 65536 bytes"},
		{"oversized error body", cometbfttest.Status, 500, strings.Repeat(" ", 70<<10), statusCall, ErrUnexpected, "HTTP 500"},
		{"no chain ID", cometbfttest.Status, 200, env(`{"node_info":{},"sync_info":{"latest_block_height":"1","latest_block_time":"2026-01-01T00:00:00Z","catching_up":false}}`), statusCall, ErrMalformed, "node_info.network"},
		{"height as a number", cometbfttest.Status, 200, env(`{"node_info":{"network":"c"},"sync_info":{"latest_block_height":1,"latest_block_time":"2026-01-01T00:00:00Z","catching_up":false}}`), statusCall, ErrMalformed, "status"},
		{"height not decimal", cometbfttest.Status, 200, env(`{"node_info":{"network":"c"},"sync_info":{"latest_block_height":"0x10","latest_block_time":"2026-01-01T00:00:00Z","catching_up":false}}`), statusCall, ErrMalformed, `latest_block_height "0x10"`},
		{"no catching_up", cometbfttest.Status, 200, env(`{"node_info":{"network":"c"},"sync_info":{"latest_block_height":"1","latest_block_time":"2026-01-01T00:00:00Z"}}`), statusCall, ErrMalformed, "catching_up"},
		{"bad block time", cometbfttest.Status, 200, env(`{"node_info":{"network":"c"},"sync_info":{"latest_block_height":"1","latest_block_time":"yesterday","catching_up":false}}`), statusCall, ErrMalformed, "latest_block_time"},
		{"commit of another height", cometbfttest.Commit, 200, strings.ReplaceAll(commit(`{"block_id_flag":2,"validator_address":"`+addr+`"}`), fmt.Sprintf(`"height":"%d"`, head), `"height":"7"`), commitCall, ErrMalformed, `header height "7"`},
		{"commit without canonical", cometbfttest.Commit, 200, strings.Replace(commit(`{"block_id_flag":1}`), `,"canonical":true`, ``, 1), commitCall, ErrMalformed, "canonical required"},
		{"no signatures", cometbfttest.Commit, 200, commit(``), commitCall, ErrMalformed, "no signatures"},
		{"unknown flag", cometbfttest.Commit, 200, commit(`{"block_id_flag":8,"validator_address":"` + addr + `"}`), commitCall, ErrMalformed, "unknown block_id_flag 8"},
		{"flag 0", cometbfttest.Commit, 200, commit(`{"block_id_flag":0,"validator_address":""}`), commitCall, ErrMalformed, "unknown block_id_flag 0"},
		{"no flag", cometbfttest.Commit, 200, commit(`{"validator_address":"` + addr + `"}`), commitCall, ErrMalformed, "no block_id_flag"},
		{"absent naming a validator", cometbfttest.Commit, 200, commit(`{"block_id_flag":1,"validator_address":"` + addr + `"}`), commitCall, ErrMalformed, "is absent but names"},
		{"vote without address", cometbfttest.Commit, 200, commit(`{"block_id_flag":2,"validator_address":""}`), commitCall, ErrMalformed, "not 20 bytes of hex"},
		{"vote with short address", cometbfttest.Commit, 200, commit(`{"block_id_flag":3,"validator_address":"ABCD"}`), commitCall, ErrMalformed, "not 20 bytes of hex"},
		{"validator twice", cometbfttest.Commit, 200, commit(`{"block_id_flag":2,"validator_address":"` + addr + `"},{"block_id_flag":3,"validator_address":"` + strings.ToLower(addr) + `"}`), commitCall, ErrMalformed, "appears twice"},
		{"count mismatch", cometbfttest.Validators, 200, env(fmt.Sprintf(`{"block_height":"%d","validators":[],"count":"1","total":"1"}`, head)), valsCall, ErrMalformed, "count 1 but 0 listed"},
		{"empty set", cometbfttest.Validators, 200, env(fmt.Sprintf(`{"block_height":"%d","validators":[],"count":"0","total":"0"}`, head)), valsCall, ErrMalformed, "total 0"},
		{"set of another height", cometbfttest.Validators, 200, env(`{"block_height":"3","validators":[{"address":"` + addr + `","pub_key":{"type":"t","value":"AQ=="},"voting_power":"1"}],"count":"1","total":"1"}`), valsCall, ErrMalformed, "asked for height"},
		{"negative power", cometbfttest.Validators, 200, env(fmt.Sprintf(`{"block_height":"%d","validators":[{"address":"`+addr+`","pub_key":{"type":"t","value":"AQ=="},"voting_power":"-1"}],"count":"1","total":"1"}`, head)), valsCall, ErrMalformed, "voting_power"},
		{"validator without key", cometbfttest.Validators, 200, env(fmt.Sprintf(`{"block_height":"%d","validators":[{"address":"`+addr+`","voting_power":"1"}],"count":"1","total":"1"}`, head)), valsCall, ErrMalformed, "needs address"},
		{"count as a number", cometbfttest.Validators, 200, env(fmt.Sprintf(`{"block_height":"%d","validators":[],"count":0,"total":"0"}`, head)), valsCall, ErrMalformed, "validators"},
		{"more pages promised than sent", cometbfttest.Validators, 200, env(fmt.Sprintf(`{"block_height":"%d","validators":[{"address":"`+addr+`","pub_key":{"type":"t","value":"AQ=="},"voting_power":"1"}],"count":"1","total":"2"}`, head)), valsCall, ErrMalformed, "listed twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv.Raw(tc.route, tc.status, tc.body)
			defer srv.Raw(tc.route, 0, "")
			err := tc.call()
			if !errors.Is(err, tc.is) {
				t.Fatalf("error %v, want %v", err, tc.is)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// A node that changes its answer between pages (a new block) is refused,
// not stitched together.
func TestValidatorsPagesMustAgree(t *testing.T) {
	page := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		page++
		addr := fmt.Sprintf("%040X", page)
		total := 2
		if page == 2 {
			total = 3
		}
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":-1,"result":{"block_height":"10","validators":[{"address":"%s","pub_key":{"type":"t","value":"AQ=="},"voting_power":"5"}],"count":"1","total":"%d"}}`, addr, total)
	}))
	defer srv.Close()
	_, err := newClient(t, srv.URL).Validators(context.Background(), 10)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "page 1 said height 10 total 2") {
		t.Fatalf("inconsistent pages: %v", err)
	}
}

func TestClientTimeoutsAndContext(t *testing.T) {
	srv := cometbfttest.New(t)
	srv.SetDelay(2 * time.Second)
	c := newClient(t, srv.URL, WithTimeout(100*time.Millisecond))
	start := time.Now()
	if _, err := c.Status(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow node: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Fatal("the client timeout did not bound the call")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := newClient(t, srv.URL).Status(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}

func TestNew(t *testing.T) {
	for _, u := range []string{"", "localhost:26657", "tcp://127.0.0.1:26657", "http://", "://x"} {
		if _, err := New(u); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("New(%q): %v", u, err)
		}
	}
	c := newClient(t, "http://user:secret@127.0.0.1:26657/agent/rpc")
	if strings.Contains(c.String(), "secret") {
		t.Fatalf("String shows credentials: %s", c)
	}
}

func TestBlockIDFlag(t *testing.T) {
	for f := BlockIDFlag(0); f <= 8; f++ {
		if want := f >= 2 && f <= 7; f.Voted() != want {
			t.Errorf("%v.Voted() = %v", f, f.Voted())
		}
		if f.String() == "" {
			t.Errorf("flag %d has no name", int(f))
		}
	}
}
