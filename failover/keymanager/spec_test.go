package keymanager_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/failoverd/failoverd/failover/beacon/oapitest"
	"github.com/failoverd/failoverd/failover/keymanager"
	"github.com/failoverd/failoverd/failover/keymanager/keymanagertest"
)

const keystoresFile = "apis/local_keystores.yaml"

func loadSpec(t *testing.T) *oapitest.Spec {
	t.Helper()
	dir, ok := oapitest.Dir("keymanager-apis")
	if !ok {
		t.Skip("../shared/specs/keymanager-apis not present; spec conformance check skipped")
	}
	return oapitest.Load(dir)
}

// TestExchangesFollowSpec drives every route and status the client
// handles against the test server and checks each request the client sent
// and each reply the server sent against shared/specs/keymanager-apis.
func TestExchangesFollowSpec(t *testing.T) {
	spec := loadSpec(t)
	s := keymanagertest.New(t)
	ctx := context.Background()
	s.AddKey(pk(1), keymanagertest.History{Blocks: []uint64{9}, Attestations: []keymanagertest.Attestation{{Source: 1, Target: 2}}})
	s.AddKey(pk(2), keymanagertest.History{})
	s.AddReadonlyKey(pk(3))
	s.FailKey(pk(2), "stuck")
	s.AddInactiveKey(pk(5), keymanagertest.History{})
	c := newClient(t, s)

	if _, err := c.ListKeystores(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteKeystores(ctx, []string{pk(1), pk(2), pk(3), pk(4), pk(5)}); err != nil {
		t.Fatal(err)
	}
	sp := keymanagertest.Interchange(keymanagertest.DefaultRoot, map[string]keymanagertest.History{pk(6): {Blocks: []uint64{3}}})
	if _, err := c.ImportKeystores(ctx,
		[]string{keymanagertest.NewKeystore(pk(6), "a"), keymanagertest.NewKeystore(pk(7), "b"), keymanagertest.NewKeystore(pk(3), "c")},
		[]string{"a", "wrong", "c"}, sp); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ImportKeystores(ctx, []string{keymanagertest.NewKeystore(pk(8), "a")}, []string{"a"}, ""); err != nil {
		t.Fatal(err)
	}
	// 400: slashing protection for another network.
	_, _ = c.ImportKeystores(ctx, []string{keymanagertest.NewKeystore(pk(9), "a")}, []string{"a"},
		keymanagertest.Interchange("0x"+strings.Repeat("22", 32), nil))
	// 403, 500.
	bad, _ := keymanager.New(s.URL, "00")
	_, _ = bad.ListKeystores(ctx)
	_, _ = bad.DeleteKeystores(ctx, []string{pk(1)})
	s.Fail(500)
	_, _ = c.ListKeystores(ctx)
	_, _ = c.DeleteKeystores(ctx, []string{pk(1)})
	_, _ = c.ImportKeystores(ctx, []string{keymanagertest.NewKeystore(pk(9), "a")}, []string{"a"}, "")
	s.Fail(0)
	// 401 (no token: not something the client sends, but a reply the server does).
	resp, err := http.Get(s.URL + "/eth/v1/keystores")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	seen := map[string]bool{}
	for i, ex := range s.Exchanges() {
		method := strings.ToLower(ex.Method)
		key := method + " " + http.StatusText(ex.Status)
		seen[key] = true
		fromClient := ex.Header.Get("Authorization") != ""
		if fromClient {
			if !strings.HasPrefix(ex.Header.Get("Authorization"), "Bearer ") {
				t.Errorf("#%d: Authorization is not a bearer token", i)
			}
			if ex.Header.Get("Accept") != "application/json" {
				t.Errorf("#%d: Accept %q", i, ex.Header.Get("Accept"))
			}
			if method != "get" {
				if ex.Header.Get("Content-Type") != "application/json" {
					t.Errorf("#%d: Content-Type %q", i, ex.Header.Get("Content-Type"))
				}
				rs, err := spec.RequestSchema(keystoresFile, method)
				if err != nil {
					t.Fatal(err)
				}
				if err := rs.ValidateJSON(ex.RequestBody); err != nil {
					t.Errorf("#%d %s request does not follow the spec: %v", i, ex.Method, err)
				}
			}
		}
		rs, err := spec.ResponseSchema(keystoresFile, method, ex.Status)
		if err != nil {
			t.Errorf("#%d %s: status %d is not in the spec: %v", i, ex.Method, ex.Status, err)
			continue
		}
		if err := rs.ValidateJSON(ex.ResponseBody); err != nil {
			t.Errorf("#%d %s %d reply does not follow the spec: %v\n%s", i, ex.Method, ex.Status, err, ex.ResponseBody)
		}
	}
	for _, want := range []string{"get OK", "delete OK", "post OK", "post Bad Request", "get Forbidden", "delete Forbidden",
		"get Internal Server Error", "delete Internal Server Error", "post Internal Server Error", "get Unauthorized"} {
		if !seen[want] {
			t.Errorf("scenario did not exercise %s", want)
		}
	}
}

// TestValidatorCatchesDeviations makes sure the spec check is not vacuous.
func TestValidatorCatchesDeviations(t *testing.T) {
	spec := loadSpec(t)
	del, err := spec.ResponseSchema(keystoresFile, "delete", 200)
	if err != nil {
		t.Fatal(err)
	}
	delReq, _ := spec.RequestSchema(keystoresFile, "delete")
	imp, _ := spec.ResponseSchema(keystoresFile, "post", 200)
	impReq, _ := spec.RequestSchema(keystoresFile, "post")
	list, _ := spec.ResponseSchema(keystoresFile, "get", 200)
	e401, _ := spec.ResponseSchema(keystoresFile, "get", 401)
	for _, tc := range []struct {
		name string
		sc   oapitest.Schema
		body string
		ok   bool
	}{
		{"delete ok", del, `{"data":[{"status":"deleted"},{"status":"error","message":"x"}],"slashing_protection":"{}"}`, true},
		{"delete unknown status", del, `{"data":[{"status":"paused"}],"slashing_protection":"{}"}`, false},
		{"delete no protection", del, `{"data":[{"status":"deleted"}]}`, false},
		{"delete protection as object", del, `{"data":[],"slashing_protection":{}}`, false},
		{"delete request pubkey pattern", delReq, `{"pubkeys":["0x12"]}`, false},
		{"delete request ok", delReq, `{"pubkeys":["` + pk(1) + `"]}`, true},
		{"delete request missing pubkeys", delReq, `{}`, false},
		{"import status enum", imp, `{"data":[{"status":"maybe"}]}`, false},
		{"import request needs passwords", impReq, `{"keystores":["{}"]}`, false},
		{"import request protection string", impReq, `{"keystores":["{}"],"passwords":["p"],"slashing_protection":{}}`, false},
		{"list needs validating_pubkey", list, `{"data":[{"readonly":true}]}`, false},
		{"list readonly boolean", list, `{"data":[{"validating_pubkey":"` + pk(1) + `","readonly":"yes"}]}`, false},
		{"401 needs message", e401, `{}`, false},
		{"401 ok", e401, `{"message":"no token"}`, true},
	} {
		err := tc.sc.ValidateJSON([]byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err=%v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
