package gcp

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/api/option"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/cloudtest"
	"github.com/failoverd/failoverd/cloud/gcp/gcpfake"
)

const (
	testProject = "failoverd-test"
	zoneA       = "us-central1-a"
	zoneB       = "us-central1-b"
)

// start returns a provider built with New — the real SDK REST clients —
// talking to a fresh gcpfake.
func start(t *testing.T, mod func(*Options)) (*Provider, *gcpfake.Server) {
	t.Helper()
	srv := gcpfake.New()
	t.Cleanup(srv.Close)
	o := Options{
		Project:          testProject,
		Endpoint:         srv.URL(),
		ClientOptions:    []option.ClientOption{option.WithoutAuthentication()},
		OperationTimeout: 10 * time.Second,
		APISourceRanges:  []string{"203.0.113.0/24"},
		DiskGB:           100,
	}
	if mod != nil {
		mod(&o)
	}
	p, err := New(t.Context(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p, srv
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestConformance(t *testing.T) {
	var mu sync.Mutex
	fakes := map[cloud.Provider]*gcpfake.Server{}
	cloudtest.Run(t, cloudtest.Harness{
		New: func(t *testing.T) cloud.Provider {
			p, srv := start(t, nil)
			mu.Lock()
			fakes[p] = srv
			mu.Unlock()
			return p
		},
		Zones: []string{zoneA, zoneB},
		AddUnowned: func(t *testing.T, p cloud.Provider, name, zone string) {
			mu.Lock()
			srv := fakes[p]
			mu.Unlock()
			srv.AddUnownedInstance(zone, name)
		},
	})
}

func TestConformanceSlowOperations(t *testing.T) {
	var mu sync.Mutex
	fakes := map[cloud.Provider]*gcpfake.Server{}
	cloudtest.Run(t, cloudtest.Harness{
		New: func(t *testing.T) cloud.Provider {
			p, srv := start(t, nil)
			srv.SetOperationDelay(150 * time.Millisecond)
			mu.Lock()
			fakes[p] = srv
			mu.Unlock()
			return p
		},
		Zones: []string{zoneA, zoneB},
		AddUnowned: func(t *testing.T, p cloud.Provider, name, zone string) {
			mu.Lock()
			srv := fakes[p]
			mu.Unlock()
			srv.AddUnownedInstance(zone, name)
		},
	})
}

func wantKind(t *testing.T, err, kind error, zone string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error = %v, want %v", err, kind)
	}
	var ce *cloud.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v is not a *cloud.Error", err)
	}
	if ce.Kind != kind || ce.Provider != ProviderName {
		t.Errorf("cloud.Error = %+v, want Kind %v Provider %s", ce, kind, ProviderName)
	}
	if zone != "" && ce.Zone != zone {
		t.Errorf("cloud.Error.Zone = %q, want %q", ce.Zone, zone)
	}
}

func TestErrorMappingThroughSDK(t *testing.T) {
	instPath := "/zones/" + zoneA + "/instances"
	cases := []struct {
		name   string
		inject func(*gcpfake.Server)
		kind   error
	}{
		{"zone exhausted", func(s *gcpfake.Server) { s.ExhaustZone(zoneA) }, cloud.ErrCapacity},
		{"operation quota", func(s *gcpfake.Server) {
			s.FailOperation(instPath, "QUOTA_EXCEEDED", "Quota 'CPUS' exceeded.  Limit: 8.0 in region us-central1.", 403, 1)
		}, cloud.ErrQuota},
		{"403 quotaExceeded", func(s *gcpfake.Server) { s.FailNext("POST", instPath, 403, "quotaExceeded", 1) }, cloud.ErrQuota},
		{"403 rateLimitExceeded", func(s *gcpfake.Server) { s.FailNext("POST", instPath, 403, "rateLimitExceeded", 1) }, cloud.ErrTransient},
		{"429", func(s *gcpfake.Server) { s.FailNext("POST", instPath, 429, "rateLimitExceeded", 1) }, cloud.ErrTransient},
		{"503", func(s *gcpfake.Server) { s.FailNext("POST", instPath, 503, "backendError", 1) }, cloud.ErrTransient},
		{"400", func(s *gcpfake.Server) { s.FailNext("POST", instPath, 400, "invalid", 1) }, cloud.ErrPermanent},
		{"403 permission", func(s *gcpfake.Server) { s.FailNext("POST", instPath, 403, "forbidden", 1) }, cloud.ErrPermanent},
		{"firewall 403 permission", func(s *gcpfake.Server) { s.FailNext("POST", "/global/firewalls", 403, "forbidden", 1) }, cloud.ErrPermanent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, srv := start(t, nil)
			tc.inject(srv)
			spec := cloudtest.Spec("inc-err-1", zoneA)
			_, err := p.Ensure(ctxT(t), spec)
			wantKind(t, err, tc.kind, zoneA)
			if cloud.Retryable(err) == errors.Is(tc.kind, cloud.ErrPermanent) {
				t.Errorf("Retryable(%v) = %v", err, cloud.Retryable(err))
			}
			if n := srv.Instances(); n != 0 {
				t.Errorf("%d instances after a failed Ensure, want 0", n)
			}
		})
	}
}

// A zone that was exhausted recovers: the replayed failed operation (same
// requestId) must not pin the failure.
func TestCapacityThenRecovery(t *testing.T) {
	p, srv := start(t, nil)
	srv.ExhaustZone(zoneA)
	spec := cloudtest.Spec("inc-recover-1", zoneA)
	_, err := p.Ensure(ctxT(t), spec)
	wantKind(t, err, cloud.ErrCapacity, zoneA)
	var oe *OperationError
	if !errors.As(err, &oe) || !slices.Contains(oe.Codes, "ZONE_RESOURCE_POOL_EXHAUSTED") {
		t.Errorf("error %v does not carry the operation's code", err)
	}
	// The engine's fallback: the next zone.
	spec.Zone = zoneB
	s, err := p.Ensure(ctxT(t), spec)
	if err != nil || s.Zone != zoneB {
		t.Fatalf("Ensure in %s = (%+v, %v)", zoneB, s, err)
	}
	if err := p.Delete(ctxT(t), spec.Name); err != nil {
		t.Fatal(err)
	}
	// Later, back to the first zone, which has capacity again.
	srv.RestoreZone(zoneA)
	spec.Zone = zoneA
	s, err = p.Ensure(ctxT(t), spec)
	if err != nil || s.Zone != zoneA {
		t.Fatalf("Ensure after RestoreZone = (%+v, %v)", s, err)
	}
	if n := srv.Instances(); n != 1 {
		t.Errorf("Instances = %d, want 1", n)
	}
}

func TestRequestIDIdempotency(t *testing.T) {
	insertPrefix := "POST /compute/v1/projects/" + testProject + "/zones/" + zoneA + "/instances"

	t.Run("EnsureTwice", func(t *testing.T) {
		p, srv := start(t, nil)
		spec := cloudtest.Spec("inc-rid-1", zoneA)
		for range 2 {
			if _, err := p.Ensure(ctxT(t), spec); err != nil {
				t.Fatal(err)
			}
		}
		if srv.Created("instance") != 1 || srv.Created("disk") != 2 {
			t.Errorf("created %d instances, %d disks; want 1 and 2 (boot+data)", srv.Created("instance"), srv.Created("disk"))
		}
	})

	t.Run("LostInsertAnswer", func(t *testing.T) {
		p, srv := start(t, nil)
		var (
			mu   sync.Mutex
			rids []string
		)
		srv.Hook(func(r *http.Request) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/instances") {
				mu.Lock()
				rids = append(rids, r.URL.Query().Get("requestId"))
				mu.Unlock()
			}
		})
		// GCP takes the insert, the answer never arrives.
		srv.FailAfter("POST", "/zones/"+zoneA+"/instances", 503, "backendError", 1)
		spec := cloudtest.Spec("inc-lost-1", zoneA)
		_, err := p.Ensure(ctxT(t), spec)
		wantKind(t, err, cloud.ErrTransient, zoneA)
		if srv.Instances() != 1 {
			t.Fatalf("the insert should have taken effect; Instances = %d", srv.Instances())
		}
		// The retry finds the instance by name.
		s, err := p.Ensure(ctxT(t), spec)
		if err != nil || s.Name != spec.Name {
			t.Fatalf("retry Ensure = (%+v, %v)", s, err)
		}
		if srv.Created("instance") != 1 || srv.Created("disk") != 2 || srv.Instances() != 1 {
			t.Errorf("created %d instances, %d disks (now %d instances); want exactly 1 and 2",
				srv.Created("instance"), srv.Created("disk"), srv.Instances())
		}
		if n := srv.Requests(insertPrefix); n != 1 {
			t.Errorf("%d inserts, want 1 (the retry finds the instance first)", n)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(rids) != 1 || rids[0] != requestID(spec.IncidentID, "insert-instance", zoneA) {
			t.Errorf("requestIds = %v, want the deterministic one", rids)
		}
	})

	t.Run("InsertRepeatedBeforeItIsVisible", func(t *testing.T) {
		// A restarted failoverd resends the insert while GCP still works on
		// the first one: the same requestId gets the same operation.
		p, srv := start(t, nil)
		srv.SetOperationDelay(300 * time.Millisecond)
		spec := cloudtest.Spec("inc-restart-1", zoneA)
		ctx, cancel := context.WithCancel(ctxT(t))
		srv.Hook(func(r *http.Request) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/wait") && strings.Contains(r.URL.Path, "/zones/") {
				cancel() // failoverd dies while waiting for the insert
			}
		})
		_, err := p.Ensure(ctx, spec)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Ensure with the process 'killed' = %v, want context.Canceled", err)
		}
		srv.Hook(nil)
		// Directly resend the insert (as if the instance were not yet
		// listed): the fake must answer with the first operation.
		in, err := p.insertInstance(ctxT(t), spec, nil)
		if err != nil {
			t.Fatalf("resent insert: %v", err)
		}
		if in.GetName() != spec.Name || srv.Created("instance") != 1 || srv.Instances() != 1 {
			t.Errorf("after a resent insert: created %d, now %d instances; want 1", srv.Created("instance"), srv.Instances())
		}
		if n := srv.Requests(insertPrefix); n != 2 {
			t.Errorf("%d inserts sent, want 2", n)
		}
	})

	t.Run("DeleteThenEnsureAgain", func(t *testing.T) {
		// The insert requestId of the first incarnation is replayed after a
		// delete; the provider moves to the next generation of IDs.
		p, srv := start(t, nil)
		spec := cloudtest.Spec("inc-again-1", zoneA)
		first, err := p.Ensure(ctxT(t), spec)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Delete(ctxT(t), spec.Name); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // a new CreationTimestamp
		second, err := p.Ensure(ctxT(t), spec)
		if err != nil {
			t.Fatalf("Ensure after Delete: %v", err)
		}
		if srv.Created("instance") != 2 || srv.Instances() != 1 || second.CreatedAt.Equal(first.CreatedAt) {
			t.Errorf("created %d, now %d instances; want 2 and 1", srv.Created("instance"), srv.Instances())
		}
	})
}

func TestCancelledEnsureCreatesNothing(t *testing.T) {
	p, srv := start(t, nil)
	ctx, cancel := context.WithCancel(ctxT(t))
	cancel()
	_, err := p.Ensure(ctx, cloudtest.Spec("inc-cancel-1", zoneA))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if n := srv.Requests(""); n != 0 {
		t.Errorf("%d requests with a cancelled context, want 0", n)
	}
}

func TestFirewallRules(t *testing.T) {
	t.Run("WithAPIRanges", func(t *testing.T) {
		p, srv := start(t, nil)
		spec := cloudtest.Spec("inc-fw-1", zoneA)
		if _, err := p.Ensure(ctxT(t), spec); err != nil {
			t.Fatal(err)
		}
		p2pName, apiName := FirewallNames(spec.Name)
		p2p, api := srv.Firewall(p2pName), srv.Firewall(apiName)
		if p2p == nil || api == nil {
			t.Fatalf("rules %s=%v %s=%v", p2pName, p2p != nil, apiName, api != nil)
		}
		if !slices.Equal(p2p.GetSourceRanges(), []string{"0.0.0.0/0"}) {
			t.Errorf("p2p sourceRanges = %v", p2p.GetSourceRanges())
		}
		got := map[string][]string{}
		for _, a := range p2p.GetAllowed() {
			got[a.GetIPProtocol()] = a.GetPorts()
		}
		if !slices.Equal(got["tcp"], []string{"30303", "9000"}) || !slices.Equal(got["udp"], []string{"30303", "9000", "9001"}) || len(got) != 2 {
			t.Errorf("p2p allowed = %v", got)
		}
		if !slices.Equal(api.GetSourceRanges(), []string{"203.0.113.0/24"}) {
			t.Errorf("api sourceRanges = %v", api.GetSourceRanges())
		}
		if a := api.GetAllowed(); len(a) != 1 || a[0].GetIPProtocol() != "tcp" || !slices.Equal(a[0].GetPorts(), []string{"8545", "5052", "9100", "7443"}) {
			t.Errorf("api allowed = %v", a)
		}
		for _, f := range []string{p2pName, apiName} {
			fw := srv.Firewall(f)
			if !slices.Equal(fw.GetTargetTags(), []string{spec.Name}) || fw.GetDirection() != "INGRESS" {
				t.Errorf("%s targets %v direction %s", f, fw.GetTargetTags(), fw.GetDirection())
			}
			if !strings.HasPrefix(fw.GetDescription(), "managed-by=failoverd ") || !strings.Contains(fw.GetDescription(), "failoverd-incident=inc-fw-1") {
				t.Errorf("%s description %q lacks ownership", f, fw.GetDescription())
			}
		}
		in := srv.Instance(zoneA, spec.Name)
		if !slices.Contains(in.GetTags().GetItems(), spec.Name) {
			t.Errorf("instance tags = %v, want the rules' target tag", in.GetTags().GetItems())
		}
	})
	t.Run("NoAPIRanges", func(t *testing.T) {
		p, srv := start(t, func(o *Options) { o.APISourceRanges = nil })
		spec := cloudtest.Spec("inc-fw-2", zoneA)
		if _, err := p.Ensure(ctxT(t), spec); err != nil {
			t.Fatal(err)
		}
		p2pName, apiName := FirewallNames(spec.Name)
		if srv.Firewall(apiName) != nil {
			t.Error("an API rule exists without APISourceRanges")
		}
		if srv.Firewall(p2pName) == nil || srv.Firewalls() != 1 {
			t.Errorf("firewalls = %d, want the p2p rule only", srv.Firewalls())
		}
	})
	t.Run("WorldOpenAPIRefused", func(t *testing.T) {
		p, srv := start(t, func(o *Options) { o.APISourceRanges = []string{"0.0.0.0/0"} })
		_, err := p.Ensure(ctxT(t), cloudtest.Spec("inc-fw-3", zoneA))
		wantKind(t, err, cloud.ErrPermanent, "")
		if srv.Created("firewall") != 0 || srv.Created("instance") != 0 {
			t.Error("resources created despite a world-open API range")
		}
	})
	t.Run("LongNames", func(t *testing.T) {
		name := cloud.NameFor(strings.Repeat("x", 80))
		p2p, api := FirewallNames(name)
		if len(p2p) > 63 || len(api) > 63 || p2p == api || !strings.HasPrefix(p2p, FirewallP2PPrefix) {
			t.Errorf("FirewallNames(%q) = %q, %q", name, p2p, api)
		}
	})
}

func TestSpot(t *testing.T) {
	cases := []struct {
		name      string
		optSpot   bool
		specSpot  bool
		wantModel string
	}{
		{"on-demand", false, false, "STANDARD"},
		{"spec spot", false, true, "SPOT"},
		{"options spot", true, false, "SPOT"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, srv := start(t, func(o *Options) { o.Spot = tc.optSpot })
			spec := cloudtest.Spec("inc-spot-1", zoneA)
			spec.Placement.Spot = tc.specSpot
			if _, err := p.Ensure(ctxT(t), spec); err != nil {
				t.Fatal(err)
			}
			sc := srv.Instance(zoneA, spec.Name).GetScheduling()
			if sc.GetProvisioningModel() != tc.wantModel {
				t.Errorf("provisioningModel = %q, want %q", sc.GetProvisioningModel(), tc.wantModel)
			}
			if tc.wantModel == "SPOT" && (sc.GetInstanceTerminationAction() != "DELETE" || sc.GetAutomaticRestart()) {
				t.Errorf("spot scheduling = %v", sc)
			}
			if tc.wantModel == "STANDARD" && (sc.InstanceTerminationAction != nil || !sc.GetAutomaticRestart()) {
				t.Errorf("on-demand scheduling = %v", sc)
			}
		})
	}
}

func TestSnapshot(t *testing.T) {
	sel := map[string]string{"chain": "hoodi"}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	match := map[string]string{"chain": "hoodi", cloud.LabelValidator: "lighthouse-vc-0"}
	t.Run("NewestReadyMatching", func(t *testing.T) {
		p, srv := start(t, func(o *Options) { o.SnapshotLabels = sel })
		srv.AddSnapshot("snap-old", match, base)
		srv.AddSnapshot("snap-good", match, base.Add(24*time.Hour))
		srv.AddSnapshot("snap-creating", match, base.Add(48*time.Hour))
		srv.SetSnapshotStatus("snap-creating", "CREATING")
		srv.AddSnapshot("snap-other-validator", map[string]string{"chain": "hoodi", cloud.LabelValidator: "someone-else"}, base.Add(72*time.Hour))
		srv.AddSnapshot("snap-other-chain", map[string]string{"chain": "mainnet", cloud.LabelValidator: "lighthouse-vc-0"}, base.Add(72*time.Hour))
		spec := cloudtest.Spec("inc-snap-1", zoneA)
		s, err := p.Ensure(ctxT(t), spec)
		if err != nil {
			t.Fatal(err)
		}
		if s.Labels[LabelSnapshot] != "snap-good" {
			t.Errorf("label %s = %q, want snap-good", LabelSnapshot, s.Labels[LabelSnapshot])
		}
		d := srv.Disk(zoneA, DataDiskName(spec.Name))
		if d == nil || !strings.HasSuffix(d.GetSourceSnapshot(), "/global/snapshots/snap-good") {
			t.Errorf("data disk = %v, want it from snap-good", d)
		}
		if d.GetLabels()[cloud.LabelManagedBy] != cloud.ManagedByValue {
			t.Errorf("data disk labels = %v", d.GetLabels())
		}
	})
	t.Run("NoneMatching", func(t *testing.T) {
		p, srv := start(t, func(o *Options) { o.SnapshotLabels = sel })
		srv.AddSnapshot("snap-other", map[string]string{"chain": "mainnet"}, base)
		spec := cloudtest.Spec("inc-snap-2", zoneA)
		s, err := p.Ensure(ctxT(t), spec)
		if err != nil {
			t.Fatal(err)
		}
		d := srv.Disk(zoneA, DataDiskName(spec.Name))
		if s.Labels[LabelSnapshot] != "none" || d == nil || d.GetSourceSnapshot() != "" || d.GetSizeGb() != 2000 {
			t.Errorf("label %q, disk %v; want a blank 2000 GB disk", s.Labels[LabelSnapshot], d)
		}
	})
	t.Run("NotConfigured", func(t *testing.T) {
		p, srv := start(t, nil)
		srv.AddSnapshot("snap-x", match, base)
		spec := cloudtest.Spec("inc-snap-3", zoneA)
		if _, err := p.Ensure(ctxT(t), spec); err != nil {
			t.Fatal(err)
		}
		if n := srv.Requests("GET /compute/v1/projects/" + testProject + "/global/snapshots"); n != 0 {
			t.Errorf("%d snapshot lists without SnapshotLabels", n)
		}
	})
}

func TestUserData(t *testing.T) {
	cases := []struct {
		name, data, key string
	}{
		{"script", "#!/bin/bash\necho hi\n", "startup-script"},
		{"cloud-config", "#cloud-config\npackages: [jq]\n", "user-data"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, srv := start(t, nil)
			spec := cloudtest.Spec("inc-ud-1", zoneA)
			spec.UserData = []byte(tc.data)
			if _, err := p.Ensure(ctxT(t), spec); err != nil {
				t.Fatal(err)
			}
			items := srv.Instance(zoneA, spec.Name).GetMetadata().GetItems()
			if len(items) != 1 || items[0].GetKey() != tc.key || items[0].GetValue() != tc.data {
				t.Errorf("metadata = %v, want %s", items, tc.key)
			}
		})
	}
	t.Run("Oversize", func(t *testing.T) {
		p, srv := start(t, nil)
		spec := cloudtest.Spec("inc-ud-2", zoneA)
		spec.UserData = make([]byte, cloud.MaxUserData["gcp"]+1)
		_, err := p.Ensure(ctxT(t), spec)
		wantKind(t, err, cloud.ErrPermanent, "")
		if n := srv.Requests(""); n != 0 {
			t.Errorf("%d requests for an oversize bootstrap, want 0", n)
		}
	})
	t.Run("AtLimit", func(t *testing.T) {
		p, _ := start(t, nil)
		spec := cloudtest.Spec("inc-ud-3", zoneA)
		spec.UserData = []byte("#!/bin/sh\n" + strings.Repeat("#", cloud.MaxUserData["gcp"]-10))
		if _, err := p.Ensure(ctxT(t), spec); err != nil {
			t.Fatalf("bootstrap of exactly the limit: %v", err)
		}
	})
}

func TestOperationTimeoutAndCancel(t *testing.T) {
	t.Run("Timeout", func(t *testing.T) {
		p, srv := start(t, func(o *Options) { o.OperationTimeout = 300 * time.Millisecond })
		srv.SetOperationDelay(time.Hour)
		start := time.Now()
		_, err := p.Ensure(ctxT(t), cloudtest.Spec("inc-slow-1", zoneA))
		wantKind(t, err, cloud.ErrTransient, "")
		if errors.Is(err, context.Canceled) {
			t.Errorf("a timeout must not look like a shutdown: %v", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("took %v", d)
		}
	})
	t.Run("Cancel", func(t *testing.T) {
		p, srv := start(t, nil)
		srv.SetOperationDelay(time.Hour)
		ctx, cancel := context.WithCancel(ctxT(t))
		time.AfterFunc(300*time.Millisecond, cancel)
		_, err := p.Ensure(ctx, cloudtest.Spec("inc-slow-2", zoneA))
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestOwnedResourcesAndDelete(t *testing.T) {
	p, srv := start(t, nil)
	spec := cloudtest.Spec("inc-gc-1", zoneA)
	if _, err := p.Ensure(ctxT(t), spec); err != nil {
		t.Fatal(err)
	}
	srv.AddUnownedInstance(zoneA, "operator-vm")
	rs, err := p.ListOwnedResources(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rs {
		got = append(got, r.Kind+":"+r.Zone+"/"+r.Name)
		if r.CreatedAt.IsZero() || r.Labels[cloud.LabelManagedBy] != cloud.ManagedByValue || r.Labels[cloud.LabelIncident] != "inc-gc-1" {
			t.Errorf("resource %+v lacks CreatedAt or ownership labels", r)
		}
	}
	p2p, api := FirewallNames(spec.Name)
	want := []string{
		"disk:" + zoneA + "/" + spec.Name, "disk:" + zoneA + "/" + DataDiskName(spec.Name),
		"firewall:/" + api, "firewall:/" + p2p,
		"instance:" + zoneA + "/" + spec.Name,
	}
	if !slices.Equal(got, want) {
		t.Errorf("ListOwnedResources = %v, want %v", got, want)
	}
	// An attached disk is not deleted on its own.
	for _, r := range rs {
		if r.Kind == KindDisk {
			if err := p.DeleteResource(ctxT(t), r); !errors.Is(err, cloud.ErrTransient) {
				t.Errorf("DeleteResource(attached disk) = %v, want ErrTransient", err)
			}
		}
	}
	// Delete the instance via the GC path, then the rest.
	for _, r := range rs {
		if r.Kind == KindInstance || r.Kind == KindFirewall {
			if err := p.DeleteResource(ctxT(t), r); err != nil {
				t.Fatalf("DeleteResource(%v): %v", r, err)
			}
		}
	}
	for _, r := range rs { // idempotent: absent counts as deleted
		if err := p.DeleteResource(ctxT(t), r); err != nil {
			t.Fatalf("second DeleteResource(%v): %v", r, err)
		}
	}
	if srv.Disks() != 0 || srv.Firewalls() != 0 || srv.Instances() != 1 {
		t.Errorf("left %d disks, %d firewalls, %d instances; want 0, 0, 1 (the operator's)", srv.Disks(), srv.Firewalls(), srv.Instances())
	}
	if err := p.DeleteResource(ctxT(t), Resource{Kind: KindInstance, Name: "operator-vm", Zone: zoneA}); err != nil || srv.Instance(zoneA, "operator-vm") == nil {
		t.Errorf("DeleteResource of an unowned instance: %v; it must survive", err)
	}
}

func TestDeleteRemovesEverything(t *testing.T) {
	p, srv := start(t, nil)
	srv.SetOperationDelay(50 * time.Millisecond)
	spec := cloudtest.Spec("inc-del-1", zoneA)
	if _, err := p.Ensure(ctxT(t), spec); err != nil {
		t.Fatal(err)
	}
	if srv.Disks() != 2 || srv.Firewalls() != 2 {
		t.Fatalf("after Ensure: %d disks, %d firewalls", srv.Disks(), srv.Firewalls())
	}
	if err := p.Delete(ctxT(t), spec.Name); err != nil {
		t.Fatal(err)
	}
	if srv.Instances() != 0 || srv.Disks() != 0 || srv.Firewalls() != 0 {
		t.Errorf("after Delete: %d instances, %d disks, %d firewalls; want none", srv.Instances(), srv.Disks(), srv.Firewalls())
	}
}

func TestInstanceRequestShape(t *testing.T) {
	p, srv := start(t, func(o *Options) { o.Subnetwork = "standby"; o.DiskType = "pd-balanced" })
	spec := cloudtest.Spec("inc-shape-1", "europe-west4-b")
	spec.Placement.MachineType = ""
	s, err := p.Ensure(ctxT(t), spec)
	if err != nil {
		t.Fatal(err)
	}
	in := srv.Instance("europe-west4-b", spec.Name)
	if sub := in.GetNetworkInterfaces()[0].GetSubnetwork(); sub != "regions/europe-west4/subnetworks/standby" {
		t.Errorf("subnetwork = %q", sub)
	}
	if !strings.HasSuffix(in.GetMachineType(), "/zones/europe-west4-b/machineTypes/"+defaultMachineType) {
		t.Errorf("machineType = %q", in.GetMachineType())
	}
	for k, v := range cloud.OwnershipLabels(spec) {
		if in.GetLabels()[k] != v {
			t.Errorf("instance label %s = %q, want %q", k, in.GetLabels()[k], v)
		}
	}
	if s.Address == "" {
		t.Error("Standby.Address is empty")
	}
	d := srv.Disk("europe-west4-b", DataDiskName(spec.Name))
	if d == nil || !strings.HasSuffix(d.GetType(), "/diskTypes/pd-balanced") || d.GetSizeGb() != 2000 {
		t.Errorf("data disk = %v", d)
	}
}
