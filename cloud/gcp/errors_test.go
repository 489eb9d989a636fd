package gcp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"cloud.google.com/go/compute/apiv1/computepb"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"
	"google.golang.org/protobuf/proto"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/cloudtest"
)

// gerr builds the error the REST clients return: a *googleapi.Error wrapped
// by gax in an *apierror.APIError.
func gerr(code int, reason string) error {
	ge := &googleapi.Error{Code: code, Message: reason, Errors: []googleapi.ErrorItem{{Reason: reason, Message: reason}}}
	if ae, ok := apierror.FromError(ge); ok {
		return ae
	}
	return ge
}

func doneOp(code string, status int32) *computepb.Operation {
	return &computepb.Operation{
		Name:                proto.String("operation-1"),
		Status:              computepb.Operation_DONE.Enum(),
		Error:               &computepb.Error{Errors: []*computepb.Errors{{Code: proto.String(code), Message: proto.String("msg for " + code)}}},
		HttpErrorStatusCode: proto.Int32(status),
	}
}

func TestClassify(t *testing.T) {
	cases := []struct {
		name string
		err  error
		kind error
	}{
		{"404", gerr(404, "notFound"), cloud.ErrNotFound},
		{"409 alreadyExists (unexpected here)", gerr(409, "alreadyExists"), cloud.ErrPermanent},
		{"403 quotaExceeded", gerr(403, "quotaExceeded"), cloud.ErrQuota},
		{"403 rateLimitExceeded", gerr(403, "rateLimitExceeded"), cloud.ErrTransient},
		{"403 userRateLimitExceeded", gerr(403, "userRateLimitExceeded"), cloud.ErrTransient},
		{"403 forbidden", gerr(403, "forbidden"), cloud.ErrPermanent},
		{"401", gerr(401, "authError"), cloud.ErrPermanent},
		{"400 invalid", gerr(400, "invalid"), cloud.ErrPermanent},
		{"400 resourceNotReady", gerr(400, "resourceNotReady"), cloud.ErrTransient},
		{"429", gerr(429, "rateLimitExceeded"), cloud.ErrTransient},
		{"500", gerr(500, "backendError"), cloud.ErrTransient},
		{"503 no reason", &googleapi.Error{Code: 503}, cloud.ErrTransient},
		{"bare googleapi 404", &googleapi.Error{Code: 404}, cloud.ErrNotFound},
		{"network", io.ErrUnexpectedEOF, cloud.ErrTransient},
		{"deadline", fmt.Errorf("wait: %w", context.DeadlineExceeded), cloud.ErrTransient},
		{"op ZONE_RESOURCE_POOL_EXHAUSTED", operationError(doneOp("ZONE_RESOURCE_POOL_EXHAUSTED", 503)), cloud.ErrCapacity},
		{"op ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", operationError(doneOp("ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", 503)), cloud.ErrCapacity},
		{"op stockout", operationError(doneOp("RESOURCE_POOL_STOCKOUT", 503)), cloud.ErrCapacity},
		{"op QUOTA_EXCEEDED", operationError(doneOp("QUOTA_EXCEEDED", 403)), cloud.ErrQuota},
		{"op RESOURCE_NOT_FOUND", operationError(doneOp("RESOURCE_NOT_FOUND", 404)), cloud.ErrNotFound},
		{"op INTERNAL_ERROR", operationError(doneOp("INTERNAL_ERROR", 500)), cloud.ErrTransient},
		{"op unknown 400", operationError(doneOp("INVALID_FIELD_VALUE", 400)), cloud.ErrPermanent},
		{"op unknown 503", operationError(doneOp("SOMETHING_NEW", 503)), cloud.ErrTransient},
		{"op wrapped", fmt.Errorf("insert: %w", operationError(doneOp("QUOTA_EXCEEDED", 403))), cloud.ErrQuota},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := classify(context.Background(), "ensure", "z", tc.err)
			if !errors.Is(err, tc.kind) {
				t.Fatalf("classify(%v) = %v, want %v", tc.err, err, tc.kind)
			}
			var ce *cloud.Error
			if !errors.As(err, &ce) || ce.Zone != "z" || !errors.Is(err, tc.err) {
				t.Errorf("classify(%v) = %#v: want a *cloud.Error with the zone and the cause", tc.err, err)
			}
		})
	}
	t.Run("cancelled caller", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err := classify(ctx, "ensure", "z", gerr(503, "backendError"))
		if !errors.Is(err, context.Canceled) {
			t.Errorf("classify with a cancelled ctx = %v, want context.Canceled", err)
		}
	})
	t.Run("alreadyExists", func(t *testing.T) {
		if !isAlreadyExists(gerr(409, "alreadyExists")) || !isAlreadyExists(operationError(doneOp("RESOURCE_ALREADY_EXISTS", 409))) {
			t.Error("isAlreadyExists misses GCP's shapes")
		}
		if isAlreadyExists(gerr(400, "invalid")) {
			t.Error("isAlreadyExists(400)")
		}
	})
}

// stubAPI answers only what a test sets; any other call panics, so a test
// notices a call it did not expect.
type stubAPI struct {
	computeAPI
	list     func() ([]*computepb.Instance, error)
	insert   func(req *computepb.InsertInstanceRequest) (*computepb.Operation, error)
	wait     func(req *computepb.WaitZoneOperationRequest) (*computepb.Operation, error)
	get      func(req *computepb.GetInstanceRequest) (*computepb.Instance, error)
	fwInsert func(req *computepb.InsertFirewallRequest) (*computepb.Operation, error)
	inserts  []string
}

func (s *stubAPI) AggregatedListInstances(context.Context, *computepb.AggregatedListInstancesRequest) ([]*computepb.Instance, error) {
	return s.list()
}
func (s *stubAPI) InsertInstance(_ context.Context, req *computepb.InsertInstanceRequest) (*computepb.Operation, error) {
	s.inserts = append(s.inserts, req.GetRequestId())
	return s.insert(req)
}
func (s *stubAPI) WaitZoneOperation(_ context.Context, req *computepb.WaitZoneOperationRequest) (*computepb.Operation, error) {
	return s.wait(req)
}
func (s *stubAPI) GetInstance(_ context.Context, req *computepb.GetInstanceRequest) (*computepb.Instance, error) {
	return s.get(req)
}
func (s *stubAPI) InsertFirewall(_ context.Context, req *computepb.InsertFirewallRequest) (*computepb.Operation, error) {
	return s.fwInsert(req)
}
func (s *stubAPI) GetFirewall(_ context.Context, req *computepb.GetFirewallRequest) (*computepb.Firewall, error) {
	return &computepb.Firewall{Name: proto.String(req.GetFirewall()), Description: proto.String(firewallOwnerPrefix + " failoverd-standby=x")}, nil
}

func TestEnsureWithStub(t *testing.T) {
	spec := cloudtest.Spec("inc-stub-1", "us-east1-b")
	running := &computepb.Operation{Name: proto.String("op-1"), Status: computepb.Operation_RUNNING.Enum()}
	firewallOK := func(*computepb.InsertFirewallRequest) (*computepb.Operation, error) {
		return &computepb.Operation{Name: proto.String("op-fw"), Status: computepb.Operation_DONE.Enum()}, nil
	}
	none := func() ([]*computepb.Instance, error) { return nil, nil }
	cases := []struct {
		name    string
		insert  func(*computepb.InsertInstanceRequest) (*computepb.Operation, error)
		wait    func(*computepb.WaitZoneOperationRequest) (*computepb.Operation, error)
		kind    error
		inserts int
	}{
		{"stockout in operation",
			func(*computepb.InsertInstanceRequest) (*computepb.Operation, error) { return running, nil },
			func(*computepb.WaitZoneOperationRequest) (*computepb.Operation, error) {
				return doneOp("ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", 503), nil
			}, cloud.ErrCapacity, 1},
		{"quota on insert",
			func(*computepb.InsertInstanceRequest) (*computepb.Operation, error) {
				return nil, gerr(403, "quotaExceeded")
			},
			nil, cloud.ErrQuota, 1},
		{"insert 404 is permanent (missing image, network)",
			func(*computepb.InsertInstanceRequest) (*computepb.Operation, error) {
				return nil, gerr(404, "notFound")
			},
			nil, cloud.ErrPermanent, 1},
		{"wait 503",
			func(*computepb.InsertInstanceRequest) (*computepb.Operation, error) { return running, nil },
			func(*computepb.WaitZoneOperationRequest) (*computepb.Operation, error) {
				return nil, gerr(503, "backendError")
			},
			cloud.ErrTransient, 1},
		{"replayed failures move through every generation, then give up",
			func(*computepb.InsertInstanceRequest) (*computepb.Operation, error) {
				return doneOp("ZONE_RESOURCE_POOL_EXHAUSTED", 503), nil
			}, nil, cloud.ErrCapacity, maxGenerations},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			api := &stubAPI{list: none, insert: tc.insert, wait: tc.wait, fwInsert: firewallOK}
			p := newProvider(api, Options{Project: "p", OperationTimeout: time.Second})
			_, err := p.Ensure(context.Background(), spec)
			wantKind(t, err, tc.kind, spec.Zone)
			if len(api.inserts) != tc.inserts {
				t.Errorf("%d inserts, want %d", len(api.inserts), tc.inserts)
			}
			seen := map[string]bool{}
			for _, id := range api.inserts {
				if seen[id] {
					t.Errorf("request ID %s reused across generations", id)
				}
				seen[id] = true
			}
		})
	}
	t.Run("409 on insert returns the existing owned instance", func(t *testing.T) {
		api := &stubAPI{list: none, fwInsert: firewallOK,
			insert: func(*computepb.InsertInstanceRequest) (*computepb.Operation, error) {
				return nil, gerr(409, "alreadyExists")
			},
			get: func(req *computepb.GetInstanceRequest) (*computepb.Instance, error) {
				return &computepb.Instance{Name: proto.String(req.GetInstance()), Zone: proto.String("zones/" + req.GetZone()), Status: proto.String("RUNNING"),
					Labels: cloud.OwnershipLabels(spec), CreationTimestamp: proto.String("2026-01-02T03:04:05.000-07:00")}, nil
			}}
		p := newProvider(api, Options{Project: "p"})
		s, err := p.Ensure(context.Background(), spec)
		if err != nil || s.Zone != spec.Zone || s.State != cloud.StateRunning || s.CreatedAt.IsZero() {
			t.Fatalf("Ensure = (%+v, %v)", s, err)
		}
	})
	t.Run("409 on insert of an unowned instance is permanent", func(t *testing.T) {
		api := &stubAPI{list: none, fwInsert: firewallOK,
			insert: func(*computepb.InsertInstanceRequest) (*computepb.Operation, error) {
				return nil, gerr(http.StatusConflict, "alreadyExists")
			},
			get: func(req *computepb.GetInstanceRequest) (*computepb.Instance, error) {
				return &computepb.Instance{Name: proto.String(req.GetInstance()), Labels: map[string]string{"team": "ops"}}, nil
			}}
		p := newProvider(api, Options{Project: "p"})
		_, err := p.Ensure(context.Background(), spec)
		wantKind(t, err, cloud.ErrPermanent, spec.Zone)
	})
}

func TestRequestIDDeterministic(t *testing.T) {
	a := requestID("inc-1", "insert-instance", "us-central1-a")
	if a != requestID("inc-1", "insert-instance", "us-central1-a") {
		t.Fatal("not deterministic")
	}
	for _, b := range []string{
		requestID("inc-2", "insert-instance", "us-central1-a"),
		requestID("inc-1", "insert-firewall", "us-central1-a"),
		requestID("inc-1", "insert-instance", "us-central1-b"),
		requestID("inc-1", generationStep("insert-instance", 1), "us-central1-a"),
	} {
		if a == b {
			t.Errorf("request IDs collide: %s", a)
		}
	}
}
