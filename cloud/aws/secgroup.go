package aws

import (
	"context"
	"fmt"
	"strings"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/failoverd/failoverd/cloud"
)

// rule is one ingress permission: one protocol, one port, one IPv4 source.
type rule struct {
	proto string
	port  int
	cidr  string
	desc  string
}

// rules are the ingress rules of every standby's security group: the p2p
// ports from anywhere, the API ports from APISourceRanges only.
func (p *Provider) rules() []rule {
	var out []rule
	for _, pr := range p.o.P2PPorts {
		out = append(out, rule{pr.Protocol, pr.Port, "0.0.0.0/0", "failoverd p2p"})
	}
	for _, pr := range p.o.APIPorts {
		for _, c := range p.o.APISourceRanges {
			out = append(out, rule{pr.Protocol, pr.Port, c, "failoverd api"})
		}
	}
	return out
}

// ensureSecurityGroup returns the ID of the standby's security group
// "failoverd-<name>" in vpcID, creating it (tagged) if needed, and makes
// sure it allows at least rules(). Rules added by hand are left alone.
func (p *Provider) ensureSecurityGroup(ctx context.Context, c ec2API, vpcID string, spec cloud.StandbySpec) (string, error) {
	name := SecurityGroupPrefix + spec.Name
	g, err := p.findGroup(ctx, c, vpcID, name)
	if err != nil {
		return "", err
	}
	if g == nil {
		tags := cloud.OwnershipLabels(spec)
		tags[TagName] = spec.Name
		tags[TagCreatedAt] = p.now().UTC().Format("2006-01-02T15:04:05Z")
		out, err := c.CreateSecurityGroup(ctx, &ec2.CreateSecurityGroupInput{
			GroupName:         awssdk.String(name),
			Description:       awssdk.String(groupDescription(spec)),
			VpcId:             awssdk.String(vpcID),
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeSecurityGroup, Tags: ec2Tags(tags)}},
		})
		switch {
		case apiCode(err) == "InvalidGroup.Duplicate":
			// Created meanwhile (another failoverd, a lost answer): reuse it.
			if g, err = p.findGroup(ctx, c, vpcID, name); err != nil {
				return "", err
			}
			if g == nil {
				return "", &kindError{cloud.ErrTransient, fmt.Errorf("security group %s exists but is not visible yet", name)}
			}
		case err != nil:
			return "", fmt.Errorf("create security group %s: %w", name, err)
		default:
			g = &types.SecurityGroup{GroupId: out.GroupId, GroupName: awssdk.String(name), Tags: ec2Tags(tags)}
		}
	}
	if !owned(g.Tags) {
		return "", &kindError{cloud.ErrPermanent, fmt.Errorf("security group %s (%s) exists but is not failoverd's (no %s=%s tag)", name, awssdk.ToString(g.GroupId), cloud.LabelManagedBy, cloud.ManagedByValue)}
	}
	id := awssdk.ToString(g.GroupId)
	var missing []rule
	for _, r := range p.rules() {
		if !allows(g.IpPermissions, r) {
			missing = append(missing, r)
		}
	}
	if len(missing) == 0 {
		return id, nil
	}
	err = p.authorize(ctx, c, id, missing)
	if apiCode(err) == "InvalidPermission.Duplicate" && len(missing) > 1 {
		// Someone added some of them meanwhile; EC2 then rejects the whole
		// call, so add them one at a time.
		for _, r := range missing {
			if err := p.authorize(ctx, c, id, []rule{r}); err != nil && apiCode(err) != "InvalidPermission.Duplicate" {
				return "", err
			}
		}
		return id, nil
	}
	if err != nil && apiCode(err) != "InvalidPermission.Duplicate" {
		return "", err
	}
	return id, nil
}

func (p *Provider) authorize(ctx context.Context, c ec2API, groupID string, rs []rule) error {
	var perms []types.IpPermission
	for _, r := range rs {
		perms = append(perms, types.IpPermission{
			IpProtocol: awssdk.String(r.proto),
			FromPort:   awssdk.Int32(int32(r.port)),
			ToPort:     awssdk.Int32(int32(r.port)),
			IpRanges:   []types.IpRange{{CidrIp: awssdk.String(r.cidr), Description: awssdk.String(r.desc)}},
		})
	}
	_, err := c.AuthorizeSecurityGroupIngress(ctx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: awssdk.String(groupID), IpPermissions: perms})
	if err != nil {
		return fmt.Errorf("authorize ingress on %s: %w", groupID, err)
	}
	return nil
}

// allows reports whether perms already let r in.
func allows(perms []types.IpPermission, r rule) bool {
	for _, pm := range perms {
		proto := awssdk.ToString(pm.IpProtocol)
		if proto != "-1" && proto != r.proto {
			continue
		}
		if proto != "-1" && (int(awssdk.ToInt32(pm.FromPort)) > r.port || int(awssdk.ToInt32(pm.ToPort)) < r.port) {
			continue
		}
		for _, ir := range pm.IpRanges {
			if awssdk.ToString(ir.CidrIp) == r.cidr {
				return true
			}
		}
	}
	return false
}

func (p *Provider) findGroup(ctx context.Context, c ec2API, vpcID, name string) (*types.SecurityGroup, error) {
	out, err := c.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{Filters: []types.Filter{
		{Name: awssdk.String("group-name"), Values: []string{name}},
		{Name: awssdk.String("vpc-id"), Values: []string{vpcID}},
	}})
	if err != nil {
		return nil, fmt.Errorf("describe security group %s: %w", name, err)
	}
	if len(out.SecurityGroups) == 0 {
		return nil, nil
	}
	return &out.SecurityGroups[0], nil
}

// groupDescription keeps to the characters EC2 accepts in a description.
func groupDescription(spec cloud.StandbySpec) string {
	d := fmt.Sprintf("failoverd standby %s (incident %s)", spec.Name, spec.IncidentID)
	d = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(" ._-:/()#,@[]+=&;{}!$*", r) {
			return r
		}
		return '-'
	}, d)
	if len(d) > 255 {
		d = d[:255]
	}
	return d
}
