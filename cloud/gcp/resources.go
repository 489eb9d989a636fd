package gcp

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"time"

	"cloud.google.com/go/compute/apiv1/computepb"

	"github.com/failoverd/failoverd/cloud"
)

// Resource kinds.
const (
	KindInstance = "instance"
	KindDisk     = "disk"
	KindFirewall = "firewall"
)

// Resource is one thing failoverd created in GCP, for the garbage
// collector. Firewall rules have no zone; their Labels are parsed from the
// description (see README.md).
type Resource struct {
	Kind      string
	Name      string
	Zone      string
	Labels    map[string]string
	CreatedAt time.Time
}

// ListOwnedResources lists every instance, disk and firewall rule failoverd
// owns, in every zone, sorted by kind, zone and name.
func (p *Provider) ListOwnedResources(ctx context.Context) ([]Resource, error) {
	const op = "list-resources"
	if err := cancelled(ctx, op, "resources"); err != nil {
		return nil, err
	}
	var out []Resource
	ins, err := p.api.AggregatedListInstances(ctx, &computepb.AggregatedListInstancesRequest{Project: p.o.Project, Filter: ptr(ownedFilter)})
	if err != nil {
		return nil, classify(ctx, op, "", fmt.Errorf("list instances: %w", err))
	}
	for _, in := range ins {
		if owned(in.GetLabels()) {
			out = append(out, Resource{Kind: KindInstance, Name: in.GetName(), Zone: zoneOf(in.GetZone()),
				Labels: maps.Clone(in.GetLabels()), CreatedAt: parseTime(in.GetCreationTimestamp())})
		}
	}
	disks, err := p.api.AggregatedListDisks(ctx, &computepb.AggregatedListDisksRequest{Project: p.o.Project, Filter: ptr(ownedFilter)})
	if err != nil {
		return nil, classify(ctx, op, "", fmt.Errorf("list disks: %w", err))
	}
	for _, d := range disks {
		if owned(d.GetLabels()) {
			out = append(out, Resource{Kind: KindDisk, Name: d.GetName(), Zone: zoneOf(d.GetZone()),
				Labels: maps.Clone(d.GetLabels()), CreatedAt: parseTime(d.GetCreationTimestamp())})
		}
	}
	// Firewall rules cannot be filtered by labels; a project has few.
	fws, err := p.api.ListFirewalls(ctx, &computepb.ListFirewallsRequest{Project: p.o.Project})
	if err != nil {
		return nil, classify(ctx, op, "", fmt.Errorf("list firewalls: %w", err))
	}
	for _, f := range fws {
		if l, ok := firewallLabels(f); ok {
			out = append(out, Resource{Kind: KindFirewall, Name: f.GetName(), Labels: l, CreatedAt: parseTime(f.GetCreationTimestamp())})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		if a.Zone != b.Zone {
			return a.Zone < b.Zone
		}
		return a.Name < b.Name
	})
	return out, nil
}

// DeleteResource deletes one resource ListOwnedResources returned. It reads
// the resource again first and leaves it alone unless failoverd owns it; an
// absent resource counts as deleted. A disk still attached to an instance is
// not deleted (GCP would refuse): delete the instance first.
func (p *Provider) DeleteResource(ctx context.Context, r Resource) error {
	const op = "delete-resource"
	if err := cancelled(ctx, op, r.Name); err != nil {
		return err
	}
	switch r.Kind {
	case KindInstance:
		in, err := p.api.GetInstance(ctx, &computepb.GetInstanceRequest{Project: p.o.Project, Zone: r.Zone, Instance: r.Name})
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return classify(ctx, op, r.Zone, fmt.Errorf("get instance %s: %w", r.Name, err))
		}
		if !owned(in.GetLabels()) {
			return nil
		}
		return p.deleteInstance(ctx, in)
	case KindDisk:
		d, err := p.api.GetDisk(ctx, &computepb.GetDiskRequest{Project: p.o.Project, Zone: r.Zone, Disk: r.Name})
		if isNotFound(err) {
			return nil
		}
		if err != nil {
			return classify(ctx, op, r.Zone, fmt.Errorf("get disk %s: %w", r.Name, err))
		}
		if !owned(d.GetLabels()) {
			return nil
		}
		if len(d.GetUsers()) > 0 {
			return &cloud.Error{Provider: ProviderName, Op: op, Zone: r.Zone, Kind: cloud.ErrTransient,
				Err: fmt.Errorf("disk %s is attached to %v; delete the instance first", r.Name, d.GetUsers())}
		}
		return p.deleteDisk(ctx, d)
	case KindFirewall:
		return p.deleteFirewallByName(ctx, r.Name)
	default:
		return permanent(op, r.Zone, "unknown resource kind %q", r.Kind)
	}
}

func ptr(s string) *string { return &s }

func parseTime(s string) time.Time {
	t, _ := time.Parse(time.RFC3339Nano, s)
	return t
}
