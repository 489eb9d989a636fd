package aws

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/failoverd/failoverd/cloud"
)

// stub is an ec2API whose calls are answered by the functions set; an
// unset one fails the test.
type stub struct {
	t        *testing.T
	calls    []string
	run      func(*ec2.RunInstancesInput) (*ec2.RunInstancesOutput, error)
	describe func(*ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error)
}

func (s *stub) record(name string) { s.calls = append(s.calls, name) }

func (s *stub) RunInstances(_ context.Context, in *ec2.RunInstancesInput, _ ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error) {
	s.record("RunInstances")
	return s.run(in)
}
func (s *stub) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	s.record("DescribeInstances")
	return s.describe(in)
}
func (s *stub) TerminateInstances(context.Context, *ec2.TerminateInstancesInput, ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error) {
	s.t.Fatal("unexpected TerminateInstances")
	return nil, nil
}
func (s *stub) CreateSecurityGroup(context.Context, *ec2.CreateSecurityGroupInput, ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error) {
	s.record("CreateSecurityGroup")
	return &ec2.CreateSecurityGroupOutput{GroupId: awssdk.String("sg-1")}, nil
}
func (s *stub) AuthorizeSecurityGroupIngress(context.Context, *ec2.AuthorizeSecurityGroupIngressInput, ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error) {
	s.record("AuthorizeSecurityGroupIngress")
	return &ec2.AuthorizeSecurityGroupIngressOutput{}, nil
}
func (s *stub) DescribeSecurityGroups(context.Context, *ec2.DescribeSecurityGroupsInput, ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error) {
	s.record("DescribeSecurityGroups")
	return &ec2.DescribeSecurityGroupsOutput{}, nil
}
func (s *stub) DeleteSecurityGroup(context.Context, *ec2.DeleteSecurityGroupInput, ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error) {
	s.t.Fatal("unexpected DeleteSecurityGroup")
	return nil, nil
}
func (s *stub) DescribeSnapshots(context.Context, *ec2.DescribeSnapshotsInput, ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error) {
	s.t.Fatal("unexpected DescribeSnapshots")
	return nil, nil
}
func (s *stub) CreateSnapshot(context.Context, *ec2.CreateSnapshotInput, ...func(*ec2.Options)) (*ec2.CreateSnapshotOutput, error) {
	s.t.Fatal("unexpected CreateSnapshot")
	return nil, nil
}
func (s *stub) DeleteSnapshot(context.Context, *ec2.DeleteSnapshotInput, ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error) {
	s.t.Fatal("unexpected DeleteSnapshot")
	return nil, nil
}
func (s *stub) DescribeSubnets(context.Context, *ec2.DescribeSubnetsInput, ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error) {
	s.record("DescribeSubnets")
	return &ec2.DescribeSubnetsOutput{Subnets: []types.Subnet{{SubnetId: awssdk.String("subnet-1"), VpcId: awssdk.String("vpc-1"), AvailabilityZone: awssdk.String("eu-west-1a")}}}, nil
}
func (s *stub) DescribeVolumes(context.Context, *ec2.DescribeVolumesInput, ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error) {
	s.t.Fatal("unexpected DescribeVolumes")
	return nil, nil
}
func (s *stub) DeleteVolume(context.Context, *ec2.DeleteVolumeInput, ...func(*ec2.Options)) (*ec2.DeleteVolumeOutput, error) {
	s.t.Fatal("unexpected DeleteVolume")
	return nil, nil
}

func stubProvider(t *testing.T, s *stub) *Provider {
	t.Helper()
	p, err := newProvider(Options{
		Zones:        []string{"eu-west-1a"},
		InstanceType: "m6i.2xlarge",
		AMIs:         map[string]string{"eu-west-1": "ami-0123456789abcdef0"},
		VolumeGB:     100,
	}, map[string]ec2API{"eu-west-1": s})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// An IdempotentParameterMismatch whose instance cannot be seen (eventual
// consistency, or it is live but not ours) stops with ErrPermanent and
// launches nothing more.
func TestIdempotentParameterMismatchUnseenIsPermanent(t *testing.T) {
	for _, c := range []struct {
		name    string
		byToken []types.Instance
	}{
		{"NotVisible", nil},
		{"LiveButUnowned", []types.Instance{{InstanceId: awssdk.String("i-0123456789abcdef0"), State: &types.InstanceState{Name: types.InstanceStateNameRunning}}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := &stub{t: t}
			s.run = func(*ec2.RunInstancesInput) (*ec2.RunInstancesOutput, error) {
				return nil, &smithy.GenericAPIError{Code: "IdempotentParameterMismatch", Message: "inconsistent"}
			}
			s.describe = func(in *ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error) {
				if awssdk.ToString(in.Filters[0].Name) == "client-token" {
					return &ec2.DescribeInstancesOutput{Reservations: []types.Reservation{{Instances: c.byToken}}}, nil
				}
				return &ec2.DescribeInstancesOutput{}, nil
			}
			p := stubProvider(t, s)
			spec := cloud.StandbySpec{Name: "fo-x", IncidentID: "x", Zone: "eu-west-1a"}
			_, err := p.Ensure(t.Context(), spec)
			if !errors.Is(err, cloud.ErrPermanent) || !strings.Contains(err.Error(), "not launching a second") {
				t.Fatalf("Ensure: %v, want ErrPermanent", err)
			}
			n := 0
			for _, c := range s.calls {
				if c == "RunInstances" {
					n++
				}
			}
			if n != 1 {
				t.Errorf("RunInstances calls = %d, want 1 (%v)", n, s.calls)
			}
		})
	}
}

func TestKindOf(t *testing.T) {
	for code, want := range map[string]error{
		"InsufficientInstanceCapacity": cloud.ErrCapacity,
		"InsufficientHostCapacity":     cloud.ErrCapacity,
		"Unsupported":                  cloud.ErrCapacity,
		"InstanceLimitExceeded":        cloud.ErrQuota,
		"VcpuLimitExceeded":            cloud.ErrQuota,
		"MaxSpotInstanceCountExceeded": cloud.ErrQuota,
		"RequestLimitExceeded":         cloud.ErrTransient,
		"Throttling":                   cloud.ErrTransient,
		"ServiceUnavailable":           cloud.ErrTransient,
		"InternalError":                cloud.ErrTransient,
		"InvalidInstanceID.NotFound":   cloud.ErrNotFound,
		"UnauthorizedOperation":        cloud.ErrPermanent,
		"InvalidParameterValue":        cloud.ErrPermanent,
		"InvalidAMIID.Malformed":       cloud.ErrPermanent,
		"InvalidAMIID.NotFound":        cloud.ErrPermanent,
		"AuthFailure":                  cloud.ErrPermanent,
	} {
		if got := kindOf(&smithy.GenericAPIError{Code: code}); got != want {
			t.Errorf("kindOf(%s) = %v, want %v", code, got, want)
		}
	}
	if got := kindOf(errors.New("connection reset")); got != cloud.ErrTransient {
		t.Errorf("kindOf(network error) = %v, want ErrTransient", got)
	}
	if got := kindOf(context.DeadlineExceeded); got != cloud.ErrTransient {
		t.Errorf("kindOf(deadline) = %v", got)
	}
}

func TestClientTokenShape(t *testing.T) {
	a := clientToken("inc-1", "fo-inc-1", "eu-west-1a")
	if a != clientToken("inc-1", "fo-inc-1", "eu-west-1a") {
		t.Error("token not deterministic")
	}
	if len(a) != 36 || a[14] != '5' {
		t.Errorf("token %q is not a UUIDv5", a)
	}
	for _, b := range []string{
		clientToken("inc-2", "fo-inc-1", "eu-west-1a"),
		clientToken("inc-1", "fo-inc-1", "eu-west-1b"),
		nextToken(a, "i-0123456789abcdef0"),
	} {
		if a == b {
			t.Errorf("tokens collide: %s", a)
		}
	}
	_ = time.Now
}
