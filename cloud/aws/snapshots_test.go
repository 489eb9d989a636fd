package aws

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/cloud/aws/ec2fake"
	"github.com/failoverd/failoverd/cloud/cloudtest"
)

func snapshotHarness(mod func(*ec2fake.Server)) cloudtest.Harness {
	var fakes sync.Map // *Provider → *ec2fake.Server
	return cloudtest.Harness{
		New: func(t *testing.T) cloud.Provider {
			p, srv := newTest(t, nil)
			if mod != nil {
				mod(srv)
			}
			fakes.Store(p, srv)
			return p
		},
		Zones: testZones,
		AddUnownedSnapshot: func(t *testing.T, p cloud.Provider, name, validator string) {
			srv, ok := fakes.Load(p)
			if !ok {
				t.Fatal("AddUnownedSnapshot: unknown provider")
			}
			srv.(*ec2fake.Server).AddSnapshot(RegionOf(testZones[0]), ec2fake.Snapshot{Tags: map[string]string{
				TagName: name, cloud.LabelValidator: cloud.LabelValue(validator), TagRole: RoleChainDataSnapshot, "chain": "hoodi",
			}})
		},
	}
}

func TestSnapshotConformance(t *testing.T) {
	cloudtest.RunSnapshots(t, snapshotHarness(nil))
}

func TestSnapshotConformanceSlowSnapshots(t *testing.T) {
	cloudtest.RunSnapshots(t, snapshotHarness(func(s *ec2fake.Server) { s.SetSnapshotTime(300 * time.Millisecond) }))
}

// TestSnapshotFoundByProvisioning: a snapshot taken by SnapshotData with the
// provider's SnapshotTags as labels is what a later incident of the same
// validator restores its data volume from.
func TestSnapshotFoundByProvisioning(t *testing.T) {
	sel := map[string]string{"chain": "hoodi"}
	p, srv := newTest(t, func(o *Options) { o.SnapshotTags = sel })
	// An older matching snapshot, so "newest" is what picks ours.
	srv.AddSnapshot("eu-west-1", ec2fake.Snapshot{Tags: map[string]string{"chain": "hoodi", cloud.LabelValidator: "lighthouse-vc-0"},
		SizeGB: 2000, StartTime: time.Now().Add(-48 * time.Hour)})
	first := spec("inc-keeper-1")
	if _, err := p.Ensure(ctx(t), first); err != nil {
		t.Fatal(err)
	}
	snap, err := p.SnapshotData(ctx(t), first.Name, "warm-2026-01-01", sel)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Ready {
		t.Errorf("SnapshotData answered Ready; EC2 answers CreateSnapshot pending")
	}
	if snap.Location != "eu-west-1" || snap.SizeGB != 2000 || snap.Labels["chain"] != "hoodi" {
		t.Errorf("snapshot = %+v", snap)
	}
	var data string
	for _, bd := range srv.InstancesNamed(first.Name)[0].BlockDevices {
		if bd.DeviceName == DataDevice {
			data = bd.VolumeID
		}
	}
	var sawTags map[string]string
	for _, s := range srv.Snapshots() {
		if s.ID == snap.ID {
			sawTags = s.Tags
			if s.VolumeID != data {
				t.Errorf("snapshot of volume %s, want the data volume %s", s.VolumeID, data)
			}
		}
	}
	for k, v := range map[string]string{TagName: "warm-2026-01-01", cloud.LabelManagedBy: cloud.ManagedByValue, TagRole: RoleChainDataSnapshot, cloud.LabelValidator: "lighthouse-vc-0"} {
		if sawTags[k] != v {
			t.Errorf("snapshot tag %s = %q, want %q (%v)", k, sawTags[k], v, sawTags)
		}
	}
	if err := p.Delete(ctx(t), first.Name); err != nil {
		t.Fatal(err)
	}
	second := spec("inc-keeper-2")
	if _, err := p.Ensure(ctx(t), second); err != nil {
		t.Fatal(err)
	}
	got := ""
	for _, bd := range srv.InstancesNamed(second.Name)[0].BlockDevices {
		if bd.DeviceName == DataDevice {
			got = bd.SnapshotID
		}
	}
	if got != snap.ID {
		t.Errorf("second incident's data volume from %q, want the warm snapshot %s", got, snap.ID)
	}
}

func TestSnapshotErrorState(t *testing.T) {
	p, srv := newTest(t, nil)
	s := spec("inc-snap-err")
	if _, err := p.Ensure(ctx(t), s); err != nil {
		t.Fatal(err)
	}
	snap, err := p.SnapshotData(ctx(t), s.Name, "warm-err", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetSnapshotState(snap.ID, "error")
	if _, err := p.SnapshotData(ctx(t), s.Name, "warm-err", nil); !errors.Is(err, cloud.ErrPermanent) {
		t.Errorf("SnapshotData over a snapshot in state error: %v, want ErrPermanent", err)
	}
	l, err := p.Snapshots(ctx(t), s.Validator)
	if err != nil || len(l) != 1 || l[0].Ready {
		t.Errorf("Snapshots = %+v, %v; want the failed one listed, not ready", l, err)
	}
	if err := p.DeleteSnapshot(ctx(t), "warm-err"); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Snapshots()); n != 0 {
		t.Errorf("%d snapshots left", n)
	}
}

func TestSnapshotNoDataVolume(t *testing.T) {
	p, _ := newTest(t, nil)
	_, err := p.SnapshotData(ctx(t), "fo-nobody", "warm-x", nil)
	if !errors.Is(err, cloud.ErrNotFound) {
		t.Errorf("err = %v, want ErrNotFound", err)
	}
}
