package httpapi_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/httpapi"
)

// owners answers the gate; everything else in the Migrator refuses to be
// called, so a route the gate token should not reach shows up as a panic.
type owners struct{}

func (owners) Plan(context.Context, string) (failover.Plan, error) { panic("plan called") }
func (owners) Approve(context.Context, failover.ApprovalRequest) (failover.ApprovalReply, error) {
	panic("approve called")
}
func (owners) Owner(_ context.Context, v string) (failover.Ownership, error) {
	return failover.Ownership{Owner: "fo-" + v, Generation: 3}, nil
}
func (owners) Owners(context.Context) ([]failover.ValidatorOwner, error) { return nil, nil }

// The gate token reads one validator's owner and nothing else; an unset
// gate token never lets an empty bearer in.
func TestGateToken(t *testing.T) {
	const gateToken = "gate-secret"
	newSrv := func(t *testing.T, gate string) *httptest.Server {
		e := newEnv(t, func(o *httpapi.Options) { o.GateToken, o.Migrator = gate, owners{} })
		srv := httptest.NewServer(e.h)
		t.Cleanup(srv.Close)
		return srv
	}
	do := func(t *testing.T, srv *httptest.Server, method, path, token string) int {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if token != "-" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	srv := newSrv(t, gateToken)
	for _, c := range []struct {
		method, path, token string
		want                int
	}{
		{"GET", "/v1/owners/eth-mainnet-1", gateToken, 200},
		{"GET", "/v1/owners/eth-mainnet-1", apiToken, 200},
		{"GET", "/v1/owners/eth-mainnet-1", "wrong", 401},
		{"GET", "/v1/owners/eth-mainnet-1", "-", 401},
		{"GET", "/v1/owners", gateToken, 401},
		{"GET", "/v1/incidents", gateToken, 401},
		{"GET", "/v1/incidents/eth-mainnet-1-1/plan", gateToken, 401},
		{"POST", "/v1/incidents/eth-mainnet-1-1/approvals", gateToken, 401},
		{"POST", "/v1/incidents/eth-mainnet-1-1/teardown", gateToken, 401},
		{"POST", webhookPath, gateToken, 401},
	} {
		if got := do(t, srv, c.method, c.path, c.token); got != c.want {
			t.Errorf("%s %s with %q: %d, want %d", c.method, c.path, c.token, got, c.want)
		}
	}
	unset := newSrv(t, "")
	for _, tok := range []string{"", "-"} {
		if got := do(t, unset, "GET", "/v1/owners/eth-mainnet-1", tok); got != 401 {
			t.Errorf("no gate token configured, bearer %q: %d, want 401", tok, got)
		}
	}
	if got := do(t, unset, "GET", "/v1/owners/eth-mainnet-1", apiToken); got != 200 {
		t.Errorf("API token on the owner route: %d", got)
	}
}
