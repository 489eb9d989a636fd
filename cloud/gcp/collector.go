package gcp

import (
	"context"

	"github.com/failoverd/failoverd/cloud"
)

// ListOwned implements cloud.Collector over ListOwnedResources.
func (p *Provider) ListOwned(ctx context.Context) ([]cloud.Resource, error) {
	rs, err := p.ListOwnedResources(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]cloud.Resource, len(rs))
	for i, r := range rs {
		out[i] = cloud.Resource{Provider: ProviderName, Kind: r.Kind, Name: r.Name, Zone: r.Zone, Labels: r.Labels, CreatedAt: r.CreatedAt}
	}
	return out, nil
}

// DeleteOwned implements cloud.Collector over DeleteResource.
func (p *Provider) DeleteOwned(ctx context.Context, r cloud.Resource) error {
	return p.DeleteResource(ctx, Resource{Kind: r.Kind, Name: r.Name, Zone: r.Zone, Labels: r.Labels, CreatedAt: r.CreatedAt})
}

var _ cloud.Collector = (*Provider)(nil)
