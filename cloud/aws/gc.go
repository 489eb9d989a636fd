package aws

import (
	"context"
	"fmt"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/failoverd/failoverd/cloud"
)

// Resource kinds ListOwnedResources reports.
const (
	KindInstance      = "instance"
	KindSecurityGroup = "security-group"
	KindVolume        = "volume"
)

// Resource is one failoverd-owned AWS resource, for the garbage collector.
type Resource struct {
	Kind string
	// Name is the standby the resource belongs to (its Name tag; for a
	// security group without one, the group name).
	Name string
	ID   string
	// Zone is the availability zone of an instance or volume, the region
	// of a security group (they are regional).
	Zone string
	Tags map[string]string
	// CreatedAt: an instance's first launch, a volume's creation, a
	// security group's failoverd-created-at tag. Zero when unknown (a group
	// without the tag): the collector should then count its grace period
	// from when it first saw the resource.
	CreatedAt time.Time
}

// ListOwnedResources lists, in every configured region, the owned
// instances that are not terminated or shutting down, the owned security
// groups and the owned volumes that are attached to nothing.
func (p *Provider) ListOwnedResources(ctx context.Context) ([]Resource, error) {
	if err := ctx.Err(); err != nil {
		return nil, p.fail("list-resources", "", err)
	}
	var out []Resource
	for _, region := range p.regions {
		c := p.clients[region]
		ins, err := p.describeInstances(ctx, region, &ec2.DescribeInstancesInput{Filters: ownedFilters(liveStates)})
		if err != nil {
			return nil, p.fail("list-resources", "", err)
		}
		for _, in := range ins {
			if !owned(in.Tags) {
				continue
			}
			tags := tagMap(in.Tags)
			r := Resource{Kind: KindInstance, Name: tags[TagName], ID: awssdk.ToString(in.InstanceId), Tags: tags, CreatedAt: createdAt(in)}
			if in.Placement != nil {
				r.Zone = awssdk.ToString(in.Placement.AvailabilityZone)
			}
			out = append(out, r)
		}
		gs, err := p.groups(ctx, region, &ec2.DescribeSecurityGroupsInput{Filters: ownedFilters(nil)})
		if err != nil {
			return nil, p.fail("list-resources", "", err)
		}
		for _, g := range gs {
			if !owned(g.Tags) {
				continue
			}
			tags := tagMap(g.Tags)
			name := tags[TagName]
			if name == "" {
				name = awssdk.ToString(g.GroupName)
			}
			created, _ := time.Parse(time.RFC3339, tags[TagCreatedAt])
			out = append(out, Resource{Kind: KindSecurityGroup, Name: name, ID: awssdk.ToString(g.GroupId), Zone: region, Tags: tags, CreatedAt: created})
		}
		pg := ec2.NewDescribeVolumesPaginator(c, &ec2.DescribeVolumesInput{Filters: []types.Filter{
			{Name: awssdk.String("tag:" + cloud.LabelManagedBy), Values: []string{cloud.ManagedByValue}},
			{Name: awssdk.String("status"), Values: []string{"available"}},
		}})
		for pg.HasMorePages() {
			page, err := pg.NextPage(ctx)
			if err != nil {
				return nil, p.fail("list-resources", "", fmt.Errorf("describe volumes in %s: %w", region, err))
			}
			for _, v := range page.Volumes {
				if !owned(v.Tags) || len(v.Attachments) > 0 {
					continue
				}
				tags := tagMap(v.Tags)
				out = append(out, Resource{Kind: KindVolume, Name: tags[TagName], ID: awssdk.ToString(v.VolumeId), Zone: awssdk.ToString(v.AvailabilityZone), Tags: tags, CreatedAt: awssdk.ToTime(v.CreateTime).UTC()})
			}
		}
	}
	return out, nil
}

// DeleteResource deletes one resource ListOwnedResources returned. It looks
// the resource up again first and refuses (ErrPermanent) one that is not
// failoverd's; one that is gone counts as deleted. A security group still
// held by an instance, or a volume attached again, answers ErrTransient:
// try again later.
func (p *Provider) DeleteResource(ctx context.Context, r Resource) error {
	if err := ctx.Err(); err != nil {
		return p.fail("delete-resource", r.Zone, err)
	}
	region := RegionOf(r.Zone)
	c := p.clients[region]
	if c == nil {
		return p.permanent("delete-resource", r.Zone, fmt.Sprintf("%s %s: region %q is not configured", r.Kind, r.ID, region))
	}
	notOurs := func() error {
		return p.permanent("delete-resource", r.Zone, fmt.Sprintf("%s %s is not failoverd's (no %s=%s tag); not touching it", r.Kind, r.ID, cloud.LabelManagedBy, cloud.ManagedByValue))
	}
	switch r.Kind {
	case KindInstance:
		out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{r.ID}})
		if apiCode(err) == "InvalidInstanceID.NotFound" {
			return nil
		}
		if err != nil {
			return p.fail("delete-resource", r.Zone, err)
		}
		for _, res := range out.Reservations {
			for _, in := range res.Instances {
				if !owned(in.Tags) {
					return notOurs()
				}
				if !isLive(in) {
					return nil
				}
			}
		}
		return p.fail("delete-resource", r.Zone, p.terminate(ctx, region, []string{r.ID}))
	case KindSecurityGroup:
		gs, err := p.groups(ctx, region, &ec2.DescribeSecurityGroupsInput{GroupIds: []string{r.ID}})
		if apiCode(err) == "InvalidGroup.NotFound" {
			return nil
		}
		if err != nil {
			return p.fail("delete-resource", r.Zone, err)
		}
		for _, g := range gs {
			if !owned(g.Tags) {
				return notOurs()
			}
		}
		return p.fail("delete-resource", r.Zone, p.deleteGroup(ctx, region, r.ID))
	case KindVolume:
		out, err := c.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: []string{r.ID}})
		if apiCode(err) == "InvalidVolume.NotFound" {
			return nil
		}
		if err != nil {
			return p.fail("delete-resource", r.Zone, err)
		}
		for _, v := range out.Volumes {
			if !owned(v.Tags) {
				return notOurs()
			}
		}
		_, err = c.DeleteVolume(ctx, &ec2.DeleteVolumeInput{VolumeId: awssdk.String(r.ID)})
		if err == nil || apiCode(err) == "InvalidVolume.NotFound" {
			return nil
		}
		return p.fail("delete-resource", r.Zone, fmt.Errorf("delete volume %s: %w", r.ID, err))
	}
	return p.permanent("delete-resource", r.Zone, fmt.Sprintf("unknown resource kind %q", r.Kind))
}
