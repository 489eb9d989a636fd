package gcp

import (
	"context"
	"errors"

	compute "cloud.google.com/go/compute/apiv1"
	"cloud.google.com/go/compute/apiv1/computepb"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
)

// computeAPI is the narrow slice of the Compute Engine API the provider uses.
// The real implementation wraps the SDK's REST clients; unit tests hand
// newProvider a stub. Every method here has its IAM permission in APICalls.
type computeAPI interface {
	InsertInstance(ctx context.Context, req *computepb.InsertInstanceRequest) (*computepb.Operation, error)
	GetInstance(ctx context.Context, req *computepb.GetInstanceRequest) (*computepb.Instance, error)
	DeleteInstance(ctx context.Context, req *computepb.DeleteInstanceRequest) (*computepb.Operation, error)
	AggregatedListInstances(ctx context.Context, req *computepb.AggregatedListInstancesRequest) ([]*computepb.Instance, error)

	GetDisk(ctx context.Context, req *computepb.GetDiskRequest) (*computepb.Disk, error)
	DeleteDisk(ctx context.Context, req *computepb.DeleteDiskRequest) (*computepb.Operation, error)
	AggregatedListDisks(ctx context.Context, req *computepb.AggregatedListDisksRequest) ([]*computepb.Disk, error)

	ListSnapshots(ctx context.Context, req *computepb.ListSnapshotsRequest) ([]*computepb.Snapshot, error)
	InsertSnapshot(ctx context.Context, req *computepb.InsertSnapshotRequest) (*computepb.Operation, error)
	GetSnapshot(ctx context.Context, req *computepb.GetSnapshotRequest) (*computepb.Snapshot, error)
	DeleteSnapshot(ctx context.Context, req *computepb.DeleteSnapshotRequest) (*computepb.Operation, error)

	InsertFirewall(ctx context.Context, req *computepb.InsertFirewallRequest) (*computepb.Operation, error)
	GetFirewall(ctx context.Context, req *computepb.GetFirewallRequest) (*computepb.Firewall, error)
	DeleteFirewall(ctx context.Context, req *computepb.DeleteFirewallRequest) (*computepb.Operation, error)
	ListFirewalls(ctx context.Context, req *computepb.ListFirewallsRequest) ([]*computepb.Firewall, error)

	WaitZoneOperation(ctx context.Context, req *computepb.WaitZoneOperationRequest) (*computepb.Operation, error)
	WaitGlobalOperation(ctx context.Context, req *computepb.WaitGlobalOperationRequest) (*computepb.Operation, error)
}

// restAPI is computeAPI over the SDK's REST clients.
type restAPI struct {
	instances *compute.InstancesClient
	disks     *compute.DisksClient
	snapshots *compute.SnapshotsClient
	firewalls *compute.FirewallsClient
	zoneOps   *compute.ZoneOperationsClient
	globalOps *compute.GlobalOperationsClient
}

func newRESTAPI(ctx context.Context, opts []option.ClientOption) (*restAPI, error) {
	a := &restAPI{}
	var err error
	if a.instances, err = compute.NewInstancesRESTClient(ctx, opts...); err != nil {
		return nil, err
	}
	if a.disks, err = compute.NewDisksRESTClient(ctx, opts...); err != nil {
		a.Close()
		return nil, err
	}
	if a.snapshots, err = compute.NewSnapshotsRESTClient(ctx, opts...); err != nil {
		a.Close()
		return nil, err
	}
	if a.firewalls, err = compute.NewFirewallsRESTClient(ctx, opts...); err != nil {
		a.Close()
		return nil, err
	}
	if a.zoneOps, err = compute.NewZoneOperationsRESTClient(ctx, opts...); err != nil {
		a.Close()
		return nil, err
	}
	if a.globalOps, err = compute.NewGlobalOperationsRESTClient(ctx, opts...); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// Close closes every client that was opened.
func (a *restAPI) Close() error {
	var errs []error
	for _, c := range []interface{ Close() error }{a.instances, a.disks, a.snapshots, a.firewalls, a.zoneOps, a.globalOps} {
		if c == nil || isNilClient(c) {
			continue
		}
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

func isNilClient(c interface{ Close() error }) bool {
	switch v := c.(type) {
	case *compute.InstancesClient:
		return v == nil
	case *compute.DisksClient:
		return v == nil
	case *compute.SnapshotsClient:
		return v == nil
	case *compute.FirewallsClient:
		return v == nil
	case *compute.ZoneOperationsClient:
		return v == nil
	case *compute.GlobalOperationsClient:
		return v == nil
	}
	return false
}

func (a *restAPI) InsertInstance(ctx context.Context, req *computepb.InsertInstanceRequest) (*computepb.Operation, error) {
	op, err := a.instances.Insert(ctx, req)
	if err != nil {
		return nil, err
	}
	return op.Proto(), nil
}

func (a *restAPI) GetInstance(ctx context.Context, req *computepb.GetInstanceRequest) (*computepb.Instance, error) {
	return a.instances.Get(ctx, req)
}

func (a *restAPI) DeleteInstance(ctx context.Context, req *computepb.DeleteInstanceRequest) (*computepb.Operation, error) {
	op, err := a.instances.Delete(ctx, req)
	if err != nil {
		return nil, err
	}
	return op.Proto(), nil
}

func (a *restAPI) AggregatedListInstances(ctx context.Context, req *computepb.AggregatedListInstancesRequest) ([]*computepb.Instance, error) {
	var out []*computepb.Instance
	it := a.instances.AggregatedList(ctx, req)
	for {
		pair, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, pair.Value.GetInstances()...)
	}
}

func (a *restAPI) GetDisk(ctx context.Context, req *computepb.GetDiskRequest) (*computepb.Disk, error) {
	return a.disks.Get(ctx, req)
}

func (a *restAPI) DeleteDisk(ctx context.Context, req *computepb.DeleteDiskRequest) (*computepb.Operation, error) {
	op, err := a.disks.Delete(ctx, req)
	if err != nil {
		return nil, err
	}
	return op.Proto(), nil
}

func (a *restAPI) AggregatedListDisks(ctx context.Context, req *computepb.AggregatedListDisksRequest) ([]*computepb.Disk, error) {
	var out []*computepb.Disk
	it := a.disks.AggregatedList(ctx, req)
	for {
		pair, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, pair.Value.GetDisks()...)
	}
}

func (a *restAPI) ListSnapshots(ctx context.Context, req *computepb.ListSnapshotsRequest) ([]*computepb.Snapshot, error) {
	var out []*computepb.Snapshot
	it := a.snapshots.List(ctx, req)
	for {
		s, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
}

func (a *restAPI) InsertSnapshot(ctx context.Context, req *computepb.InsertSnapshotRequest) (*computepb.Operation, error) {
	op, err := a.snapshots.Insert(ctx, req)
	if err != nil {
		return nil, err
	}
	return op.Proto(), nil
}

func (a *restAPI) GetSnapshot(ctx context.Context, req *computepb.GetSnapshotRequest) (*computepb.Snapshot, error) {
	return a.snapshots.Get(ctx, req)
}

func (a *restAPI) DeleteSnapshot(ctx context.Context, req *computepb.DeleteSnapshotRequest) (*computepb.Operation, error) {
	op, err := a.snapshots.Delete(ctx, req)
	if err != nil {
		return nil, err
	}
	return op.Proto(), nil
}

func (a *restAPI) InsertFirewall(ctx context.Context, req *computepb.InsertFirewallRequest) (*computepb.Operation, error) {
	op, err := a.firewalls.Insert(ctx, req)
	if err != nil {
		return nil, err
	}
	return op.Proto(), nil
}

func (a *restAPI) GetFirewall(ctx context.Context, req *computepb.GetFirewallRequest) (*computepb.Firewall, error) {
	return a.firewalls.Get(ctx, req)
}

func (a *restAPI) DeleteFirewall(ctx context.Context, req *computepb.DeleteFirewallRequest) (*computepb.Operation, error) {
	op, err := a.firewalls.Delete(ctx, req)
	if err != nil {
		return nil, err
	}
	return op.Proto(), nil
}

func (a *restAPI) ListFirewalls(ctx context.Context, req *computepb.ListFirewallsRequest) ([]*computepb.Firewall, error) {
	var out []*computepb.Firewall
	it := a.firewalls.List(ctx, req)
	for {
		f, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
}

func (a *restAPI) WaitZoneOperation(ctx context.Context, req *computepb.WaitZoneOperationRequest) (*computepb.Operation, error) {
	return a.zoneOps.Wait(ctx, req)
}

func (a *restAPI) WaitGlobalOperation(ctx context.Context, req *computepb.WaitGlobalOperationRequest) (*computepb.Operation, error) {
	return a.globalOps.Wait(ctx, req)
}
