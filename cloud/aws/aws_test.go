package aws

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/aws/ec2fake"
	"github.com/failoverd/failoverd/cloud/cloudtest"
)

var testZones = []string{"eu-west-1a", "eu-central-1a"}

// fastRetryer retries like the SDK's standard retryer, without waiting.
func fastRetryer(attempts int) func() awssdk.Retryer {
	return func() awssdk.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = attempts
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
			o.RateLimiter = ratelimit.None
		})
	}
}

func testOptions(srv *ec2fake.Server) Options {
	return Options{
		Zones:        testZones,
		InstanceType: "m6i.2xlarge",
		AMIs:         map[string]string{"eu-west-1": "ami-0123456789abcdef0", "eu-central-1": "ami-0fedcba9876543210"},
		VolumeGB:     2000,
		Endpoint:     srv.URL(),
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDFAILOVERD", "secret", ""),
		Retryer:      fastRetryer(3),
	}
}

func newTest(t *testing.T, mod func(*Options)) (*Provider, *ec2fake.Server) {
	t.Helper()
	srv := ec2fake.New()
	t.Cleanup(srv.Close)
	o := testOptions(srv)
	if mod != nil {
		mod(&o)
	}
	p, err := New(t.Context(), o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p, srv
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestConformance(t *testing.T) {
	var fakes sync.Map // *Provider → *ec2fake.Server
	cloudtest.Run(t, cloudtest.Harness{
		New: func(t *testing.T) cloud.Provider {
			p, srv := newTest(t, nil)
			fakes.Store(p, srv)
			return p
		},
		Zones: testZones,
		AddUnowned: func(t *testing.T, p cloud.Provider, name, zone string) {
			srv, ok := fakes.Load(p)
			if !ok {
				t.Fatal("AddUnowned: unknown provider")
			}
			srv.(*ec2fake.Server).AddUnownedInstance(zone, name)
		},
	})
}

func spec(id string) cloud.StandbySpec { return cloudtest.Spec(id, testZones[0]) }

func cloudErr(t *testing.T, err error) *cloud.Error {
	t.Helper()
	var ce *cloud.Error
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *cloud.Error", err, err)
	}
	return ce
}

func TestErrors(t *testing.T) {
	cases := []struct {
		name   string
		code   string
		status int
		times  int
		want   error
		calls  int // RunInstances requests
	}{
		{"InstanceLimitExceeded", "InstanceLimitExceeded", 400, 1, cloud.ErrQuota, 1},
		{"VcpuLimitExceeded", "VcpuLimitExceeded", 400, 1, cloud.ErrQuota, 1},
		{"MaxSpotInstanceCountExceeded", "MaxSpotInstanceCountExceeded", 400, 1, cloud.ErrQuota, 1},
		// A 500 is retried by the configured retryer (3 attempts here); the
		// default retryer does not retry stockouts (TestCapacityNotRetried…).
		{"InsufficientHostCapacity", "InsufficientHostCapacity", 500, 3, cloud.ErrCapacity, 3},
		{"Unsupported", "Unsupported", 400, 1, cloud.ErrCapacity, 1},
		{"UnauthorizedOperation", "UnauthorizedOperation", 403, 1, cloud.ErrPermanent, 1},
		{"InvalidParameterValue", "InvalidParameterValue", 400, 1, cloud.ErrPermanent, 1},
		{"InvalidAMIID.NotFound", "InvalidAMIID.NotFound", 400, 1, cloud.ErrPermanent, 1},
		{"RequestLimitExceeded beyond the retryer", "RequestLimitExceeded", 503, 5, cloud.ErrTransient, 3},
		{"InternalError beyond the retryer", "InternalError", 500, 5, cloud.ErrTransient, 3},
		{"ServiceUnavailable beyond the retryer", "ServiceUnavailable", 503, 5, cloud.ErrTransient, 3},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, srv := newTest(t, nil)
			srv.FailNext("RunInstances", c.code, c.status, c.times)
			_, err := p.Ensure(ctx(t), spec("inc-err-1"))
			if !errors.Is(err, c.want) {
				t.Fatalf("Ensure: %v, want %v", err, c.want)
			}
			ce := cloudErr(t, err)
			if ce.Zone != testZones[0] {
				t.Errorf("Zone = %q, want %q", ce.Zone, testZones[0])
			}
			if got := srv.Calls("RunInstances"); got != c.calls {
				t.Errorf("RunInstances calls = %d, want %d", got, c.calls)
			}
			if srv.Instances() != 0 {
				t.Errorf("Instances = %d, want 0", srv.Instances())
			}
		})
	}
}

func TestCapacityNotRetriedAndNextZoneWorks(t *testing.T) {
	// The default retryer: a stockout is not retried in the same zone.
	p, srv := newTest(t, func(o *Options) { o.Retryer = nil })
	srv.SetNoCapacity("eu-west-1a", true)
	s := spec("inc-cap-1")
	_, err := p.Ensure(ctx(t), s)
	if !errors.Is(err, cloud.ErrCapacity) {
		t.Fatalf("Ensure in a zone without capacity: %v, want ErrCapacity", err)
	}
	if ce := cloudErr(t, err); ce.Zone != "eu-west-1a" {
		t.Errorf("Zone = %q, want eu-west-1a", ce.Zone)
	}
	if n := srv.Calls("RunInstances"); n != 1 {
		t.Errorf("RunInstances calls = %d, want 1 (no retry of a stockout)", n)
	}
	// The engine's fallback: the next zone, in another region.
	s.Zone = "eu-central-1a"
	got, err := p.Ensure(ctx(t), s)
	if err != nil {
		t.Fatalf("Ensure in the next zone: %v", err)
	}
	if got.Zone != "eu-central-1a" || srv.Instances() != 1 {
		t.Errorf("standby in %s, %d instances; want eu-central-1a, 1", got.Zone, srv.Instances())
	}
}

func TestThrottlingAbsorbedBySDKRetry(t *testing.T) {
	p, srv := newTest(t, nil)
	srv.FailNext("RunInstances", "RequestLimitExceeded", 503, 1)
	srv.FailNext("DescribeInstances", "RequestLimitExceeded", 503, 1)
	if _, err := p.Ensure(ctx(t), spec("inc-throttle-1")); err != nil {
		t.Fatalf("Ensure after one RequestLimitExceeded: %v", err)
	}
	if n := srv.Calls("RunInstances"); n != 2 {
		t.Errorf("RunInstances calls = %d, want 2", n)
	}
	if srv.Instances() != 1 {
		t.Errorf("Instances = %d, want 1", srv.Instances())
	}
}

func TestClientToken(t *testing.T) {
	t.Run("EnsureTwiceLaunchesOnce", func(t *testing.T) {
		p, srv := newTest(t, nil)
		s := spec("inc-token-1")
		a, err := p.Ensure(ctx(t), s)
		if err != nil {
			t.Fatal(err)
		}
		b, err := p.Ensure(ctx(t), s)
		if err != nil {
			t.Fatal(err)
		}
		if a.Name != b.Name || !a.CreatedAt.Equal(b.CreatedAt) {
			t.Errorf("two Ensure: %+v vs %+v", a, b)
		}
		if srv.Calls("RunInstances") != 1 || srv.Instances() != 1 {
			t.Errorf("RunInstances calls %d, instances %d; want 1, 1", srv.Calls("RunInstances"), srv.Instances())
		}
		in := srv.InstancesNamed(s.Name)[0]
		if in.ClientToken != clientToken(s.IncidentID, s.Name, s.Zone) || len(in.ClientToken) > 64 {
			t.Errorf("ClientToken = %q, want %q", in.ClientToken, clientToken(s.IncidentID, s.Name, s.Zone))
		}
	})
	t.Run("LostAnswerRetriedBySDK", func(t *testing.T) {
		p, srv := newTest(t, nil)
		srv.FailAfter("RunInstances", "InternalError", 500, 1)
		if _, err := p.Ensure(ctx(t), spec("inc-lost-1")); err != nil {
			t.Fatalf("Ensure: %v", err)
		}
		if srv.Calls("RunInstances") != 2 || srv.Instances() != 1 {
			t.Errorf("RunInstances calls %d, instances %d; want 2 (one retry with the same token), 1", srv.Calls("RunInstances"), srv.Instances())
		}
	})
	t.Run("LostAnswerThenRestart", func(t *testing.T) {
		p, srv := newTest(t, nil)
		s := spec("inc-lost-2")
		// The answer is lost and failoverd gives up (a crash, a shutdown).
		c, cancel := context.WithCancel(t.Context())
		srv.Hook(func(action string, _ url.Values) {
			if action == "RunInstances" {
				cancel()
			}
		})
		_, err := p.Ensure(c, s)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Ensure cancelled while RunInstances was in flight: %v, want context.Canceled", err)
		}
		srv.Hook(nil)
		// The client gave up as the request arrived; the fake finishes the
		// launch on its own goroutine, as EC2 would after a lost answer.
		for deadline := time.Now().Add(5 * time.Second); srv.Instances() == 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		if srv.Instances() != 1 {
			t.Fatalf("Instances after the lost answer = %d, want 1 (EC2 did launch)", srv.Instances())
		}
		// A restarted failoverd: a new provider.
		p2, err := New(t.Context(), testOptions(srv))
		if err != nil {
			t.Fatal(err)
		}
		got, err := p2.Ensure(ctx(t), s)
		if err != nil {
			t.Fatalf("Ensure after restart: %v", err)
		}
		if srv.Instances() != 1 || got.Name != s.Name {
			t.Errorf("after restart: %d instances, standby %q", srv.Instances(), got.Name)
		}
		// Even if DescribeInstances had not shown it yet (EC2 is eventually
		// consistent), the launch itself returns the same instance.
		again, err := p2.launch(ctx(t), "eu-west-1", s)
		if err != nil {
			t.Fatalf("launch again: %v", err)
		}
		if srv.Instances() != 1 || !again.CreatedAt.Equal(got.CreatedAt) {
			t.Errorf("launch again: %d instances, CreatedAt %v vs %v", srv.Instances(), again.CreatedAt, got.CreatedAt)
		}
	})
	t.Run("IdempotentParameterMismatchAdoptsLiveOwned", func(t *testing.T) {
		p, srv := newTest(t, nil)
		s := spec("inc-mismatch-1")
		first, err := p.Ensure(ctx(t), s)
		if err != nil {
			t.Fatal(err)
		}
		o := testOptions(srv)
		o.InstanceType = "m6i.4xlarge" // the config changed between attempts
		p2, err := New(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		got, err := p2.launch(ctx(t), "eu-west-1", s)
		if err != nil {
			t.Fatalf("launch with other parameters: %v", err)
		}
		if !got.CreatedAt.Equal(first.CreatedAt) || srv.Instances() != 1 {
			t.Errorf("got %+v, %d instances; want the first instance, 1", got, srv.Instances())
		}
	})
	t.Run("IdempotentParameterMismatchWithDeadInstance", func(t *testing.T) {
		// Deleted, then ensured again with other parameters (a new
		// security group, another instance type): the token's instance is
		// dead, so the next token in the chain launches exactly one.
		p, srv := newTest(t, nil)
		s := spec("inc-mismatch-2")
		if _, err := p.Ensure(ctx(t), s); err != nil {
			t.Fatal(err)
		}
		if err := p.Delete(ctx(t), s.Name); err != nil {
			t.Fatal(err)
		}
		o := testOptions(srv)
		o.InstanceType = "m6i.4xlarge"
		p2, err := New(t.Context(), o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p2.Ensure(ctx(t), s); err != nil {
			t.Fatalf("Ensure: %v", err)
		}
		if _, err := p2.launch(ctx(t), "eu-west-1", s); err != nil {
			t.Fatalf("launch again: %v", err)
		}
		if srv.Instances() != 1 {
			t.Errorf("Instances = %d, want 1", srv.Instances())
		}
	})
	t.Run("DeadInstanceReplacedOnce", func(t *testing.T) {
		// A spot instance reclaimed: the same incident's Ensure must launch
		// a new one although the first token answers with the dead one.
		p, srv := newTest(t, nil)
		s := spec("inc-reclaimed-1")
		first, err := p.Ensure(ctx(t), s)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Delete(ctx(t), s.Name); err != nil {
			t.Fatal(err)
		}
		second, err := p.Ensure(ctx(t), s)
		if err != nil {
			t.Fatalf("Ensure after the instance died: %v", err)
		}
		if srv.Instances() != 1 || second.CreatedAt.Before(first.CreatedAt) {
			t.Fatalf("Instances = %d, want 1", srv.Instances())
		}
		// A restart retrying the launch walks the same token chain.
		p2, _ := New(t.Context(), testOptions(srv))
		third, err := p2.launch(ctx(t), "eu-west-1", s)
		if err != nil {
			t.Fatal(err)
		}
		if srv.Instances() != 1 || !third.CreatedAt.Equal(second.CreatedAt) {
			t.Errorf("relaunch: %d instances; CreatedAt %v vs %v", srv.Instances(), third.CreatedAt, second.CreatedAt)
		}
	})
}

type ruleKey struct {
	proto string
	port  int
	cidr  string
}

func ingress(t *testing.T, srv *ec2fake.Server, name string) map[ruleKey]bool {
	t.Helper()
	gs := srv.SecurityGroups(SecurityGroupPrefix + name)
	if len(gs) != 1 {
		t.Fatalf("security groups named %s: %d, want 1", SecurityGroupPrefix+name, len(gs))
	}
	if gs[0].Tags[cloud.LabelManagedBy] != cloud.ManagedByValue || gs[0].Tags[TagName] != name {
		t.Errorf("security group tags = %v", gs[0].Tags)
	}
	out := map[ruleKey]bool{}
	for _, r := range gs[0].Ingress {
		if r.FromPort != r.ToPort {
			t.Errorf("rule %+v spans ports", r)
		}
		out[ruleKey{r.Protocol, r.FromPort, r.CIDR}] = true
	}
	return out
}

func TestSecurityGroupRules(t *testing.T) {
	t.Run("P2PFromAnywhereAPIFromSourceRanges", func(t *testing.T) {
		p, srv := newTest(t, func(o *Options) { o.APISourceRanges = []string{"198.51.100.0/24", "203.0.113.7/32"} })
		s := spec("inc-sg-1")
		if _, err := p.Ensure(ctx(t), s); err != nil {
			t.Fatal(err)
		}
		got := ingress(t, srv, s.Name)
		want := map[ruleKey]bool{}
		for _, pr := range DefaultP2PPorts {
			want[ruleKey{pr.Protocol, pr.Port, "0.0.0.0/0"}] = true
		}
		for _, pr := range DefaultAPIPorts {
			want[ruleKey{pr.Protocol, pr.Port, "198.51.100.0/24"}] = true
			want[ruleKey{pr.Protocol, pr.Port, "203.0.113.7/32"}] = true
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ingress = %v, want %v", got, want)
		}
		in := srv.InstancesNamed(s.Name)[0]
		if g := srv.SecurityGroups(SecurityGroupPrefix + s.Name)[0]; !slices.Equal(in.SecurityGroupIDs, []string{g.ID}) || g.VpcID != in.VpcID {
			t.Errorf("instance groups %v in %s, group %s in %s", in.SecurityGroupIDs, in.VpcID, g.ID, g.VpcID)
		}
		// Ensure again on a missing instance reuses the group (no Duplicate error).
		if err := p.Delete(ctx(t), s.Name); err != nil {
			t.Fatal(err)
		}
		if n := len(srv.SecurityGroups(SecurityGroupPrefix + s.Name)); n != 0 {
			t.Errorf("security groups after Delete: %d, want 0", n)
		}
	})
	t.Run("NoAPIPortsWithoutSourceRanges", func(t *testing.T) {
		p, srv := newTest(t, func(o *Options) {
			o.P2PPorts = []PortRule{{"tcp", 30303}, {"udp", 30303}}
		})
		s := spec("inc-sg-2")
		if _, err := p.Ensure(ctx(t), s); err != nil {
			t.Fatal(err)
		}
		got := ingress(t, srv, s.Name)
		want := map[ruleKey]bool{{"tcp", 30303, "0.0.0.0/0"}: true, {"udp", 30303, "0.0.0.0/0"}: true}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ingress = %v, want %v", got, want)
		}
	})
	t.Run("ExistingGroupReusedAndCompleted", func(t *testing.T) {
		p, srv := newTest(t, func(o *Options) { o.APISourceRanges = []string{"198.51.100.0/24"} })
		s := spec("inc-sg-3")
		// A crash after CreateSecurityGroup, before the rules.
		srv.FailNext("AuthorizeSecurityGroupIngress", "InternalError", 500, 3)
		if _, err := p.Ensure(ctx(t), s); !errors.Is(err, cloud.ErrTransient) {
			t.Fatalf("Ensure with AuthorizeSecurityGroupIngress failing: %v, want ErrTransient", err)
		}
		if _, err := p.Ensure(ctx(t), s); err != nil {
			t.Fatalf("Ensure again: %v", err)
		}
		if got := ingress(t, srv, s.Name); len(got) != len(DefaultP2PPorts)+len(DefaultAPIPorts) {
			t.Errorf("ingress = %v", got)
		}
		if n := srv.Calls("CreateSecurityGroup"); n != 1 {
			t.Errorf("CreateSecurityGroup calls = %d, want 1", n)
		}
	})
	t.Run("GroupHeldWhileShuttingDownLeftForGC", func(t *testing.T) {
		p, srv := newTest(t, nil)
		srv.SetTerminateDelay(time.Hour)
		s := spec("inc-sg-4")
		if _, err := p.Ensure(ctx(t), s); err != nil {
			t.Fatal(err)
		}
		if err := p.Delete(ctx(t), s.Name); err != nil {
			t.Fatalf("Delete while the instance shuts down: %v, want nil", err)
		}
		gs := srv.SecurityGroups(SecurityGroupPrefix + s.Name)
		if len(gs) != 1 {
			t.Fatalf("security group should be left for the collector, got %d", len(gs))
		}
		if st, err := p.Get(ctx(t), s.Name); err != nil || st.State != cloud.StateTerminated {
			t.Errorf("Get while shutting down: %+v, %v; want StateTerminated", st, err)
		}
		res, err := p.ListOwnedResources(ctx(t))
		if err != nil {
			t.Fatal(err)
		}
		var sg *Resource
		for i := range res {
			if res[i].Kind == KindInstance {
				t.Errorf("shutting-down instance listed for the collector: %+v", res[i])
			}
			if res[i].Kind == KindSecurityGroup {
				sg = &res[i]
			}
		}
		if sg == nil || sg.ID != gs[0].ID || sg.Name != s.Name || sg.Zone != "eu-west-1" || sg.CreatedAt.IsZero() {
			t.Fatalf("collector's view of the group: %+v", sg)
		}
		if err := p.DeleteResource(ctx(t), *sg); !errors.Is(err, cloud.ErrTransient) {
			t.Errorf("DeleteResource of a held group: %v, want ErrTransient", err)
		}
		srv.SetTerminateDelay(0)
		if err := p.DeleteResource(ctx(t), *sg); err != nil {
			t.Errorf("DeleteResource after termination: %v", err)
		}
		if err := p.DeleteResource(ctx(t), *sg); err != nil {
			t.Errorf("DeleteResource of a deleted group: %v, want nil", err)
		}
		if n := len(srv.SecurityGroups(SecurityGroupPrefix + s.Name)); n != 0 {
			t.Errorf("groups left: %d", n)
		}
	})
}

func TestLaunchRequest(t *testing.T) {
	t.Run("TagsSubnetAndVolume", func(t *testing.T) {
		p, srv := newTest(t, func(o *Options) { o.VolumeType = "io2" })
		subnetID, vpcID := srv.AddSubnet("eu-west-1a")
		p.o.Subnets = map[string]string{"eu-west-1a": subnetID}
		s := spec("inc-req-1")
		if _, err := p.Ensure(ctx(t), s); err != nil {
			t.Fatal(err)
		}
		in := srv.InstancesNamed(s.Name)[0]
		if in.SubnetID != subnetID || in.VpcID != vpcID || in.Zone != "eu-west-1a" || in.InstanceType != "m6i.2xlarge" || in.ImageID != "ami-0123456789abcdef0" {
			t.Errorf("instance %+v", in)
		}
		want := cloud.OwnershipLabels(s)
		want[TagName] = s.Name
		if !reflect.DeepEqual(in.Tags, want) {
			t.Errorf("instance tags = %v, want %v", in.Tags, want)
		}
		var data *ec2fake.BlockDevice
		for i, d := range in.BlockDevices {
			if !reflect.DeepEqual(d.Tags, want) {
				t.Errorf("volume %s tags = %v, want %v", d.DeviceName, d.Tags, want)
			}
			if d.DeviceName == DataDevice {
				data = &in.BlockDevices[i]
			}
		}
		if data == nil || data.SizeGB != 2000 || data.VolumeType != "io2" || data.SnapshotID != "" || !data.DeleteOnTermination || data.InitializationRate != 0 {
			t.Errorf("data volume %+v", data)
		}
		if in.Spot || len(in.UserData) != 0 {
			t.Errorf("spot %v, user data %q; want neither", in.Spot, in.UserData)
		}
	})
	t.Run("Spot", func(t *testing.T) {
		for _, c := range []struct {
			name            string
			option, placing bool
		}{{"Option", true, false}, {"Placement", false, true}} {
			t.Run(c.name, func(t *testing.T) {
				p, srv := newTest(t, func(o *Options) { o.Spot = c.option })
				s := spec("inc-spot-1")
				s.Placement.Spot = c.placing
				if _, err := p.Ensure(ctx(t), s); err != nil {
					t.Fatal(err)
				}
				in := srv.InstancesNamed(s.Name)[0]
				if !in.Spot || in.SpotInstanceType != "one-time" || in.InterruptionBehavior != "terminate" {
					t.Errorf("spot %v %q %q, want spot one-time terminate", in.Spot, in.SpotInstanceType, in.InterruptionBehavior)
				}
			})
		}
	})
	t.Run("UserData", func(t *testing.T) {
		p, srv := newTest(t, nil)
		s := spec("inc-ud-1")
		s.UserData = append([]byte("#cloud-config\n"), bytes.Repeat([]byte{0, 0xff, 'x'}, 1000)...)
		if _, err := p.Ensure(ctx(t), s); err != nil {
			t.Fatal(err)
		}
		if got := srv.InstancesNamed(s.Name)[0].UserData; !bytes.Equal(got, s.UserData) {
			t.Errorf("user data did not round-trip: %d bytes, want %d", len(got), len(s.UserData))
		}
	})
	t.Run("UserDataAtLimit", func(t *testing.T) {
		p, srv := newTest(t, nil)
		s := spec("inc-ud-2")
		s.UserData = bytes.Repeat([]byte("a"), cloud.MaxUserData["aws"])
		if _, err := p.Ensure(ctx(t), s); err != nil {
			t.Fatal(err)
		}
		if len(srv.InstancesNamed(s.Name)[0].UserData) != cloud.MaxUserData["aws"] {
			t.Error("user data at the limit not passed whole")
		}
	})
	t.Run("UserDataOversizeRefusedWithoutCalls", func(t *testing.T) {
		p, srv := newTest(t, nil)
		s := spec("inc-ud-3")
		s.UserData = bytes.Repeat([]byte("a"), cloud.MaxUserData["aws"]+1)
		_, err := p.Ensure(ctx(t), s)
		if !errors.Is(err, cloud.ErrPermanent) {
			t.Fatalf("Ensure with oversize user data: %v, want ErrPermanent", err)
		}
		if n := srv.TotalCalls(); n != 0 {
			t.Errorf("%d API calls, want 0", n)
		}
	})
}

func TestSnapshotSelection(t *testing.T) {
	base := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	sel := map[string]string{"failoverd-snapshot": "chaindata"}
	match := func(extra map[string]string) map[string]string {
		m := map[string]string{"failoverd-snapshot": "chaindata", cloud.LabelValidator: "lighthouse-vc-0"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	t.Run("NewestCompletedMatching", func(t *testing.T) {
		p, srv := newTest(t, func(o *Options) {
			o.SnapshotTags = sel
			o.VolumeInitializationRate = 200
			o.VolumeGB = 500
		})
		srv.AddSnapshot("eu-west-1", ec2fake.Snapshot{ID: "snap-old", SizeGB: 1500, StartTime: base, Tags: match(nil)})
		srv.AddSnapshot("eu-west-1", ec2fake.Snapshot{ID: "snap-new", SizeGB: 1800, StartTime: base.Add(24 * time.Hour), Tags: match(nil)})
		srv.AddSnapshot("eu-west-1", ec2fake.Snapshot{ID: "snap-pending", SizeGB: 1800, StartTime: base.Add(48 * time.Hour), State: "pending", Tags: match(nil)})
		srv.AddSnapshot("eu-west-1", ec2fake.Snapshot{ID: "snap-other-validator", SizeGB: 1800, StartTime: base.Add(72 * time.Hour), Tags: match(map[string]string{cloud.LabelValidator: "lighthouse-vc-1"})})
		srv.AddSnapshot("eu-west-1", ec2fake.Snapshot{ID: "snap-other-account", SizeGB: 1800, StartTime: base.Add(96 * time.Hour), OwnerID: "999999999999", Tags: match(nil)})
		srv.AddSnapshot("eu-central-1", ec2fake.Snapshot{ID: "snap-other-region", SizeGB: 1800, StartTime: base.Add(96 * time.Hour), Tags: match(nil)})
		s := spec("inc-snap-1")
		if _, err := p.Ensure(ctx(t), s); err != nil {
			t.Fatal(err)
		}
		d := dataDevice(t, srv, s.Name)
		if d.SnapshotID != "snap-new" || d.SizeGB != 1800 || d.InitializationRate != 200 {
			t.Errorf("data volume %+v, want snap-new, 1800 GB (the snapshot's size > VolumeGB), rate 200", d)
		}
	})
	t.Run("NoneMatchingBlankVolume", func(t *testing.T) {
		p, srv := newTest(t, func(o *Options) {
			o.SnapshotTags = sel
			o.VolumeInitializationRate = 200
		})
		srv.AddSnapshot("eu-west-1", ec2fake.Snapshot{ID: "snap-other-validator", SizeGB: 100, Tags: match(map[string]string{cloud.LabelValidator: "someone-else"})})
		s := spec("inc-snap-2")
		if _, err := p.Ensure(ctx(t), s); err != nil {
			t.Fatal(err)
		}
		d := dataDevice(t, srv, s.Name)
		if d.SnapshotID != "" || d.SizeGB != 2000 || d.InitializationRate != 0 {
			t.Errorf("data volume %+v, want blank 2000 GB without initialization rate", d)
		}
	})
}

func dataDevice(t *testing.T, srv *ec2fake.Server, name string) ec2fake.BlockDevice {
	t.Helper()
	for _, d := range srv.InstancesNamed(name)[0].BlockDevices {
		if d.DeviceName == DataDevice {
			return d
		}
	}
	t.Fatalf("no %s on %s", DataDevice, name)
	return ec2fake.BlockDevice{}
}

func TestCancelInFlight(t *testing.T) {
	p, srv := newTest(t, nil)
	c, cancel := context.WithCancel(t.Context())
	srv.Hook(func(action string, _ url.Values) {
		if action == "DescribeInstances" {
			cancel()
		}
	})
	_, err := p.Ensure(c, spec("inc-cancel-flight"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Ensure: %v, want context.Canceled", err)
	}
	if srv.Calls("RunInstances") != 0 {
		t.Errorf("RunInstances called after cancel")
	}
}

func TestGarbageCollectorView(t *testing.T) {
	p, srv := newTest(t, nil)
	s := spec("inc-gc-1")
	if _, err := p.Ensure(ctx(t), s); err != nil {
		t.Fatal(err)
	}
	orphan := srv.AddVolume("eu-central-1a", 100, map[string]string{cloud.LabelManagedBy: cloud.ManagedByValue, TagName: "fo-old"})
	srv.AddVolume("eu-west-1a", 100, map[string]string{TagName: "operators"})
	unowned := srv.AddUnownedInstance("eu-west-1a", "operators-vm")
	srv.AddSecurityGroup("eu-west-1", "operators-sg", nil)

	res, err := p.ListOwnedResources(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string][]Resource{}
	for _, r := range res {
		kinds[r.Kind] = append(kinds[r.Kind], r)
		if r.Tags[cloud.LabelManagedBy] != cloud.ManagedByValue {
			t.Errorf("unowned resource listed: %+v", r)
		}
	}
	if len(kinds[KindInstance]) != 1 || kinds[KindInstance][0].Name != s.Name || kinds[KindInstance][0].Zone != "eu-west-1a" || kinds[KindInstance][0].CreatedAt.IsZero() {
		t.Errorf("instances: %+v", kinds[KindInstance])
	}
	if len(kinds[KindSecurityGroup]) != 1 || kinds[KindSecurityGroup][0].Name != s.Name {
		t.Errorf("security groups: %+v", kinds[KindSecurityGroup])
	}
	if len(kinds[KindVolume]) != 1 || kinds[KindVolume][0].ID != orphan || kinds[KindVolume][0].Zone != "eu-central-1a" {
		t.Errorf("volumes (attached ones must not be listed): %+v", kinds[KindVolume])
	}

	// Unowned resources are refused even when asked for by ID.
	if err := p.DeleteResource(ctx(t), Resource{Kind: KindInstance, ID: unowned, Zone: "eu-west-1a"}); !errors.Is(err, cloud.ErrPermanent) {
		t.Errorf("DeleteResource of an unowned instance: %v, want ErrPermanent", err)
	}
	for _, k := range []string{KindInstance, KindVolume, KindSecurityGroup} {
		for _, r := range kinds[k] {
			if err := p.DeleteResource(ctx(t), r); err != nil {
				t.Errorf("DeleteResource %s %s: %v", r.Kind, r.ID, err)
			}
			if err := p.DeleteResource(ctx(t), r); err != nil {
				t.Errorf("DeleteResource %s %s again: %v, want nil", r.Kind, r.ID, err)
			}
		}
	}
	res, err = p.ListOwnedResources(ctx(t))
	if err != nil || len(res) != 0 {
		t.Errorf("after deleting everything: %+v, %v", res, err)
	}
	if srv.Instances() != 1 {
		t.Errorf("Instances = %d, want 1 (the operator's)", srv.Instances())
	}
}

func TestNewValidates(t *testing.T) {
	srv := ec2fake.New()
	defer srv.Close()
	for name, mod := range map[string]func(*Options){
		"no zones":          func(o *Options) { o.Zones = nil },
		"region as zone":    func(o *Options) { o.Zones = []string{"eu-west-1"} },
		"missing AMI":       func(o *Options) { delete(o.AMIs, "eu-central-1") },
		"no instance type":  func(o *Options) { o.InstanceType = "" },
		"bad rate":          func(o *Options) { o.VolumeInitializationRate = 50 },
		"bad port":          func(o *Options) { o.P2PPorts = []PortRule{{"sctp", 1}} },
		"IPv6 source range": func(o *Options) { o.APISourceRanges = []string{"2001:db8::/32"} },
		"not a CIDR":        func(o *Options) { o.APISourceRanges = []string{"10.0.0.1"} },
	} {
		o := testOptions(srv)
		mod(&o)
		if _, err := New(t.Context(), o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if got := RegionOf("us-west-2-lax-1a"); got != "us-west-2" {
		t.Errorf("RegionOf(local zone) = %q", got)
	}
}

func TestAPICallsCoverInterface(t *testing.T) {
	it := reflect.TypeFor[ec2API]()
	for i := range it.NumMethod() {
		if a := "ec2:" + it.Method(i).Name; !slices.Contains(APICalls, a) {
			t.Errorf("APICalls lacks %s", a)
		}
	}
	if !slices.Contains(APICalls, "ec2:CreateTags") {
		t.Error("APICalls lacks ec2:CreateTags (TagSpecifications)")
	}
	if len(APICalls) != it.NumMethod()+1 {
		t.Errorf("APICalls has %d entries, want %d (one per ec2API method + CreateTags)", len(APICalls), it.NumMethod()+1)
	}
}
