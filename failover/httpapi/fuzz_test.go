package httpapi_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/alertmanager"
	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/httpapi"
)

// countingObserver accepts everything without a store.
type countingObserver struct{}

func (countingObserver) Observe(_ context.Context, obs []failover.Observation, hbs []failover.Heartbeat) (failover.ObserveResult, error) {
	return failover.ObserveResult{New: len(obs), Heartbeats: len(hbs)}, nil
}

// FuzzWebhook: whatever the body, the webhook answers 200, 400 or 413 (never
// a 5xx that would make Alertmanager retry a body that can never succeed,
// and never a panic), always with a JSON body; and a 200 accounts for every
// alert of the delivery.
func FuzzWebhook(f *testing.F) {
	for _, name := range []string{"validator-down-firing.json", "validator-down-resolved.json", "watchdog-firing.json"} {
		f.Add(sample(f, name))
	}
	f.Add([]byte(`{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"X"}}]}`))
	f.Add([]byte(`{"version":"4","truncatedAlerts":18446744073709551615}`))
	f.Add([]byte(`{"version":"3"}`))
	f.Add([]byte(`null`))
	f.Add([]byte{})

	cfg := testConfig()
	mapper, err := alertmanager.NewMapper(cfg)
	if err != nil {
		f.Fatal(err)
	}
	st := &memoryStore{}
	h, err := httpapi.NewHandler(httpapi.Options{
		Observer: countingObserver{}, TearDowner: nopTearDowner{}, Store: st, Mapper: mapper,
		WebhookToken: webhookToken, APIToken: apiToken, MaxBodyBytes: 4 << 10, Now: fixedNow,
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, webhookPath, bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+webhookToken)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			var wr httpapi.WebhookReply
			if err := json.Unmarshal(rec.Body.Bytes(), &wr); err != nil {
				t.Fatalf("200 body %q: %v", rec.Body, err)
			}
			msg, err := alertmanager.Decode(body)
			if err != nil {
				t.Fatalf("200 for a body Decode refuses: %v", err)
			}
			ignored := 0
			for _, n := range wr.Ignored {
				ignored += n
			}
			if msg.TruncatedAlerts == 0 && wr.New+wr.Heartbeats+ignored > len(msg.Alerts) {
				t.Fatalf("reply %+v accounts for more than the %d alerts", wr, len(msg.Alerts))
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			var e httpapi.ErrorReply
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%d body %q: %v", rec.Code, rec.Body, err)
			}
		default:
			t.Fatalf("answered %d %s", rec.Code, rec.Body)
		}
	})
}

type nopTearDowner struct{}

func (nopTearDowner) Teardown(context.Context, string, string) (failover.Incident, error) {
	return failover.Incident{}, failover.ErrNotFound
}

// memoryStore is a Store that is never reached by the webhook.
type memoryStore struct{ failover.Store }

const (
	fuzzIncident = "eth-mainnet-1-1"
	fuzzStandby  = "fo-eth-mainnet-1-1"
	gateToken    = "gate-secret"
)

var (
	fuzzPK1  = "0x" + strings.Repeat("a1", 48)
	fuzzCert = strings.Repeat("5e", 32)
	plainID  = regexp.MustCompile(`^[a-z0-9-]+$`)
)

// checkingMigrator is the engine's side of the approval API, reduced to
// what the HTTP layer hands it: it records every call and verifies
// approvals with the real verifier (one approver, fresh nonces per input).
type checkingMigrator struct {
	verifier *approval.Verifier

	mu       sync.Mutex
	plans    []string
	approves []failover.ApprovalRequest
	owners   []string
	lists    int
}

func (m *checkingMigrator) calls() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.plans) + len(m.approves) + len(m.owners) + m.lists
}

func (m *checkingMigrator) Plan(_ context.Context, id string) (failover.Plan, error) {
	m.mu.Lock()
	m.plans = append(m.plans, id)
	m.mu.Unlock()
	switch id {
	case fuzzIncident:
		return failover.Plan{Incident: id, Validator: "eth-mainnet-1", Action: approval.ActionMigrate, State: failover.StateReady,
			Standby: fuzzStandby, StandbyCertSHA256: fuzzCert, Threshold: 1, Principals: []string{"alice@example"}}, nil
	case "eth-mainnet-2-1":
		return failover.Plan{}, &failover.RefusedError{Code: failover.RefuseConfig, Message: "no approvers are configured"}
	}
	return failover.Plan{}, failover.ErrNotFound
}

func (m *checkingMigrator) Approve(_ context.Context, req failover.ApprovalRequest) (failover.ApprovalReply, error) {
	m.mu.Lock()
	m.approves = append(m.approves, req)
	m.mu.Unlock()
	if req.Incident != fuzzIncident {
		return failover.ApprovalReply{}, failover.ErrNotFound
	}
	sigs := make([][]byte, len(req.Signatures))
	for i, s := range req.Signatures {
		sigs[i] = []byte(s)
	}
	if _, err := m.verifier.VerifyCanonical([]byte(req.Approval), sigs, approval.Want{Incident: fuzzIncident, Standby: fuzzStandby,
		StandbyCertSHA256: fuzzCert, Pubkeys: []string{fuzzPK1}, Action: approval.ActionMigrate}); err != nil {
		return failover.ApprovalReply{}, err
	}
	return failover.ApprovalReply{Incident: failover.Incident{ID: fuzzIncident, State: failover.StateMigrating}}, nil
}

func (m *checkingMigrator) Owner(_ context.Context, v string) (failover.Ownership, error) {
	m.mu.Lock()
	m.owners = append(m.owners, v)
	m.mu.Unlock()
	if v != "eth-mainnet-1" {
		return failover.Ownership{}, failover.ErrNotFound
	}
	return failover.Ownership{Owner: failover.OwnerHome, Generation: 2}, nil
}

func (m *checkingMigrator) Owners(context.Context) ([]failover.ValidatorOwner, error) {
	m.mu.Lock()
	m.lists++
	m.mu.Unlock()
	return []failover.ValidatorOwner{{Validator: "eth-mainnet-1"}}, nil
}

// The routes FuzzMigrationAPI drives; %s is the path-escaped id.
var migrationRoutes = []struct{ method, path string }{
	{http.MethodPost, "/v1/incidents/%s/approvals"},
	{http.MethodGet, "/v1/incidents/%s/plan"},
	{http.MethodGet, "/v1/owners/%s"},
	{http.MethodGet, "/v1/owners"},
	{http.MethodPut, "/v1/incidents/%s/approvals"},
}

// FuzzMigrationAPI sends arbitrary ids, bodies and Authorization headers
// to the approval, plan and owner routes of the real handler. Whatever
// arrives: no panic (the recoverer's 500 counts as one), no 5xx (the
// migrator here never fails for want of a store), a JSON answer; nothing
// reaches the migrator without the API token, and the gate token reaches
// only one validator's owner; an approval reaches it only as a decoded
// submission for the incident in the path, with the submitter's address
// taken from the connection, never from the body; and a 200 to an approval
// only for the genuine signed one.
func FuzzMigrationAPI(f *testing.F) {
	seed := sha256.Sum256([]byte("httpapi fuzz alice"))
	alice, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(seed[:]))
	if err != nil {
		f.Fatal(err)
	}
	signers, err := approval.ParseAllowedSigners([]string{"alice@example " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(alice.PublicKey())))})
	if err != nil {
		f.Fatal(err)
	}
	a := approval.Approval{Incident: fuzzIncident, Standby: fuzzStandby, StandbyCertSHA256: fuzzCert, Pubkeys: []string{fuzzPK1},
		Action: approval.ActionMigrate, Issued: now, Expires: now.Add(15 * time.Minute), Nonce: "httpapi-fuzz-nonce-1", Approver: "alice@example"}
	text, err := a.Canonical()
	if err != nil {
		f.Fatal(err)
	}
	sig, err := approval.Sign(a, alice)
	if err != nil {
		f.Fatal(err)
	}
	genuine, _ := json.Marshal(failover.ApprovalRequest{Incident: fuzzIncident, Approval: string(text), Signatures: []string{string(sig)},
		Fencing: failover.Fencing{Method: failover.FenceKeymanager, KeyStatuses: map[string]string{fuzzPK1: "deleted"}}})

	cfg := testConfig()
	mapper, err := alertmanager.NewMapper(cfg)
	if err != nil {
		f.Fatal(err)
	}
	for _, auth := range []uint8{0, 1, 3} {
		f.Add(uint8(0), fuzzIncident, auth, "", genuine)
		f.Add(uint8(1), fuzzIncident, auth, "", []byte{})
		f.Add(uint8(2), "eth-mainnet-1", auth, "", []byte{})
		f.Add(uint8(3), "", auth, "", []byte{})
	}
	f.Add(uint8(0), "eth-mainnet-1-2", uint8(0), "", genuine)
	f.Add(uint8(0), fuzzIncident, uint8(0), "", bytes.Replace(genuine, []byte(`"incident"`), []byte(`"From":"10.0.0.1:1","incident"`), 1))
	f.Add(uint8(0), fuzzIncident, uint8(0), "", bytes.Replace(genuine, []byte(`action migrate`), []byte(`action failback`), 1))
	f.Add(uint8(0), fuzzIncident, uint8(0), "", []byte(`{"incident":"eth-mainnet-1-1","approval":"failoverd-approval/v1\n","signatures":null}`))
	f.Add(uint8(0), "eth mainnet/1", uint8(0), "", []byte(`{"incident":"eth mainnet/1"}`))
	f.Add(uint8(1), "eth-mainnet-2-1", uint8(0), "", []byte{})
	f.Add(uint8(2), "..", uint8(2), "Bearer  "+apiToken+" ", []byte{})
	f.Add(uint8(4), fuzzIncident, uint8(0), "", genuine)
	f.Fuzz(func(t *testing.T, route uint8, id string, auth uint8, header string, body []byte) {
		rt := migrationRoutes[int(route)%len(migrationRoutes)]
		path := rt.path
		if strings.Contains(path, "%s") {
			path = strings.Replace(path, "%s", url.PathEscape(id), 1)
		}
		if _, err := url.ParseRequestURI(path); err != nil {
			return
		}
		m := &checkingMigrator{verifier: &approval.Verifier{Signers: signers, Threshold: 1, Now: fixedNow, Used: &approval.MemoryNonces{}}}
		h, err := httpapi.NewHandler(httpapi.Options{Observer: countingObserver{}, TearDowner: nopTearDowner{}, Store: &memoryStore{},
			Mapper: mapper, Migrator: m, WebhookToken: webhookToken, APIToken: apiToken, GateToken: gateToken, Now: fixedNow})
		if err != nil {
			t.Fatal(err)
		}
		req := httptest.NewRequest(rt.method, path, bytes.NewReader(body))
		req.RemoteAddr = "192.0.2.7:4242"
		switch auth % 4 {
		case 0:
			req.Header.Set("Authorization", "Bearer "+apiToken)
		case 1:
			req.Header.Set("Authorization", "Bearer "+gateToken)
		case 2:
			req.Header["Authorization"] = []string{header}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)

		if rec.Code >= 500 {
			t.Fatalf("%s %s answered %d: %s", rt.method, path, rec.Code, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
			t.Fatalf("%s %s answered %d with Content-Type %q", rt.method, path, rec.Code, ct)
		}
		var obj map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &obj); err != nil {
			t.Fatalf("%s %s answered %d with no JSON object: %v", rt.method, path, rec.Code, err)
		}
		value := req.Header.Get("Authorization")
		bearer, isBearer := strings.CutPrefix(value, "Bearer ")
		bearer = strings.TrimSpace(bearer)
		apiOK := isBearer && bearer == apiToken
		gateOK := isBearer && bearer == gateToken
		if !apiOK && m.calls() > 0 {
			owner := len(m.owners) == 1 && m.calls() == 1 && strings.HasPrefix(path, "/v1/owners/")
			if !gateOK || !owner {
				t.Fatalf("%s %s reached the migrator with Authorization %q", rt.method, path, value)
			}
		}
		if !apiOK && !gateOK && rec.Code != http.StatusUnauthorized && rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
			t.Fatalf("%s %s without a token answered %d", rt.method, path, rec.Code)
		}
		for _, p := range m.plans {
			if plainID.MatchString(id) && p != id {
				t.Fatalf("plan asked for %q, the path named %q", p, id)
			}
		}
		for _, o := range m.owners {
			if plainID.MatchString(id) && o != id {
				t.Fatalf("owner asked for %q, the path named %q", o, id)
			}
		}
		for _, ar := range m.approves {
			var sent failover.ApprovalRequest
			if err := json.Unmarshal(body, &sent); err != nil {
				t.Fatalf("an approval that does not decode reached the migrator: %v", err)
			}
			if ar.From != req.RemoteAddr {
				t.Fatalf("the submitter's address is %q, the connection's %q", ar.From, req.RemoteAddr)
			}
			if plainID.MatchString(id) && ar.Incident != id {
				t.Fatalf("an approval for %q reached the migrator through %s", ar.Incident, path)
			}
		}
		if rt.path == "/v1/incidents/%s/approvals" && rt.method == http.MethodPost && rec.Code == http.StatusOK {
			var sent failover.ApprovalRequest
			_ = json.Unmarshal(body, &sent)
			if sent.Approval != string(text) {
				t.Fatalf("an approval other than the genuine one was accepted: %q", sent.Approval)
			}
		}
	})
}
