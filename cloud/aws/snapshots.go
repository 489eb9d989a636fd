package aws

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/failoverd/failoverd/cloud"
)

// Snapshot tags besides the ownership tags.
const (
	// TagRole tells failoverd's resources apart; chain-data snapshots
	// carry RoleChainDataSnapshot.
	TagRole               = "failoverd-role"
	RoleChainDataSnapshot = "chain-data-snapshot"
)

var _ cloud.Snapshotter = (*Provider)(nil)

// SnapshotData implements cloud.Snapshotter: CreateSnapshot of the
// standby's data volume (the EBS volume on DataDevice), tagged with
// TagSpecifications: labels, managed-by=failoverd, failoverd-validator (from
// the instance), failoverd-role=chain-data-snapshot and Name=snapshotName.
//
// CreateSnapshot has no ClientToken, so idempotency is by the Name tag: an
// owned snapshot tagged Name=snapshotName in any configured region is
// returned as it is (also after the standby is gone), and calls for one
// name are serialized within the process. Tags are applied atomically with
// the create, so a snapshot whose answer was lost is found by the next call.
// An owned snapshot of that name in state error is ErrPermanent.
func (p *Provider) SnapshotData(ctx context.Context, standbyName, snapshotName string, labels map[string]string) (cloud.Snapshot, error) {
	const op = "snapshot"
	if err := ctx.Err(); err != nil {
		return cloud.Snapshot{}, p.fail(op, "", err)
	}
	if snapshotName == "" || len(snapshotName) > 255 {
		return cloud.Snapshot{}, p.permanent(op, "", fmt.Sprintf("invalid snapshot name %q", snapshotName))
	}
	unlock, err := p.locks.lock(ctx, "snapshot\x00"+snapshotName)
	if err != nil {
		return cloud.Snapshot{}, p.fail(op, "", err)
	}
	defer unlock()

	existing, err := p.snapshotsNamed(ctx, snapshotName)
	if err != nil {
		return cloud.Snapshot{}, p.fail(op, "", err)
	}
	if len(existing) > 0 {
		s := existing[0]
		if s.State == types.SnapshotStateError {
			return cloud.Snapshot{}, p.permanent(op, "", fmt.Sprintf("snapshot %s (%s) is in state error (%s); delete it and take a new one under another name",
				snapshotName, awssdk.ToString(s.SnapshotId), awssdk.ToString(s.StateMessage)))
		}
		return s.snapshot(), nil
	}

	found, err := p.findByName(ctx, standbyName, liveStates, true)
	if err != nil {
		return cloud.Snapshot{}, p.fail(op, "", err)
	}
	in, ok := pick(found, true)
	if !ok {
		return cloud.Snapshot{}, &cloud.Error{Provider: ProviderName, Op: op, Kind: cloud.ErrNotFound, Err: fmt.Errorf("no failoverd instance named %s", standbyName)}
	}
	zone := in.zone()
	volumeID := ""
	for _, bd := range in.BlockDeviceMappings {
		if awssdk.ToString(bd.DeviceName) == DataDevice && bd.Ebs != nil {
			volumeID = awssdk.ToString(bd.Ebs.VolumeId)
		}
	}
	if volumeID == "" {
		return cloud.Snapshot{}, p.permanent(op, zone, fmt.Sprintf("instance %s (%s) has no data volume on %s", standbyName, awssdk.ToString(in.InstanceId), DataDevice))
	}
	tags := maps.Clone(labels)
	if tags == nil {
		tags = map[string]string{}
	}
	tags[cloud.LabelManagedBy] = cloud.ManagedByValue
	tags[cloud.LabelValidator] = tagMap(in.Tags)[cloud.LabelValidator]
	tags[TagRole] = RoleChainDataSnapshot
	tags[TagName] = snapshotName
	for k := range tags {
		if strings.HasPrefix(strings.ToLower(k), "aws:") {
			return cloud.Snapshot{}, p.permanent(op, zone, fmt.Sprintf("label %q: EC2 reserves tag keys starting with aws:", k))
		}
	}
	out, err := p.clients[in.region].CreateSnapshot(ctx, &ec2.CreateSnapshotInput{
		VolumeId:          awssdk.String(volumeID),
		Description:       awssdk.String(fmt.Sprintf("failoverd chain-data snapshot of %s (validator %s)", standbyName, tags[cloud.LabelValidator])),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSnapshot, Tags: ec2Tags(tags)}},
	})
	if err != nil {
		if apiCode(err) == "InvalidVolume.NotFound" {
			return cloud.Snapshot{}, &cloud.Error{Provider: ProviderName, Op: op, Zone: zone, Kind: cloud.ErrTransient,
				Err: fmt.Errorf("data volume %s of %s: %w", volumeID, standbyName, err)}
		}
		return cloud.Snapshot{}, p.fail(op, zone, fmt.Errorf("create snapshot of %s: %w", volumeID, err))
	}
	s := regionSnapshot{Snapshot: types.Snapshot{
		SnapshotId: out.SnapshotId, VolumeId: out.VolumeId, State: out.State, StartTime: out.StartTime,
		VolumeSize: out.VolumeSize, OwnerId: out.OwnerId, Tags: out.Tags, StateMessage: out.StateMessage,
	}, region: in.region}
	if len(s.Tags) == 0 {
		s.Tags = ec2Tags(tags) // answers need not echo the tags
	}
	return s.snapshot(), nil
}

// Snapshots implements cloud.Snapshotter: owned chain-data snapshots of
// the validator in every configured region (DescribeSnapshots Owner=self,
// filtered by tags), newest first. Snapshots in state error are listed
// (not Ready) so the keeper prunes them.
func (p *Provider) Snapshots(ctx context.Context, validator string) ([]cloud.Snapshot, error) {
	const op = "list-snapshots"
	if err := ctx.Err(); err != nil {
		return nil, p.fail(op, "", err)
	}
	l, err := p.describeOwnedSnapshots(ctx, []types.Filter{
		{Name: awssdk.String("tag:" + cloud.LabelValidator), Values: []string{cloud.LabelValue(validator)}},
		{Name: awssdk.String("tag:" + TagRole), Values: []string{RoleChainDataSnapshot}},
	})
	if err != nil {
		return nil, p.fail(op, "", err)
	}
	out := []cloud.Snapshot{}
	for _, s := range l {
		t := tagMap(s.Tags)
		if t[cloud.LabelValidator] != cloud.LabelValue(validator) || t[TagRole] != RoleChainDataSnapshot {
			continue
		}
		out = append(out, s.snapshot())
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].Name > out[j].Name
	})
	return out, nil
}

// DeleteSnapshot implements cloud.Snapshotter: DeleteSnapshot of every
// owned snapshot tagged Name=name in the configured regions
// (InvalidSnapshot.NotFound counts as deleted). When only unowned snapshots
// carry that name, it answers ErrPermanent and touches none.
func (p *Provider) DeleteSnapshot(ctx context.Context, name string) error {
	const op = "delete-snapshot"
	if err := ctx.Err(); err != nil {
		return p.fail(op, "", err)
	}
	unlock, err := p.locks.lock(ctx, "snapshot\x00"+name)
	if err != nil {
		return p.fail(op, "", err)
	}
	defer unlock()
	var all []regionSnapshot
	for _, region := range p.regions {
		l, err := p.describeSnapshots(ctx, region, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: []types.Filter{
			{Name: awssdk.String("tag:" + TagName), Values: []string{name}},
		}})
		if err != nil {
			return p.fail(op, "", err)
		}
		all = append(all, l...)
	}
	deleted := 0
	for _, s := range all {
		if !owned(s.Tags) || tagMap(s.Tags)[TagName] != name {
			continue
		}
		_, err := p.clients[s.region].DeleteSnapshot(ctx, &ec2.DeleteSnapshotInput{SnapshotId: s.SnapshotId})
		if err != nil && apiCode(err) != "InvalidSnapshot.NotFound" {
			return p.fail(op, s.region, fmt.Errorf("delete snapshot %s (%s) in %s: %w", name, awssdk.ToString(s.SnapshotId), s.region, err))
		}
		deleted++
	}
	if deleted == 0 && len(all) > 0 {
		return p.permanent(op, "", fmt.Sprintf("snapshot %s (%s) is not failoverd's (no %s=%s tag); not deleting it",
			name, awssdk.ToString(all[0].SnapshotId), cloud.LabelManagedBy, cloud.ManagedByValue))
	}
	return nil
}

// regionSnapshot is a snapshot and the region it is in.
type regionSnapshot struct {
	types.Snapshot
	region string
}

func (s regionSnapshot) snapshot() cloud.Snapshot {
	t := tagMap(s.Tags)
	name := t[TagName]
	delete(t, TagName)
	for k := range t {
		if strings.HasPrefix(k, "aws:") {
			delete(t, k)
		}
	}
	return cloud.Snapshot{
		Provider:  ProviderName,
		Name:      name,
		ID:        awssdk.ToString(s.SnapshotId),
		Location:  s.region,
		Validator: t[cloud.LabelValidator],
		SizeGB:    int(awssdk.ToInt32(s.VolumeSize)),
		Ready:     s.State == types.SnapshotStateCompleted,
		CreatedAt: awssdk.ToTime(s.StartTime).UTC(),
		Labels:    t,
	}
}

// snapshotsNamed returns the owned snapshots tagged Name=name in every
// configured region, those not in state error first, then the oldest.
func (p *Provider) snapshotsNamed(ctx context.Context, name string) ([]regionSnapshot, error) {
	l, err := p.describeOwnedSnapshots(ctx, []types.Filter{{Name: awssdk.String("tag:" + TagName), Values: []string{name}}})
	if err != nil {
		return nil, err
	}
	var out []regionSnapshot
	for _, s := range l {
		if tagMap(s.Tags)[TagName] == name {
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		ei, ej := out[i].State == types.SnapshotStateError, out[j].State == types.SnapshotStateError
		if ei != ej {
			return ej
		}
		return awssdk.ToTime(out[i].StartTime).Before(awssdk.ToTime(out[j].StartTime))
	})
	return out, nil
}

// describeOwnedSnapshots lists the account's snapshots tagged
// managed-by=failoverd (and matching extra) in every configured region;
// ownership is checked again here.
func (p *Provider) describeOwnedSnapshots(ctx context.Context, extra []types.Filter) ([]regionSnapshot, error) {
	fs := append([]types.Filter{{Name: awssdk.String("tag:" + cloud.LabelManagedBy), Values: []string{cloud.ManagedByValue}}}, extra...)
	var out []regionSnapshot
	for _, region := range p.regions {
		l, err := p.describeSnapshots(ctx, region, &ec2.DescribeSnapshotsInput{OwnerIds: []string{"self"}, Filters: fs})
		if err != nil {
			return nil, err
		}
		for _, s := range l {
			if owned(s.Tags) {
				out = append(out, s)
			}
		}
	}
	return out, nil
}

func (p *Provider) describeSnapshots(ctx context.Context, region string, in *ec2.DescribeSnapshotsInput) ([]regionSnapshot, error) {
	var out []regionSnapshot
	pg := ec2.NewDescribeSnapshotsPaginator(p.clients[region], in)
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("describe snapshots in %s: %w", region, err)
		}
		for _, s := range page.Snapshots {
			out = append(out, regionSnapshot{s, region})
		}
	}
	return out, nil
}
