// Package aws is the AWS provider: standbys are EC2 instances launched with
// the aws-sdk-go-v2 ec2 client, behind the narrow ec2API interface (the
// calls used, nothing more) so unit tests hand newProvider a stub, and the
// integration tests point the real client at cloud/aws/ec2fake.
//
// Idempotency comes from three things: the instance's Name tag (the standby
// name, looked up before every launch), a deterministic RunInstances
// ClientToken (a UUIDv5 of incident, name and zone, so a retried or
// restarted launch returns the first reservation instead of a second
// instance), and the ownership tags (managed-by=failoverd…) on every
// instance, volume and security group. Instances without managed-by=failoverd
// are never returned, changed or deleted. README.md has the full model.
package aws

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/failoverd/failoverd/cloud"
)

// ProviderName is the provider's name in config and incidents.
const ProviderName = "aws"

// Defaults.
const (
	DefaultVolumeType = "gp3"
	// DataDevice is where the data volume is attached.
	DataDevice = "/dev/sdf"
	// SecurityGroupPrefix + standby name is the standby's security group.
	SecurityGroupPrefix = "failoverd-"
	// TagName is the EC2 Name tag; it holds the standby name.
	TagName = "Name"
	// TagCreatedAt records when failoverd created a security group (EC2
	// does not report it), RFC 3339.
	TagCreatedAt = "failoverd-created-at"
)

// DefaultP2PPorts are open to 0.0.0.0/0: execution (30303 tcp+udp) and
// consensus (9000 tcp+udp, 9001 udp QUIC) peer-to-peer.
var DefaultP2PPorts = []PortRule{{"tcp", 30303}, {"udp", 30303}, {"tcp", 9000}, {"udp", 9000}, {"udp", 9001}}

// DefaultAPIPorts are open only from Options.APISourceRanges: execution
// JSON-RPC 8545, beacon API 5052, node exporter 9100, standby agent 7443.
var DefaultAPIPorts = []PortRule{{"tcp", 8545}, {"tcp", 5052}, {"tcp", 9100}, {"tcp", 7443}}

// Options configure the provider.
type Options struct {
	// Zones are the availability zones in preference order (eu-west-1a).
	// Their regions (the zone without its letter) are the regions the
	// provider looks in and may launch in; one ec2 client per region.
	Zones []string
	// Subnets maps a zone to the subnet to launch in; a zone without one
	// uses the default VPC's default subnet of the zone.
	Subnets map[string]string
	// InstanceType, e.g. "m6i.2xlarge". Required.
	InstanceType string
	// AMIs maps region → AMI ID; required for every region of Zones.
	AMIs map[string]string
	// VolumeGB is the data volume's size (spec.Placement.DiskGB when 0; with
	// a snapshot and both 0, the snapshot's size). VolumeType defaults to gp3.
	VolumeGB   int
	VolumeType string
	// SnapshotTags, when set, make the data volume from the newest completed
	// snapshot owned by the account whose tags match these plus
	// failoverd-validator=<validator>; none matching → a blank volume.
	SnapshotTags map[string]string
	// VolumeInitializationRate (MiB/s, 100–300, 0 = off) is the EBS
	// provisioned rate for volume initialization of a snapshot-restored
	// volume (EbsBlockDevice.VolumeInitializationRate). Without it the
	// restored volume loads lazily from S3 on first read.
	VolumeInitializationRate int
	// Spot launches spot instances (one-time, terminate on interruption);
	// spec.Placement.Spot also turns it on.
	Spot bool
	// P2PPorts are open to 0.0.0.0/0 (nil: DefaultP2PPorts; empty: none).
	P2PPorts []PortRule
	// APIPorts are open only from APISourceRanges (nil: DefaultAPIPorts);
	// with no APISourceRanges no API port is open at all.
	APIPorts        []PortRule
	APISourceRanges []string
	// Endpoint overrides the EC2 endpoint (tests: the ec2fake URL).
	Endpoint string
	// Credentials; nil → the default chain (config.LoadDefaultConfig).
	Credentials awssdk.CredentialsProvider
	// Retryer, when set, replaces the SDK's standard retryer.
	Retryer func() awssdk.Retryer
	// Now is the clock (time.Now by default).
	Now func() time.Time
}

// PortRule is one port of one protocol ("tcp" or "udp").
type PortRule struct {
	Protocol string
	Port     int
}

// ec2API is the part of the ec2 client the provider uses. APICalls lists
// the IAM actions behind it.
type ec2API interface {
	RunInstances(context.Context, *ec2.RunInstancesInput, ...func(*ec2.Options)) (*ec2.RunInstancesOutput, error)
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	TerminateInstances(context.Context, *ec2.TerminateInstancesInput, ...func(*ec2.Options)) (*ec2.TerminateInstancesOutput, error)
	CreateSecurityGroup(context.Context, *ec2.CreateSecurityGroupInput, ...func(*ec2.Options)) (*ec2.CreateSecurityGroupOutput, error)
	AuthorizeSecurityGroupIngress(context.Context, *ec2.AuthorizeSecurityGroupIngressInput, ...func(*ec2.Options)) (*ec2.AuthorizeSecurityGroupIngressOutput, error)
	DescribeSecurityGroups(context.Context, *ec2.DescribeSecurityGroupsInput, ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	DeleteSecurityGroup(context.Context, *ec2.DeleteSecurityGroupInput, ...func(*ec2.Options)) (*ec2.DeleteSecurityGroupOutput, error)
	DescribeSnapshots(context.Context, *ec2.DescribeSnapshotsInput, ...func(*ec2.Options)) (*ec2.DescribeSnapshotsOutput, error)
	CreateSnapshot(context.Context, *ec2.CreateSnapshotInput, ...func(*ec2.Options)) (*ec2.CreateSnapshotOutput, error)
	DeleteSnapshot(context.Context, *ec2.DeleteSnapshotInput, ...func(*ec2.Options)) (*ec2.DeleteSnapshotOutput, error)
	DescribeSubnets(context.Context, *ec2.DescribeSubnetsInput, ...func(*ec2.Options)) (*ec2.DescribeSubnetsOutput, error)
	DescribeVolumes(context.Context, *ec2.DescribeVolumesInput, ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error)
	DeleteVolume(context.Context, *ec2.DeleteVolumeInput, ...func(*ec2.Options)) (*ec2.DeleteVolumeOutput, error)
}

// APICalls are the IAM actions the provider needs, one per ec2API method,
// plus ec2:CreateTags, which EC2 authorizes for TagSpecifications on
// RunInstances, CreateSecurityGroup and CreateSnapshot.
var APICalls = []string{
	"ec2:RunInstances",
	"ec2:CreateTags",
	"ec2:DescribeInstances",
	"ec2:TerminateInstances",
	"ec2:CreateSecurityGroup",
	"ec2:AuthorizeSecurityGroupIngress",
	"ec2:DescribeSecurityGroups",
	"ec2:DeleteSecurityGroup",
	"ec2:DescribeSnapshots",
	"ec2:CreateSnapshot",
	"ec2:DeleteSnapshot",
	"ec2:DescribeSubnets",
	"ec2:DescribeVolumes",
	"ec2:DeleteVolume",
}

// Provider is the AWS cloud.Provider.
type Provider struct {
	o       Options
	regions []string // in the order of Options.Zones
	clients map[string]ec2API
	now     func() time.Time
	locks   keyedLock
}

var _ cloud.Provider = (*Provider)(nil)

// New builds one ec2 client per region of o.Zones and the provider over
// them. It makes no API call.
func New(ctx context.Context, o Options) (*Provider, error) {
	regions, err := checkOptions(&o)
	if err != nil {
		return nil, err
	}
	var cfg awssdk.Config
	if o.Credentials == nil {
		cfg, err = config.LoadDefaultConfig(ctx)
		if err != nil {
			return nil, fmt.Errorf("aws: load the default config: %w", err)
		}
	} else {
		cfg = awssdk.Config{Credentials: o.Credentials}
	}
	if o.Retryer != nil {
		cfg.Retryer = o.Retryer
	} else {
		cfg.Retryer = defaultRetryer
	}
	clients := make(map[string]ec2API, len(regions))
	for _, region := range regions {
		clients[region] = ec2.NewFromConfig(cfg, func(eo *ec2.Options) {
			eo.Region = region
			if o.Endpoint != "" {
				eo.BaseEndpoint = awssdk.String(o.Endpoint)
			}
		})
	}
	return newProvider(o, clients)
}

// defaultRetryer is the SDK's standard retryer (3 attempts, exponential
// backoff, throttling and 5xx retried) except that it does not retry a
// stockout in the same zone: InsufficientInstanceCapacity comes as HTTP 500,
// but trying again at once rarely helps; the engine moves to the next zone.
func defaultRetryer() awssdk.Retryer {
	return retry.NewStandard(func(so *retry.StandardOptions) {
		so.Retryables = append([]retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) awssdk.Ternary {
			if k := kindOf(err); k == cloud.ErrCapacity || k == cloud.ErrQuota {
				return awssdk.FalseTernary
			}
			return awssdk.UnknownTernary
		})}, so.Retryables...)
	})
}

// newProvider is the constructor tests call with stub clients (region → client).
func newProvider(o Options, clients map[string]ec2API) (*Provider, error) {
	regions, err := checkOptions(&o)
	if err != nil {
		return nil, err
	}
	for _, r := range regions {
		if clients[r] == nil {
			return nil, fmt.Errorf("aws: no ec2 client for region %s", r)
		}
	}
	p := &Provider{o: o, regions: regions, clients: clients, now: o.Now}
	if p.now == nil {
		p.now = time.Now
	}
	return p, nil
}

var regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+`)

// RegionOf is the region of a zone: "eu-west-1a" → "eu-west-1" (also for
// Local and Wavelength Zones: "us-west-2-lax-1a" → "us-west-2"); "" when
// zone does not start with a region name. A region maps to itself.
func RegionOf(zone string) string { return regionRE.FindString(zone) }

// checkOptions validates o, fills in defaults and returns the regions.
func checkOptions(o *Options) ([]string, error) {
	if len(o.Zones) == 0 {
		return nil, errors.New("aws: no zones configured")
	}
	var regions []string
	for _, z := range o.Zones {
		r := RegionOf(z)
		if r == "" || r == z {
			return nil, fmt.Errorf("aws: %q is not an availability zone (e.g. eu-west-1a)", z)
		}
		if !slices.Contains(regions, r) {
			regions = append(regions, r)
		}
	}
	for _, r := range regions {
		if o.AMIs[r] == "" {
			return nil, fmt.Errorf("aws: no AMI configured for region %s", r)
		}
	}
	if o.InstanceType == "" {
		return nil, errors.New("aws: no instance type configured")
	}
	if o.VolumeType == "" {
		o.VolumeType = DefaultVolumeType
	}
	if o.VolumeGB < 0 {
		return nil, fmt.Errorf("aws: volume size %d GB", o.VolumeGB)
	}
	if r := o.VolumeInitializationRate; r != 0 && (r < 100 || r > 300) {
		return nil, fmt.Errorf("aws: volume initialization rate %d MiB/s is outside EBS's 100-300", r)
	}
	if o.P2PPorts == nil {
		o.P2PPorts = DefaultP2PPorts
	}
	if o.APIPorts == nil {
		o.APIPorts = DefaultAPIPorts
	}
	for _, pr := range slices.Concat(o.P2PPorts, o.APIPorts) {
		if (pr.Protocol != "tcp" && pr.Protocol != "udp") || pr.Port < 1 || pr.Port > 65535 {
			return nil, fmt.Errorf("aws: bad port rule %s/%d (want tcp or udp, 1-65535)", pr.Protocol, pr.Port)
		}
	}
	for _, c := range o.APISourceRanges {
		p, err := netip.ParsePrefix(c)
		if err != nil || !p.Addr().Is4() || p.Masked() != p {
			return nil, fmt.Errorf("aws: API source range %q is not an IPv4 CIDR block (e.g. 198.51.100.0/24)", c)
		}
	}
	return regions, nil
}

// Name implements cloud.Provider.
func (p *Provider) Name() string { return ProviderName }

// liveStates are the states of an instance that is or may become usable.
var liveStates = []string{"pending", "running", "stopping", "stopped"}

// visibleStates are the states Get and List show ("shutting-down" as
// cloud.StateTerminated).
var visibleStates = append(slices.Clone(liveStates), "shutting-down")

// Ensure implements cloud.Provider: it returns the owned instance named
// spec.Name wherever it is, or launches one in spec.Zone.
func (p *Provider) Ensure(ctx context.Context, spec cloud.StandbySpec) (cloud.Standby, error) {
	if err := ctx.Err(); err != nil {
		return cloud.Standby{}, p.fail("ensure", spec.Zone, err)
	}
	if spec.Name == "" {
		return cloud.Standby{}, p.permanent("ensure", spec.Zone, "standby spec without a name")
	}
	if max := cloud.MaxUserData[ProviderName]; len(spec.UserData) > max {
		return cloud.Standby{}, p.permanent("ensure", spec.Zone, fmt.Sprintf("user data is %d bytes, EC2 takes at most %d (before base64)", len(spec.UserData), max))
	}
	unlock, err := p.locks.lock(ctx, spec.Name)
	if err != nil {
		return cloud.Standby{}, p.fail("ensure", spec.Zone, err)
	}
	defer unlock()

	found, err := p.findByName(ctx, spec.Name, liveStates, false)
	if err != nil {
		return cloud.Standby{}, p.fail("ensure", "", err)
	}
	if in, ok := pick(found, true); ok {
		return p.standby(in.Instance, nil), nil
	}
	if len(found) > 0 {
		return cloud.Standby{}, p.permanent("ensure", found[0].zone(), fmt.Sprintf(
			"instance %s is named %s but is not failoverd's (no %s=%s tag); not adopting it, not launching a second",
			awssdk.ToString(found[0].InstanceId), spec.Name, cloud.LabelManagedBy, cloud.ManagedByValue))
	}
	if spec.Zone == "" {
		return cloud.Standby{}, p.permanent("ensure", "", "standby spec without a zone")
	}
	region := RegionOf(spec.Zone)
	if p.clients[region] == nil {
		return cloud.Standby{}, p.permanent("ensure", spec.Zone, fmt.Sprintf("zone %s is in region %q, which is not configured (configured: %s)", spec.Zone, region, strings.Join(p.regions, ", ")))
	}
	return p.launch(ctx, region, spec)
}

// found is an instance and the region it was found in.
type found struct {
	types.Instance
	region string
}

func (f found) zone() string {
	if f.Placement != nil {
		return awssdk.ToString(f.Placement.AvailabilityZone)
	}
	return ""
}

// findByName returns the instances tagged Name=name in the given states in
// every region; ownedOnly adds the managed-by=failoverd filter.
func (p *Provider) findByName(ctx context.Context, name string, states []string, ownedOnly bool) ([]found, error) {
	fs := []types.Filter{
		{Name: awssdk.String("tag:" + TagName), Values: []string{name}},
		{Name: awssdk.String("instance-state-name"), Values: states},
	}
	if ownedOnly {
		fs = append(fs, types.Filter{Name: awssdk.String("tag:" + cloud.LabelManagedBy), Values: []string{cloud.ManagedByValue}})
	}
	var out []found
	for _, region := range p.regions {
		ins, err := p.describeInstances(ctx, region, &ec2.DescribeInstancesInput{Filters: fs})
		if err != nil {
			return nil, err
		}
		for _, in := range ins {
			out = append(out, found{in, region})
		}
	}
	return out, nil
}

func (p *Provider) describeInstances(ctx context.Context, region string, in *ec2.DescribeInstancesInput) ([]types.Instance, error) {
	var out []types.Instance
	pg := ec2.NewDescribeInstancesPaginator(p.clients[region], in)
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe instances in %s: %w", region, err)
		}
		for _, r := range page.Reservations {
			out = append(out, r.Instances...)
		}
	}
	return out, nil
}

// pick chooses among instances found by name: owned ones only (when
// ownedOnly), live before shutting-down, then the oldest.
func pick(l []found, ownedOnly bool) (found, bool) {
	var c []found
	for _, f := range l {
		if !ownedOnly || owned(f.Tags) {
			c = append(c, f)
		}
	}
	if len(c) == 0 {
		return found{}, false
	}
	sort.SliceStable(c, func(i, j int) bool {
		li, lj := isLive(c[i].Instance), isLive(c[j].Instance)
		if li != lj {
			return li
		}
		return createdAt(c[i].Instance).Before(createdAt(c[j].Instance))
	})
	return c[0], true
}

func owned(tags []types.Tag) bool {
	for _, t := range tags {
		if awssdk.ToString(t.Key) == cloud.LabelManagedBy && awssdk.ToString(t.Value) == cloud.ManagedByValue {
			return true
		}
	}
	return false
}

func stateName(in types.Instance) string {
	if in.State == nil {
		return ""
	}
	return string(in.State.Name)
}

func isLive(in types.Instance) bool { return slices.Contains(liveStates, stateName(in)) }

// maxTokenHops bounds how many dead instances a launch steps over (see launch).
const maxTokenHops = 8

// launch creates the security group and runs the instance.
func (p *Provider) launch(ctx context.Context, region string, spec cloud.StandbySpec) (cloud.Standby, error) {
	c := p.clients[region]
	zone := spec.Zone
	subnetID, vpcID, err := p.subnet(ctx, c, zone)
	if err != nil {
		return cloud.Standby{}, p.fail("ensure", zone, err)
	}
	sgID, err := p.ensureSecurityGroup(ctx, c, vpcID, spec)
	if err != nil {
		return cloud.Standby{}, p.fail("ensure", zone, err)
	}
	snap, err := p.snapshot(ctx, c, spec)
	if err != nil {
		return cloud.Standby{}, p.fail("ensure", zone, err)
	}
	in, tags, err := p.runInput(spec, subnetID, sgID, snap)
	if err != nil {
		return cloud.Standby{}, p.fail("ensure", zone, err)
	}

	// The token is derived from the incident, so a retry (the SDK's, the
	// engine's, or a restarted failoverd's) gets the first launch back. A
	// token whose instance has died (a reclaimed spot instance, a manual
	// terminate) keeps answering with the dead instance; the next token is
	// derived from the dead instance's ID, which every retry sees the same.
	token := clientToken(spec.IncidentID, spec.Name, zone)
	for range maxTokenHops {
		if err := ctx.Err(); err != nil {
			return cloud.Standby{}, p.fail("ensure", zone, err)
		}
		in.ClientToken = awssdk.String(token)
		out, err := c.RunInstances(ctx, in)
		if apiCode(err) == "IdempotentParameterMismatch" {
			st, next, err := p.afterMismatch(ctx, region, spec, token, err)
			if next != "" {
				token = next
				continue
			}
			return st, err
		}
		if err != nil {
			return cloud.Standby{}, p.fail("ensure", zone, launchError(err))
		}
		if len(out.Instances) != 1 {
			return cloud.Standby{}, p.permanent("ensure", zone, fmt.Sprintf("RunInstances returned %d instances, want 1 (reservation %s)", len(out.Instances), awssdk.ToString(out.ReservationId)))
		}
		inst := out.Instances[0]
		if st := stateName(inst); st == "shutting-down" || st == "terminated" {
			token = nextToken(token, awssdk.ToString(inst.InstanceId))
			continue
		}
		return p.standby(inst, tags), nil
	}
	return cloud.Standby{}, p.permanent("ensure", zone, fmt.Sprintf("%d instances launched for %s died; not launching another", maxTokenHops, spec.Name))
}

// afterMismatch handles IdempotentParameterMismatch: an instance was
// launched for this token with other parameters (the config, the chosen
// snapshot or the security group changed between attempts). A live owned
// instance of that name is returned. If every instance launched with the
// token is dead (shutting-down or terminated), the launch moves on to the
// next token in the chain (next != ""), as for a dead instance returned by
// RunInstances. Anything else stops with ErrPermanent: never a second
// instance next to one we cannot see.
func (p *Provider) afterMismatch(ctx context.Context, region string, spec cloud.StandbySpec, token string, cause error) (st cloud.Standby, next string, err error) {
	l, err := p.findByName(ctx, spec.Name, liveStates, false)
	if err != nil {
		return cloud.Standby{}, "", p.fail("ensure", spec.Zone, err)
	}
	if f, ok := pick(l, true); ok {
		return p.standby(f.Instance, nil), "", nil
	}
	byToken, err := p.describeInstances(ctx, region, &ec2.DescribeInstancesInput{Filters: []types.Filter{
		{Name: awssdk.String("client-token"), Values: []string{token}},
	}})
	if err != nil {
		return cloud.Standby{}, "", p.fail("ensure", spec.Zone, err)
	}
	dead := ""
	for _, in := range byToken {
		if isLive(in) {
			dead = ""
			break
		}
		dead = awssdk.ToString(in.InstanceId)
	}
	if dead != "" {
		return cloud.Standby{}, nextToken(token, dead), nil
	}
	return cloud.Standby{}, "", &cloud.Error{Provider: ProviderName, Op: "ensure", Zone: spec.Zone, Kind: cloud.ErrPermanent, Err: fmt.Errorf(
		"an instance was already launched for client token %s (incident %s, standby %s, zone %s) with other parameters, and it is neither a live failoverd instance named %s nor visibly dead; not launching a second (look for instances with client token %s): %w",
		token, spec.IncidentID, spec.Name, spec.Zone, spec.Name, token, cause)}
}

// launchError refines not-found errors of the launch calls: a security
// group just created may not be visible yet (EC2 is eventually consistent)
// and a snapshot may have been deleted since it was chosen: try again; any
// other missing resource (subnet, AMI) is a configuration error.
func launchError(err error) error {
	switch code := apiCode(err); {
	case code == "InvalidGroup.NotFound", code == "InvalidSnapshot.NotFound":
		return &kindError{cloud.ErrTransient, err}
	case strings.HasSuffix(code, ".NotFound"), strings.HasSuffix(code, ".Malformed"):
		return &kindError{cloud.ErrPermanent, err}
	}
	return err
}

// kindError forces the kind of an error for fail.
type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string { return e.err.Error() }
func (e *kindError) Unwrap() error { return e.err }

// runInput builds the RunInstances request (without its client token) and
// the tags it puts on the instance.
func (p *Provider) runInput(spec cloud.StandbySpec, subnetID, sgID string, snap *types.Snapshot) (*ec2.RunInstancesInput, map[string]string, error) {
	region := RegionOf(spec.Zone)
	tags := cloud.OwnershipLabels(spec)
	tags[TagName] = spec.Name
	for k := range tags {
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			return nil, nil, &kindError{cloud.ErrPermanent, fmt.Errorf("label %q: EC2 reserves tag keys starting with aws:", k)}
		}
	}
	ebs := &types.EbsBlockDevice{
		DeleteOnTermination: awssdk.Bool(true),
		VolumeType:          types.VolumeType(p.o.VolumeType),
	}
	size := p.o.VolumeGB
	if size == 0 {
		size = spec.Placement.DiskGB
	}
	if snap != nil {
		ebs.SnapshotId = snap.SnapshotId
		if s := int(awssdk.ToInt32(snap.VolumeSize)); size < s {
			size = s // a restored volume is at least the snapshot's size
		}
		if r := p.o.VolumeInitializationRate; r > 0 {
			ebs.VolumeInitializationRate = awssdk.Int32(int32(r))
		}
	}
	if size == 0 {
		return nil, nil, &kindError{cloud.ErrPermanent, errors.New("no data volume size: set the provider's VolumeGB or the placement's diskGB")}
	}
	ebs.VolumeSize = awssdk.Int32(int32(size))

	in := &ec2.RunInstancesInput{
		ImageId:          awssdk.String(p.o.AMIs[region]),
		InstanceType:     types.InstanceType(p.o.InstanceType),
		MinCount:         awssdk.Int32(1),
		MaxCount:         awssdk.Int32(1),
		SubnetId:         awssdk.String(subnetID),
		SecurityGroupIds: []string{sgID},
		Placement:        &types.Placement{AvailabilityZone: awssdk.String(spec.Zone)},
		BlockDeviceMappings: []types.BlockDeviceMapping{{
			DeviceName: awssdk.String(DataDevice),
			Ebs:        ebs,
		}},
		MetadataOptions: &types.InstanceMetadataOptionsRequest{
			HttpTokens:   types.HttpTokensStateRequired, // IMDSv2 only
			HttpEndpoint: types.InstanceMetadataEndpointStateEnabled,
		},
		TagSpecifications: []types.TagSpecification{
			{ResourceType: types.ResourceTypeInstance, Tags: ec2Tags(tags)},
			{ResourceType: types.ResourceTypeVolume, Tags: ec2Tags(tags)},
		},
	}
	if len(spec.UserData) > 0 {
		in.UserData = awssdk.String(base64.StdEncoding.EncodeToString(spec.UserData))
	}
	if p.o.Spot || spec.Placement.Spot {
		in.InstanceMarketOptions = &types.InstanceMarketOptionsRequest{
			MarketType: types.MarketTypeSpot,
			SpotOptions: &types.SpotMarketOptions{
				SpotInstanceType:             types.SpotInstanceTypeOneTime,
				InstanceInterruptionBehavior: types.InstanceInterruptionBehaviorTerminate,
			},
		}
	}
	return in, tags, nil
}

// ec2Tags turns a map into tags sorted by key, so the same spec always
// makes the same request (ClientToken idempotency compares parameters).
func ec2Tags(m map[string]string) []types.Tag {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]types.Tag, len(keys))
	for i, k := range keys {
		out[i] = types.Tag{Key: awssdk.String(k), Value: awssdk.String(m[k])}
	}
	return out
}

func tagMap(tags []types.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		m[awssdk.ToString(t.Key)] = awssdk.ToString(t.Value)
	}
	return m
}

// subnet returns the subnet to launch in for zone and its VPC.
func (p *Provider) subnet(ctx context.Context, c ec2API, zone string) (subnetID, vpcID string, err error) {
	in := &ec2.DescribeSubnetsInput{}
	if id := p.o.Subnets[zone]; id != "" {
		in.SubnetIds = []string{id}
	} else {
		in.Filters = []types.Filter{
			{Name: awssdk.String("availability-zone"), Values: []string{zone}},
			{Name: awssdk.String("default-for-az"), Values: []string{"true"}},
		}
	}
	out, err := c.DescribeSubnets(ctx, in)
	if err != nil {
		if strings.HasSuffix(apiCode(err), ".NotFound") {
			return "", "", &kindError{cloud.ErrPermanent, fmt.Errorf("subnet %s configured for %s: %w", p.o.Subnets[zone], zone, err)}
		}
		return "", "", fmt.Errorf("describe subnets: %w", err)
	}
	if len(out.Subnets) == 0 {
		return "", "", &kindError{cloud.ErrPermanent, fmt.Errorf("zone %s has no default subnet (no default VPC?); configure a subnet for it", zone)}
	}
	sn := out.Subnets[0]
	if z := awssdk.ToString(sn.AvailabilityZone); z != zone {
		return "", "", &kindError{cloud.ErrPermanent, fmt.Errorf("subnet %s configured for %s is in %s", awssdk.ToString(sn.SubnetId), zone, z)}
	}
	return awssdk.ToString(sn.SubnetId), awssdk.ToString(sn.VpcId), nil
}

// snapshot picks the newest completed snapshot of the account whose tags
// match SnapshotTags and failoverd-validator; nil when none is configured
// or none matches.
func (p *Provider) snapshot(ctx context.Context, c ec2API, spec cloud.StandbySpec) (*types.Snapshot, error) {
	if len(p.o.SnapshotTags) == 0 {
		return nil, nil
	}
	want := make(map[string]string, len(p.o.SnapshotTags)+1)
	for k, v := range p.o.SnapshotTags {
		want[k] = v
	}
	want[cloud.LabelValidator] = cloud.LabelValue(spec.Validator)
	fs := []types.Filter{{Name: awssdk.String("status"), Values: []string{"completed"}}}
	for _, t := range ec2Tags(want) {
		fs = append(fs, types.Filter{Name: awssdk.String("tag:" + awssdk.ToString(t.Key)), Values: []string{awssdk.ToString(t.Value)}})
	}
	var best *types.Snapshot
	pg := ec2.NewDescribeSnapshotsPaginator(c, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: fs})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe snapshots: %w", err)
		}
		for i := range page.Snapshots {
			s := page.Snapshots[i]
			if s.State != types.SnapshotStateCompleted {
				continue
			}
			if best == nil || awssdk.ToTime(s.StartTime).After(awssdk.ToTime(best.StartTime)) ||
				(awssdk.ToTime(s.StartTime).Equal(awssdk.ToTime(best.StartTime)) && awssdk.ToString(s.SnapshotId) > awssdk.ToString(best.SnapshotId)) {
				best = &s
			}
		}
	}
	return best, nil
}

// standby is the cloud view of an instance. When the instance carries no
// tags (RunInstances answers need not echo them), requested are used.
func (p *Provider) standby(in types.Instance, requested map[string]string) cloud.Standby {
	labels := tagMap(in.Tags)
	if len(labels) == 0 && requested != nil {
		labels = make(map[string]string, len(requested))
		for k, v := range requested {
			labels[k] = v
		}
	}
	name := labels[TagName]
	delete(labels, TagName)
	for k := range labels {
		if strings.HasPrefix(k, "aws:") {
			delete(labels, k)
		}
	}
	s := cloud.Standby{
		Name:      name,
		Provider:  ProviderName,
		State:     standbyState(stateName(in)),
		Labels:    labels,
		CreatedAt: createdAt(in),
		Address:   awssdk.ToString(in.PublicIpAddress),
	}
	if in.Placement != nil {
		s.Zone = awssdk.ToString(in.Placement.AvailabilityZone)
	}
	if s.Address == "" {
		s.Address = awssdk.ToString(in.PrivateIpAddress)
	}
	return s
}

func standbyState(ec2State string) string {
	switch ec2State {
	case "pending":
		return cloud.StatePending
	case "running":
		return cloud.StateRunning
	case "stopping", "stopped":
		return cloud.StateStopping
	case "shutting-down", "terminated":
		return cloud.StateTerminated
	}
	return ec2State
}

// createdAt is when the instance was first launched. LaunchTime moves when
// a stopped instance is started again; the primary network interface's
// attach time does not, so it is preferred.
func createdAt(in types.Instance) time.Time {
	for _, ni := range in.NetworkInterfaces {
		if a := ni.Attachment; a != nil && awssdk.ToInt32(a.DeviceIndex) == 0 && a.AttachTime != nil {
			return a.AttachTime.UTC()
		}
	}
	return awssdk.ToTime(in.LaunchTime).UTC()
}

// Get implements cloud.Provider.
func (p *Provider) Get(ctx context.Context, name string) (cloud.Standby, error) {
	if err := ctx.Err(); err != nil {
		return cloud.Standby{}, p.fail("get", "", err)
	}
	l, err := p.findByName(ctx, name, visibleStates, true)
	if err != nil {
		return cloud.Standby{}, p.fail("get", "", err)
	}
	f, ok := pick(l, true)
	if !ok {
		return cloud.Standby{}, &cloud.Error{Provider: ProviderName, Op: "get", Kind: cloud.ErrNotFound, Err: fmt.Errorf("no failoverd instance named %s", name)}
	}
	return p.standby(f.Instance, nil), nil
}

// List implements cloud.Provider: every owned instance not yet terminated
// in every configured region (shutting-down ones as cloud.StateTerminated).
func (p *Provider) List(ctx context.Context) ([]cloud.Standby, error) {
	if err := ctx.Err(); err != nil {
		return nil, p.fail("list", "", err)
	}
	out := []cloud.Standby{}
	for _, region := range p.regions {
		ins, err := p.describeInstances(ctx, region, &ec2.DescribeInstancesInput{Filters: ownedFilters(visibleStates)})
		if err != nil {
			return nil, p.fail("list", "", err)
		}
		for _, in := range ins {
			if owned(in.Tags) {
				out = append(out, p.standby(in, nil))
			}
		}
	}
	return out, nil
}

func ownedFilters(states []string) []types.Filter {
	fs := []types.Filter{{Name: awssdk.String("tag:" + cloud.LabelManagedBy), Values: []string{cloud.ManagedByValue}}}
	if states != nil {
		fs = append(fs, types.Filter{Name: awssdk.String("instance-state-name"), Values: states})
	}
	return fs
}

// Delete implements cloud.Provider: it terminates the owned instances named
// name (an absent one counts as deleted) and then deletes their security
// group. A group still held by an instance that is shutting down answers
// DependencyViolation; it is left for the garbage collector
// (ListOwnedResources), and Delete still succeeds.
func (p *Provider) Delete(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return p.fail("delete", "", err)
	}
	unlock, err := p.locks.lock(ctx, name)
	if err != nil {
		return p.fail("delete", "", err)
	}
	defer unlock()
	l, err := p.findByName(ctx, name, visibleStates, true)
	if err != nil {
		return p.fail("delete", "", err)
	}
	byRegion := map[string][]string{}
	for _, f := range l {
		if !owned(f.Tags) || !isLive(f.Instance) {
			continue
		}
		byRegion[f.region] = append(byRegion[f.region], awssdk.ToString(f.InstanceId))
	}
	for _, region := range p.regions {
		if ids := byRegion[region]; len(ids) > 0 {
			if err := p.terminate(ctx, region, ids); err != nil {
				return p.fail("delete", "", err)
			}
		}
	}
	for _, region := range p.regions {
		if err := p.deleteGroups(ctx, region, name); err != nil {
			return p.fail("delete", "", err)
		}
	}
	return nil
}

func (p *Provider) terminate(ctx context.Context, region string, ids []string) error {
	_, err := p.clients[region].TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: ids})
	if err == nil || apiCode(err) == "InvalidInstanceID.NotFound" {
		return nil
	}
	if len(ids) > 1 {
		// One unknown ID fails the whole call; terminate one by one.
		for _, id := range ids {
			if err := p.terminate(ctx, region, []string{id}); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("terminate %s in %s: %w", ids[0], region, err)
}

// deleteGroups deletes the owned security groups of standby name in region.
func (p *Provider) deleteGroups(ctx context.Context, region, name string) error {
	gs, err := p.groups(ctx, region, &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{
		{Name: awssdk.String("group-name"), Values: []string{SecurityGroupPrefix + name}},
		{Name: awssdk.String("tag:" + cloud.LabelManagedBy), Values: []string{cloud.ManagedByValue}},
	}})
	if err != nil {
		return err
	}
	for _, g := range gs {
		if !owned(g.Tags) {
			continue
		}
		err := p.deleteGroup(ctx, region, awssdk.ToString(g.GroupId))
		if err != nil && apiCode(err) != "DependencyViolation" {
			return err
		}
	}
	return nil
}

func (p *Provider) deleteGroup(ctx context.Context, region, id string) error {
	_, err := p.clients[region].DeleteSecurityGroup(ctx, &ec2.DeleteSecurityGroupInput{GroupId: awssdk.String(id)})
	if err == nil || apiCode(err) == "InvalidGroup.NotFound" {
		return nil
	}
	return fmt.Errorf("delete security group %s in %s: %w", id, region, err)
}

func (p *Provider) groups(ctx context.Context, region string, in *ec2.DescribeSecurityGroupsInput) ([]types.SecurityGroup, error) {
	var out []types.SecurityGroup
	pg := ec2.NewDescribeSecurityGroupsPaginator(p.clients[region], in)
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe security groups in %s: %w", region, err)
		}
		out = append(out, page.SecurityGroups...)
	}
	return out, nil
}

// keyedLock serializes Ensure and Delete per standby name within this
// process (across processes the ClientToken does it).
type keyedLock struct {
	mu sync.Mutex
	m  map[string]chan struct{}
}

func (k *keyedLock) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]chan struct{}{}
	}
	ch, ok := k.m[key]
	if !ok {
		ch = make(chan struct{}, 1)
		k.m[key] = ch
	}
	k.mu.Unlock()
	select {
	case ch <- struct{}{}:
		return func() { <-ch }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
