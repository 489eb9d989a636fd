package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/api/option"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/aws"
	"github.com/failoverd/failoverd/cloud/gcp"
	"github.com/failoverd/failoverd/cloud/sim"
	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/bootstrap"
	"github.com/failoverd/failoverd/failover/config"
	"github.com/failoverd/failoverd/failover/pki"
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
				// Only the agent's port: the clients' APIs listen on the standby's loopback.
				APIPorts: []gcp.PortRule{{Protocol: "tcp", Port: cfg.Agent.Port}},
				Project:  g.Project, MachineType: g.MachineType, DiskType: g.DiskType, DiskGB: g.DiskGB,
				BootImage: g.BootImage, Network: g.Network, Subnetwork: g.Subnetwork, Spot: g.Spot,
				APISourceRanges: g.APISourceRanges, SnapshotLabels: g.SnapshotLabels,
				OperationTimeout: g.OperationTimeout, Endpoint: g.Endpoint, ClientOptions: opts,
			})
		case config.ProviderAWS:
			a := cfg.Cloud.AWS
			p, err = aws.New(ctx, aws.Options{
				APIPorts: []aws.PortRule{{Protocol: "tcp", Port: cfg.Agent.Port}},
				Zones:    a.Zones, Subnets: a.Subnets, InstanceType: a.InstanceType, AMIs: a.AMIs,
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

// standbyBootstrap renders what a real-cloud standby boots with: the
// validator's clients and the agent with credentials made for this standby.
// It is deterministic (the credentials derive from the CA seed, the standby
// name and the incident's creation second), so a repeated create sends the
// same bytes. The simulated cloud boots nothing.
func standbyBootstrap(cfg *config.Config, auth *pki.Authority) func(context.Context, failover.Incident, string) ([]byte, error) {
	// Read once: the allowed signers a standby boots with must not change
	// between two tries of the same create.
	appr, apprErr := standbyApproval(cfg)
	return func(_ context.Context, inc failover.Incident, provider string) ([]byte, error) {
		if apprErr != nil {
			return nil, apprErr
		}
		if provider == config.ProviderSim {
			return nil, nil
		}
		v, ok := cfg.Validator(inc.Validator)
		if !ok {
			return nil, fmt.Errorf("validator %s is not in the fleet", inc.Validator)
		}
		cert, key, err := auth.StandbyCredentials(cloud.NameFor(inc.ID), inc.CreatedAt.Truncate(time.Second))
		if err != nil {
			return nil, err
		}
		a := bootstrap.Agent{Image: cfg.Agent.Image, Port: cfg.Agent.Port, CACertPEM: auth.CAPEM(), CertPEM: cert, KeyPEM: key}
		out, err := bootstrap.RenderFor(bootstrapInput(v, a, appr), provider)
		if err != nil {
			return nil, err
		}
		return bootstrap.Pack(out, provider)
	}
}

// checkBootstraps renders, with placeholder credentials, the bootstrap of
// every validator that may go to a real cloud, so that a fleet entry the
// bootstrap cannot serve (no clients, an unknown client, a client of another
// chain) is refused when the configuration is loaded, not in the middle of
// an outage.
func checkBootstraps(cfg *config.Config) error {
	appr, err := standbyApproval(cfg)
	if err != nil {
		return err
	}
	var errs []error
	for _, v := range cfg.Fleet {
		for _, p := range cfg.ProvidersFor(v) {
			if p != config.ProviderGCP && p != config.ProviderAWS {
				continue
			}
			in := bootstrapInput(v, bootstrap.PlaceholderAgent(cfg.Agent.Image, cfg.Agent.Port), appr)
			if _, err := bootstrap.RenderFor(in, p); err != nil {
				errs = append(errs, fmt.Errorf("fleet entry %s (clients for its %s standby): %w", v.Name, p, err))
			}
		}
	}
	return errors.Join(errs...)
}
