package cometbft

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/failoverd/failoverd/failover/cometbft/cometbfttest"
	"github.com/failoverd/failoverd/failover/privval"
)

// fixtureKey is privval's throwaway test key (never a validator's).
func fixtureKey(t testing.TB, name string) privval.Key {
	t.Helper()
	b, err := os.ReadFile("../privval/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	k, err := privval.ParseKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func uncompressed(t testing.TB, k privval.Key) []byte {
	t.Helper()
	var w struct {
		PubKey struct{ Value []byte } `json:"pub_key"`
	}
	if err := json.Unmarshal(k.File(), &w); err != nil || len(w.PubKey.Value) != 96 {
		t.Fatalf("fixture key is not the uncompressed kind: %v", err)
	}
	return w.PubKey.Value
}

type chain struct {
	srv  *cometbfttest.Server
	c    *Client
	key  privval.Key
	addr string
	head int64
	now  time.Time
}

// newChain: a synced node at height 1000 whose set has the fixture key and
// two other validators, all signing every block.
func newChain(t *testing.T) chain {
	t.Helper()
	srv := cometbfttest.New(t)
	key := fixtureKey(t, "key-bls.json")
	addr := srv.AddValidator(cometbfttest.Validator{PubKey: uncompressed(t, key), Power: 250_000})
	for _, pk := range []string{
		"b301803f8b5ac4a1133581fc676dfedc60d891dd5fa99028805e5ea5b08d3491af75d0707adab3b70c6a6a580217bf81",
		"b53d21a4cfd562c469cc81514d4ce5a6b577d8403d32a394dc265dd190b47fa9f829fdd7963afdf972e5e77854051f6f",
	} {
		b, _ := hex.DecodeString(pk)
		srv.AddValidator(cometbfttest.Validator{PubKey: b, Power: 1_000_000})
	}
	head, at := srv.Head()
	return chain{srv: srv, c: newClient(t, srv.URL), key: key, addr: addr, head: head, now: at.Add(3 * time.Second)}
}

func (ch chain) check(t *testing.T, who Identity, blocks int) Report {
	t.Helper()
	r, err := Check(context.Background(), ch.c, who, blocks, ch.now)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCheckSilent(t *testing.T) {
	ch := newChain(t)
	if ch.addr != ch.key.Address {
		t.Fatalf("the fake derives %s, the key file says %s", ch.addr, ch.key.Address)
	}
	// Fenced long enough ago: absent from the last DefaultBlocks+5 blocks.
	ch.srv.SetAbsent(ch.addr, ch.head-DefaultBlocks-4, ch.head)
	r := ch.check(t, KeyIdentity(ch.key), DefaultBlocks)
	if !r.Silent() || r.NotSilent != "" || r.Unusable != "" {
		t.Fatalf("not silent: %+v", r)
	}
	if r.Network != cometbfttest.MainnetChainID || r.Height != ch.head || r.Address != ch.addr || !r.InValidatorSet || r.VotingPower != 250_000 ||
		r.CheckedFrom != ch.head-DefaultBlocks+1 || r.CheckedTo != ch.head || r.LastSigned != 0 || r.NextHeight() != ch.head+1 {
		t.Fatalf("report %+v", r)
	}
	if n := ch.srv.Requests(cometbfttest.Commit); n != DefaultBlocks {
		t.Fatalf("%d commits read, want %d", n, DefaultBlocks)
	}
	// The state to hand the new signer follows from the report.
	st := privval.Raise(privval.State{Height: ch.head - 200}, r.NextHeight())
	if st.Height != ch.head+1 {
		t.Fatalf("raised state %v", st)
	}
	// The report travels as JSON.
	b, _ := json.Marshal(r)
	var back Report
	if err := json.Unmarshal(b, &back); err != nil || !back.Silent() || back.Address != r.Address || !back.BlockTime.Equal(r.BlockTime) {
		t.Fatalf("JSON round trip: %s %v", b, err)
	}
}

// Every vote counts, whatever its flag: for the block, for nil, signed
// alone or folded into a BLS aggregate.
func TestCheckSeesEveryKindOfVote(t *testing.T) {
	for _, flag := range []int{cometbfttest.FlagCommit, cometbfttest.FlagNil, cometbfttest.FlagAggCommit,
		cometbfttest.FlagAggCommitAbsent, cometbfttest.FlagAggNil, cometbfttest.FlagAggNilAbsent} {
		t.Run(BlockIDFlag(flag).String(), func(t *testing.T) {
			ch := newChain(t)
			ch.srv.SetAbsent(ch.addr, ch.head-200, ch.head)
			signed := ch.head - 40
			ch.srv.SetVote(signed, ch.addr, flag)
			r := ch.check(t, KeyIdentity(ch.key), DefaultBlocks)
			if r.Silent() || r.LastSigned != signed {
				t.Fatalf("vote with flag %d missed: %+v", flag, r)
			}
			for _, want := range []string{ch.addr, "signed block 960", "40 blocks before the latest (1000)", "fence it"} {
				if !strings.Contains(r.NotSilent, want) {
					t.Fatalf("refusal %q does not say %q", r.NotSilent, want)
				}
			}
			// It stops at the newest signature: no need to read further.
			if n := ch.srv.Requests(cometbfttest.Commit); n != 41 {
				t.Fatalf("%d commits read", n)
			}
		})
	}
}

func TestCheckWindow(t *testing.T) {
	ch := newChain(t)
	ch.srv.SetAbsent(ch.addr, ch.head-30, ch.head) // last signed head-31
	if r := ch.check(t, KeyIdentity(ch.key), 31); !r.Silent() {
		t.Fatalf("31 blocks of absence, checking 31: %+v", r)
	}
	if r := ch.check(t, KeyIdentity(ch.key), 32); r.Silent() || r.LastSigned != ch.head-31 {
		t.Fatalf("signed at %d, checking 32 blocks: %+v", ch.head-31, r)
	}
	// Live: it signs the latest block.
	ch2 := newChain(t)
	if r := ch2.check(t, KeyIdentity(ch2.key), MinBlocks); r.Silent() || r.LastSigned != ch2.head || !strings.Contains(r.NotSilent, "signed block 1000 (commit), the latest block") {
		t.Fatalf("signing validator: %+v", r)
	}
}

// The chain may give the key an address this side never derived (another
// beacond release, another encoding): the validator is found by its public
// key and its votes under that address still count.
func TestCheckFindsValidatorByPubkey(t *testing.T) {
	srv := cometbfttest.New(t)
	key := fixtureKey(t, "key-bls-compressed.json")
	odd := strings.Repeat("7E", 20)
	srv.AddValidator(cometbfttest.Validator{Address: odd, PubKey: uncompressed(t, fixtureKey(t, "key-bls.json")), Power: 9})
	head, at := srv.Head()
	srv.SetVote(head-5, odd, cometbfttest.FlagCommit)
	srv.SetAbsent(odd, head-4, head)
	for i := head - 20; i < head-5; i++ {
		srv.SetVote(i, odd, cometbfttest.FlagAbsent)
	}
	c := newClient(t, srv.URL)
	for _, who := range []Identity{KeyIdentity(key), {Pubkey: key.Pubkey}} {
		r, err := Check(context.Background(), c, who, 20, at)
		if err != nil {
			t.Fatal(err)
		}
		if r.Address != odd || !r.InValidatorSet || r.Silent() || r.LastSigned != head-5 {
			t.Fatalf("%v: %+v", who, r)
		}
	}
	// By address alone it is not found, and its votes go unseen: which is
	// why KeyIdentity passes the public key.
	r, err := Check(context.Background(), c, Identity{Addresses: key.Addresses()}, 20, at)
	if err != nil || r.InValidatorSet || r.Unusable == "" {
		t.Fatalf("by address only: %+v %v", r, err)
	}
}

func TestCheckNotSilentWhenTheNodeCannotTell(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(ch *chain)
		want  string
	}{
		{"catching up", func(ch *chain) { ch.srv.SetCatchingUp(true) }, "is catching up"},
		{"stalled", func(ch *chain) { ch.now = ch.now.Add(MaxHeadAge + time.Second) }, "not following the chain"},
		{"head in the future", func(ch *chain) { ch.now = ch.now.Add(-MaxHeadAge - 5*time.Second) }, "in the future"},
		{"pruned", func(ch *chain) { ch.srv.SetEarliest(ch.head - 10) }, "keeps blocks from 990 only"},
		{"young chain", func(ch *chain) { _, at := ch.srv.Head(); ch.srv.SetHead(100, at) }, "only 100 blocks"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ch := newChain(t)
			ch.srv.SetAbsent(ch.addr, 1, ch.head)
			c.setup(&ch)
			r := ch.check(t, KeyIdentity(ch.key), DefaultBlocks)
			if r.Silent() || !strings.Contains(r.NotSilent, c.want) {
				t.Fatalf("report %+v, want %q", r, c.want)
			}
		})
	}
}

func TestCheckValidatorSet(t *testing.T) {
	// Not in the set: nothing it could sign, and Unusable says so.
	ch := newChain(t)
	other := fixtureKey(t, "key-ed25519.json")
	r := ch.check(t, KeyIdentity(other), MinBlocks)
	if r.InValidatorSet || !strings.Contains(r.Unusable, "not in the validator set at height 1000") || !r.Silent() {
		t.Fatalf("outside the set: %+v", r)
	}
	// In the set without power.
	srv := cometbfttest.New(t)
	key := fixtureKey(t, "key-bls.json")
	srv.AddValidator(cometbfttest.Validator{PubKey: uncompressed(t, key), Power: 0})
	srv.AddValidator(cometbfttest.Validator{PubKey: []byte{9}, Power: 5})
	_, at := srv.Head()
	r, err := Check(context.Background(), newClient(t, srv.URL), KeyIdentity(key), MinBlocks, at)
	if err != nil || r.InValidatorSet || !strings.Contains(r.Unusable, "no voting power") || r.Address != key.Address {
		t.Fatalf("zero power: %+v %v", r, err)
	}
}

func TestCheckErrors(t *testing.T) {
	ch := newChain(t)
	ctx := context.Background()
	who := KeyIdentity(ch.key)
	for _, c := range []struct {
		name  string
		who   Identity
		n     int
		setup func()
		is    error
		want  string
	}{
		{"too few blocks", who, MinBlocks - 1, nil, ErrInvalidArgument, "9 blocks; want 10"},
		{"too many blocks", who, MaxBlocks + 1, nil, ErrInvalidArgument, "10001 blocks"},
		{"nobody", Identity{}, MinBlocks, nil, ErrInvalidArgument, "no public key or address"},
		{"bad address", Identity{Addresses: []string{"xyz"}}, MinBlocks, nil, ErrInvalidArgument, "not 20 bytes"},
		{"bad pubkey", Identity{Pubkey: "0x1234"}, MinBlocks, nil, ErrInvalidArgument, "public key"},
		{"status fails", who, MinBlocks, func() { ch.srv.Fail(cometbfttest.Status, 500) }, ErrRPC, "cometbft node"},
		{"validators fail", who, MinBlocks, func() { ch.srv.Fail(cometbfttest.Validators, 503) }, ErrRPC, "HTTP 503"},
		{"commit fails", who, MinBlocks, func() { ch.srv.Fail(cometbfttest.Commit, 500) }, ErrRPC, "injected failure"},
		{"commit of another chain", who, MinBlocks, func() {
			ch.srv.Raw(cometbfttest.Commit, 200, strings.ReplaceAll(string(commitReply(t, ch)), cometbfttest.MainnetChainID, "bepolia-beacon-80069"))
		}, ErrMalformed, `is for chain "bepolia-beacon-80069"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, r := range []string{cometbfttest.Status, cometbfttest.Validators, cometbfttest.Commit} {
				ch.srv.Fail(r, 0)
				ch.srv.Raw(r, 0, "")
			}
			if c.setup != nil {
				c.setup()
			}
			r, err := Check(ctx, ch.c, c.who, c.n, ch.now)
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %v %q", err, c.is, c.want)
			}
			if r.Silent() {
				t.Fatal("an error and a silent report")
			}
		})
	}
}

// commitReply is the fake's own reply for the latest commit.
func commitReply(t *testing.T, ch chain) []byte {
	t.Helper()
	if _, err := ch.c.Commit(context.Background(), ch.head); err != nil {
		t.Fatal(err)
	}
	ex := ch.srv.Exchanges()
	return ex[len(ex)-1].ResponseBody
}
