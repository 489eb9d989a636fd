package main

import (
	"strings"
	"testing"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/interchange"
)

// The CLI stops before anyone signs when the keystores are not exactly the
// validator's declared keys; failoverd would refuse them anyway, after a
// spent nonce and a signature round.
func TestSameKeys(t *testing.T) {
	k := func(b string) string { return "0x" + strings.Repeat(b, 48) }
	plan := failover.Plan{Validator: "eth-1", Pubkeys: []string{k("a1"), k("B2")}}
	cases := []struct {
		name string
		plan failover.Plan
		have []string
		want []string // substrings of the error; none: accepted
	}{
		{"exactly the keys, any order and case", plan, []string{k("b2"), k("a1")}, nil},
		{"a key missing", plan, []string{k("a1")}, []string{"missing: " + k("b2")}},
		{"another validator's key", plan, []string{k("a1"), k("b2"), k("c3")}, []string{"not this validator's: " + k("c3")}},
		{"all wrong", plan, []string{k("c3")}, []string{"not this validator's: " + k("c3"), "missing: " + k("a1") + ", " + k("b2")}},
		{"nothing declared", failover.Plan{Validator: "eth-1"}, []string{k("a1")}, []string{"declares no keys", "fleet[].pubkeys"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := sameKeys(c.plan, c.have)
			if len(c.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
		})
	}
}

// At failback home gets the standby's slashing protection raised to where
// the chain clock stood when the standby was proven silent.
func TestHomeProtection(t *testing.T) {
	pk := "0x" + strings.Repeat("a1", 48)
	root := "0x" + strings.Repeat("4b", 32)
	standby, err := interchange.Watermark(root, []string{pk}, 3, 100)
	if err != nil {
		t.Fatal(err)
	}
	sp, err := standby.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m := failover.Migration{Pubkeys: []string{pk}, SlashingProtection: string(sp),
		Chain: &failover.ChainPoint{GenesisValidatorsRoot: root, Epoch: 50, Slot: 1610}}
	out, err := homeProtection(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := interchange.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	h := got.Highest()[pk]
	if h.Slot < 1610 || h.Target < 50 {
		t.Fatalf("home may sign below the silence point: %+v", h)
	}
	// A standby ahead of the recorded point keeps its own history.
	ahead := m
	ahead.Chain = &failover.ChainPoint{GenesisValidatorsRoot: root, Epoch: 1, Slot: 10}
	if out, err = homeProtection(ahead); err != nil {
		t.Fatal(err)
	}
	if got, err = interchange.Parse(out); err != nil || got.Highest()[pk].Slot < 100 {
		t.Fatalf("the standby's own history was lost: %v %+v", err, got)
	}
	// The standby was lost by the cloud and returned nothing: the watermark
	// alone.
	lost := failover.Migration{Pubkeys: []string{pk}, Chain: m.Chain}
	if out, err = homeProtection(lost); err != nil {
		t.Fatal(err)
	}
	if got, err = interchange.Parse(out); err != nil || got.Highest()[pk].Slot < 1610 || got.Highest()[pk].Target < 50 {
		t.Fatalf("watermark only: %v %+v", err, got)
	}
	for name, bad := range map[string]failover.Migration{
		"no chain point":     {Pubkeys: m.Pubkeys, SlashingProtection: m.SlashingProtection},
		"not an interchange": {Pubkeys: m.Pubkeys, SlashingProtection: "{", Chain: m.Chain},
		"other network": {Pubkeys: m.Pubkeys, SlashingProtection: m.SlashingProtection,
			Chain: &failover.ChainPoint{GenesisValidatorsRoot: "0x" + strings.Repeat("00", 32), Epoch: 50, Slot: 1610}},
	} {
		if _, err := homeProtection(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
