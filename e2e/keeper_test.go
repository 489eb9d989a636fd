package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"google.golang.org/api/option"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/aws"
	"github.com/failoverd/failoverd/cloud/aws/ec2fake"
	"github.com/failoverd/failoverd/cloud/gcp"
	"github.com/failoverd/failoverd/cloud/gcp/gcpfake"
	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/config"
	"github.com/failoverd/failoverd/failover/store/bolt"
)

// syncedNode stands in for the agent of a keeper node on a fake cloud: it
// is in sync at once and stops its clients when asked. The real agent is
// tested against the real binary in agent_test.go.
type syncedNode struct{ stops atomic.Int32 }

func (s *syncedNode) SyncStatus(context.Context, cloud.Standby) (cloud.SyncStatus, error) {
	return cloud.SyncStatus{ExecutionSynced: true, ConsensusSynced: true, Health: 200, Peers: 50, ExecutionPeers: 25}, nil
}

func (s *syncedNode) StopClients(context.Context, cloud.Standby) (bool, error) {
	return s.stops.Add(1) > 1, nil // the first ask only requests the stop
}

// TestSnapshotKeeperOnRealProviders runs the keeper through the real GCP and
// AWS SDK clients against the local wire servers: each run makes a
// snapshot and deletes its node, retention prunes the oldest, and a later
// outage's data disk is created from the newest snapshot.
func TestSnapshotKeeperOnRealProviders(t *testing.T) {
	for _, provider := range []string{"gcp", "aws"} {
		t.Run(provider, func(t *testing.T) {
			ctx := context.Background()
			gfake, efake := gcpfake.New(), ec2fake.New()
			defer gfake.Close()
			defer efake.Close()
			labels := map[string]string{"chain-data": "mainnet"}

			cfg := config.Default()
			cfg.Engine.ConfirmFor = 0
			cfg.Cloud.Providers = []string{provider}
			cfg.Cloud.GCP.Project, cfg.Cloud.GCP.Zones, cfg.Cloud.GCP.SnapshotLabels = "staking-e2e", []string{"europe-west4-a"}, labels
			cfg.Cloud.AWS.Zones, cfg.Cloud.AWS.SnapshotTags = []string{"eu-west-1a"}, labels
			cfg.Cloud.AWS.AMIs = map[string]string{"eu-west-1": "ami-0123456789abcdef0"}
			cfg.Fleet = []config.Validator{{Name: "eth-1", Chain: "ethereum", Network: "mainnet", Site: "basement",
				Snapshots: config.Snapshots{Every: 24 * time.Hour, Retain: 2}}}

			var p cloud.Provider
			var err error
			if provider == "gcp" {
				p, err = gcp.New(ctx, gcp.Options{Project: "staking-e2e", Endpoint: gfake.URL(), DiskGB: 100, SnapshotLabels: labels,
					ClientOptions: []option.ClientOption{option.WithoutAuthentication()}, OperationTimeout: 10 * time.Second})
			} else {
				p, err = aws.New(ctx, aws.Options{Zones: cfg.Cloud.AWS.Zones, AMIs: cfg.Cloud.AWS.AMIs, InstanceType: "m6i.2xlarge",
					VolumeGB: 100, SnapshotTags: labels, Endpoint: efake.URL(),
					Credentials: credentials.NewStaticCredentialsProvider("AKIDEXAMPLE", "secret", ""),
					Retryer:     func() awssdk.Retryer { return awssdk.NopRetryer{} }})
			}
			if err != nil {
				t.Fatal(err)
			}
			st, err := bolt.Open(filepath.Join(t.TempDir(), "f.db"), bolt.Options{NoSync: true})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			var offset atomic.Int64
			node := &syncedNode{}
			eng, err := failover.New(failover.Options{Config: &cfg, Store: st, Providers: []cloud.Provider{p}, Sync: node,
				Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
			if err != nil {
				t.Fatal(err)
			}

			var made []string
			for i := 1; i <= 3; i++ {
				node.stops.Store(0)
				var run failover.SnapshotRun
				waitFor(t, "keeper run", 30*time.Second, func() (bool, string) {
					if err := eng.KeepSnapshots(ctx); err != nil {
						return false, err.Error()
					}
					runs, _ := st.ListSnapshotRuns(ctx, "eth-1")
					if len(runs) < i {
						return false, "no run"
					}
					run = runs[i-1]
					return run.State.Finished(), string(run.State) + ": " + run.Reason
				})
				if run.State != failover.RunDone {
					t.Fatalf("run %d: %s (%s)", i, run.State, run.Reason)
				}
				made = append(made, run.Snapshot)
				if provider == "gcp" && gfake.Instances() != 0 || provider == "aws" && efake.Instances() != 0 {
					t.Fatalf("run %d left its node running", i)
				}
				offset.Add(int64(25 * time.Hour)) // the next run is due
			}
			snaps, err := p.(cloud.Snapshotter).Snapshots(ctx, "eth-1")
			if err != nil {
				t.Fatal(err)
			}
			var kept []string
			for _, s := range snaps {
				kept = append(kept, s.Name)
			}
			if len(kept) != 2 || kept[0] != made[2] || kept[1] != made[1] {
				t.Fatalf("retention 2 kept %v of %v", kept, made)
			}

			// An outage: its data disk comes from the newest snapshot.
			obs := failover.Observation{Validator: "eth-1", Fingerprint: "fp", Status: failover.AlertFiring, StartsAt: time.Now()}
			if _, err := eng.Observe(ctx, []failover.Observation{obs}, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := eng.Reconcile(ctx, "eth-1"); err != nil {
				t.Fatal(err)
			}
			incs, _ := st.ListIncidents(ctx, failover.ListOptions{Validator: "eth-1"})
			if len(incs) != 1 || incs[0].Standby == nil {
				t.Fatalf("incidents %+v", incs)
			}
			name := incs[0].Standby.Name
			switch provider {
			case "gcp":
				d := gfake.Disk("europe-west4-a", gcp.DataDiskName(name))
				if d == nil || !strings.HasSuffix(d.GetSourceSnapshot(), "/"+made[2]) {
					t.Fatalf("data disk %v does not come from %s", d.GetSourceSnapshot(), made[2])
				}
			case "aws":
				var newest string
				for _, s := range efake.Snapshots() {
					if s.Tags["Name"] == made[2] {
						newest = s.ID
					}
				}
				ins := efake.InstancesNamed(name)
				found := false
				for _, bd := range ins[len(ins)-1].BlockDevices {
					found = found || bd.SnapshotID == newest && newest != ""
				}
				if !found {
					t.Fatalf("volume of %s does not come from %s (%s): %+v", name, made[2], newest, ins[len(ins)-1].BlockDevices)
				}
			}
		})
	}
}
