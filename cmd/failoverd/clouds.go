package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/api/option"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/aws"
	"github.com/failoverd/failoverd/cloud/gcp"
	"github.com/failoverd/failoverd/cloud/sim"
	"github.com/failoverd/failoverd/failover/config"
)

// buildProviders makes a client for each provider the configuration uses.
// Credentials come from each cloud's standard chain; failoverd keeps none.
func buildProviders(ctx context.Context, cfg *config.Config, reg prometheus.Registerer) ([]cloud.Provider, error) {
	var out []cloud.Provider
	for _, name := range cfg.UsedProviders() {
		var p cloud.Provider
		var err error
		switch name {
		case config.ProviderSim:
			s := cfg.Cloud.Sim
			p, err = sim.New(sim.Options{
				BootTime: s.BootTime, SyncTime: s.SyncTime, Peers: s.Peers, NoCapacityZones: s.NoCapacityZones,
				StatePath:  filepath.Join(cfg.DataDir, "sim-cloud.json"),
				Registerer: reg,
			})
		case config.ProviderGCP:
			g := cfg.Cloud.GCP
			var opts []option.ClientOption
			if g.InsecureNoAuth {
				opts = append(opts, option.WithoutAuthentication())
			}
			p, err = gcp.New(ctx, gcp.Options{
				Project: g.Project, MachineType: g.MachineType, DiskType: g.DiskType, DiskGB: g.DiskGB,
				BootImage: g.BootImage, Network: g.Network, Subnetwork: g.Subnetwork, Spot: g.Spot,
				APISourceRanges: g.APISourceRanges, SnapshotLabels: g.SnapshotLabels,
				OperationTimeout: g.OperationTimeout, Endpoint: g.Endpoint, ClientOptions: opts,
			})
		case config.ProviderAWS:
			a := cfg.Cloud.AWS
			p, err = aws.New(ctx, aws.Options{
				Zones: a.Zones, Subnets: a.Subnets, InstanceType: a.InstanceType, AMIs: a.AMIs,
				VolumeGB: a.VolumeGB, VolumeType: a.VolumeType, SnapshotTags: a.SnapshotTags,
				VolumeInitializationRate: a.VolumeInitializationRate, Spot: a.Spot,
				APISourceRanges: a.APISourceRanges, Endpoint: a.Endpoint,
			})
		default:
			err = fmt.Errorf("unknown provider %q", name)
		}
		if err != nil {
			return nil, fmt.Errorf("cloud provider %s: %w", name, err)
		}
		out = append(out, p)
	}
	return out, nil
}
