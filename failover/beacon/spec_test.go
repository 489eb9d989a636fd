package beacon_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/failoverd/failoverd/failover/beacon"
	"github.com/failoverd/failoverd/failover/beacon/beacontest"
	"github.com/failoverd/failoverd/failover/beacon/oapitest"
)

func loadSpec(t *testing.T) *oapitest.Spec {
	t.Helper()
	dir, ok := oapitest.Dir("beacon-apis")
	if !ok {
		t.Skip("../shared/specs/beacon-apis not present; spec conformance check skipped")
	}
	s := oapitest.Load(dir)
	s.Fallback = oapitest.BeaconFallback(s)
	return s
}

var routeFile = map[string]struct{ file, method string }{
	beacontest.Genesis:    {"apis/beacon/genesis.yaml", "get"},
	beacontest.Syncing:    {"apis/node/syncing.yaml", "get"},
	beacontest.Liveness:   {"apis/validator/liveness.yaml", "post"},
	beacontest.Validators: {"apis/beacon/states/validators.yaml", "get"},
}

// TestExchangesFollowSpec drives every route and status the client handles
// against the test server and checks each request the client sent and each
// reply the server sent against shared/specs/beacon-apis.
func TestExchangesFollowSpec(t *testing.T) {
	spec := loadSpec(t)
	ctx := context.Background()
	s, c := setup(t, 3)
	s.AddValidator(beacontest.Validator{Index: 7, Pubkey: pk(7), Status: "exited_slashed", Slashed: true})
	s.SetLive(999, 101, true)

	_, _ = c.Genesis(ctx)
	_, _ = c.Syncing(ctx)
	s.SetSyncing(beacontest.SyncState{HeadSlot: 1, SyncDistance: 31999, IsSyncing: true, IsOptimistic: true, ELOffline: true})
	_, _ = c.Syncing(ctx)
	s.SetSyncing(beacontest.SyncState{HeadSlot: 32000})
	_, _ = beacon.Silent(ctx, c, []string{"100", "101", "102", "555"}, 1000, 3)
	_, _ = c.Liveness(ctx, 5000, []string{"100"}) // 400
	_, _ = c.Validators(ctx, "head", []string{"100", pk(101), "7", "9999"})
	_, _ = c.Validators(ctx, "0x"+strings.Repeat("ab", 32), []string{"100"}) // 404
	var many []string
	for i := 0; i < 70; i++ {
		many = append(many, strconv.Itoa(i))
	}
	_, _ = c.Validators(ctx, "finalized", many)
	s.SetGenesisUnknown()
	_, _ = c.Genesis(ctx) // 404
	for route, code := range map[string]int{beacontest.Genesis: 500, beacontest.Syncing: 500, beacontest.Liveness: 503, beacontest.Validators: 414} {
		s.Fail(route, code)
	}
	_, _ = c.Genesis(ctx)
	_, _ = c.Syncing(ctx)
	_, _ = c.Liveness(ctx, 999, []string{"100"})
	_, _ = c.Validators(ctx, "head", []string{"100"})
	s.Fail(beacontest.Liveness, 500)
	_, _ = c.Liveness(ctx, 999, []string{"100"})
	s.Fail(beacontest.Validators, 500)
	_, _ = c.Validators(ctx, "head", []string{"100"})
	s.Fail(beacontest.Validators, 0)
	// A 400 for a bad state id, which the client refuses to send itself.
	resp, err := http.Get(s.URL + "/eth/v1/beacon/states/current/validators")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	seen := map[string]bool{}
	for i, ex := range s.Exchanges() {
		rf, ok := routeFile[ex.Route]
		if !ok {
			t.Errorf("#%d: request to %s %s which is not a spec route", i, ex.Method, ex.Path)
			continue
		}
		if strings.ToLower(ex.Method) != rf.method {
			t.Errorf("#%d: %s %s, spec says %s", i, ex.Method, ex.Path, rf.method)
		}
		seen[ex.Route+" "+http.StatusText(ex.Status)] = true
		switch ex.Route {
		case beacontest.Liveness:
			rs, err := spec.RequestSchema(rf.file, rf.method)
			if err != nil {
				t.Fatal(err)
			}
			if err := rs.ValidateJSON(ex.RequestBody); err != nil {
				t.Errorf("#%d liveness request body: %v (%s)", i, err, ex.RequestBody)
			}
			ep, err := spec.At(rf.file, "/post/parameters/0/schema")
			if err != nil {
				t.Fatal(err)
			}
			if err := ep.Validate(strings.TrimPrefix(ex.Path, "/eth/v1/validator/liveness/")); err != nil {
				t.Errorf("#%d epoch path parameter: %v", i, err)
			}
		case beacontest.Validators:
			q, _ := url.ParseQuery(ex.Query)
			if ids, ok := q["id"]; ok {
				name, err := spec.At(rf.file, "/get/parameters/1/name")
				if err != nil || name.Value() != "id" {
					t.Fatalf("spec parameter 1 is %v, want id (%v)", name.Value(), err)
				}
				sch, _ := spec.At(rf.file, "/get/parameters/1/schema")
				arr := make([]any, len(ids))
				for j := range ids {
					arr[j] = ids[j]
				}
				if err := sch.Validate(arr); err != nil {
					t.Errorf("#%d id query: %v", i, err)
				}
			}
		default:
			if len(ex.RequestBody) != 0 {
				t.Errorf("#%d: GET with a body", i)
			}
		}
		rs, err := spec.ResponseSchema(rf.file, rf.method, ex.Status)
		if err != nil {
			t.Errorf("#%d %s: status %d is not in the spec: %v", i, ex.Route, ex.Status, err)
			continue
		}
		if err := rs.ValidateJSON(ex.ResponseBody); err != nil {
			t.Errorf("#%d %s %d reply does not follow the spec: %v\n%s", i, ex.Route, ex.Status, err, ex.ResponseBody)
		}
	}
	for _, want := range []string{"genesis OK", "genesis Not Found", "genesis Internal Server Error",
		"syncing OK", "syncing Internal Server Error",
		"liveness OK", "liveness Bad Request", "liveness Service Unavailable", "liveness Internal Server Error",
		"validators OK", "validators Not Found", "validators Request URI Too Long", "validators Internal Server Error", "validators Bad Request"} {
		if !seen[want] {
			t.Errorf("scenario did not exercise %s", want)
		}
	}
	for _, f := range spec.FallbacksUsed() {
		t.Logf("reference outside shared/specs: %s", f)
	}
}

// TestValidatorCatchesDeviations makes sure the spec check is not vacuous.
func TestValidatorCatchesDeviations(t *testing.T) {
	spec := loadSpec(t)
	live, err := spec.ResponseSchema("apis/validator/liveness.yaml", "post", 200)
	if err != nil {
		t.Fatal(err)
	}
	liveReq, _ := spec.RequestSchema("apis/validator/liveness.yaml", "post")
	gen, _ := spec.ResponseSchema("apis/beacon/genesis.yaml", "get", 200)
	syn, _ := spec.ResponseSchema("apis/node/syncing.yaml", "get", 200)
	vals, _ := spec.ResponseSchema("apis/beacon/states/validators.yaml", "get", 200)
	e503, _ := spec.ResponseSchema("apis/validator/liveness.yaml", "post", 503)
	root := beacontest.MainnetRoot
	v := func(status string) string {
		return `{"execution_optimistic":false,"finalized":true,"data":[{"index":"1","balance":"32","status":"` + status + `","validator":{"pubkey":"` + pk(1) +
			`","withdrawal_credentials":"` + root + `","effective_balance":"32","slashed":false,"activation_eligibility_epoch":"0","activation_epoch":"0","exit_epoch":"1","withdrawable_epoch":"2"}}]}`
	}
	for _, tc := range []struct {
		name string
		sc   oapitest.Schema
		body string
		ok   bool
	}{
		{"liveness ok", live, `{"data":[{"index":"1","is_live":false}]}`, true},
		{"liveness is_live missing", live, `{"data":[{"index":"1"}]}`, false},
		{"liveness is_live string", live, `{"data":[{"index":"1","is_live":"false"}]}`, false},
		{"liveness index number", live, `{"data":[{"index":1,"is_live":false}]}`, false},
		{"liveness request empty", liveReq, `[]`, false},
		{"liveness request numbers", liveReq, `[1,2]`, false},
		{"liveness request ok", liveReq, `["1","2"]`, true},
		{"genesis root pattern", gen, `{"data":{"genesis_time":"1","genesis_validators_root":"0x1","genesis_fork_version":"0x00000000"}}`, false},
		{"genesis ok", gen, `{"data":{"genesis_time":"1","genesis_validators_root":"` + root + `","genesis_fork_version":"0x00000000"}}`, true},
		{"syncing el_offline required", syn, `{"data":{"head_slot":"1","sync_distance":"0","is_syncing":false,"is_optimistic":false}}`, false},
		{"validators ok", vals, v("active_ongoing"), true},
		{"validators status enum", vals, v("slashed"), false},
		{"validators finalized required", vals, `{"execution_optimistic":false,"data":[]}`, false},
		{"503 ErrorMessage", e503, `{"code":503,"message":"syncing"}`, true},
		{"503 code as string", e503, `{"code":"503","message":"syncing"}`, false},
	} {
		err := tc.sc.ValidateJSON([]byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err=%v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
