package sim

import (
	"context"
	"maps"
	"slices"

	"github.com/failoverd/failoverd/cloud"
)

// ListOwned implements cloud.Collector: the simulated cloud's only resources
// are its instances.
func (c *Cloud) ListOwned(ctx context.Context) ([]cloud.Resource, error) {
	sbs, err := c.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]cloud.Resource, 0, len(sbs))
	for _, s := range sbs {
		out = append(out, cloud.Resource{Provider: ProviderName, Kind: "instance", Name: s.Name, Zone: s.Zone,
			Labels: maps.Clone(s.Labels), CreatedAt: s.CreatedAt})
	}
	slices.SortFunc(out, func(a, b cloud.Resource) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// DeleteOwned implements cloud.Collector.
func (c *Cloud) DeleteOwned(ctx context.Context, r cloud.Resource) error {
	return c.Delete(ctx, r.Name)
}

// StopClients implements cloud.ClientStopper: a simulated node's clients
// stop at once; an unknown standby is ErrNotFound.
func (c *Cloud) StopClients(ctx context.Context, s cloud.Standby) (bool, error) {
	if _, err := c.Get(ctx, s.Name); err != nil {
		return false, err
	}
	return true, nil
}
