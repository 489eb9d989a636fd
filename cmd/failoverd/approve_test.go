package main

import (
	"strings"
	"testing"

	"github.com/failoverd/failoverd/failover"
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
