package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/alertmanager"
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
