package gcp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strconv"

	"cloud.google.com/go/compute/apiv1/computepb"
	"google.golang.org/protobuf/proto"

	"github.com/failoverd/failoverd/cloud"
)

// RoleChainDataSnapshot is the failoverd-role label of the chain-data
// snapshots SnapshotData takes.
const RoleChainDataSnapshot = "chain-data-snapshot"

// Operation names of the snapshot calls, used in errors.
const (
	opSnapshot       = "snapshot"
	opSnapshots      = "list-snapshots"
	opDeleteSnapshot = "delete-snapshot"
)

var _ cloud.Snapshotter = (*Provider)(nil)

// SnapshotData implements cloud.Snapshotter: snapshots.insert of the
// standby's data disk (<name>-data, in the standby's zone), stored in the
// disk's region, labelled labels + managed-by=failoverd +
// failoverd-validator (from the instance) + failoverd-role=chain-data-snapshot.
//
// Idempotency: an owned snapshot named snapshotName is returned as it is
// (also after the standby is gone); the insert carries a requestId derived
// from snapshotName, so a retried or restarted call is answered with the
// first operation. An unowned snapshot of that name, or one that FAILED,
// is ErrPermanent; one being deleted is ErrTransient. When the operation is
// not done within OperationTimeout the snapshot is returned not Ready if it
// exists (the keeper polls Snapshots), else the timeout (ErrTransient).
func (p *Provider) SnapshotData(ctx context.Context, standbyName, snapshotName string, labels map[string]string) (cloud.Snapshot, error) {
	if err := cancelled(ctx, opSnapshot, snapshotName); err != nil {
		return cloud.Snapshot{}, err
	}
	if !rfc1035.MatchString(snapshotName) {
		return cloud.Snapshot{}, permanent(opSnapshot, "", "invalid snapshot name %q", snapshotName)
	}
	sn, err := p.api.GetSnapshot(ctx, &computepb.GetSnapshotRequest{Project: p.o.Project, Snapshot: snapshotName})
	switch {
	case err == nil:
		return p.existingSnapshot(sn)
	case !isNotFound(err):
		return cloud.Snapshot{}, classify(ctx, opSnapshot, "", fmt.Errorf("get snapshot %s: %w", snapshotName, err))
	}

	found, err := p.findInstances(ctx, standbyName, true)
	if err != nil {
		return cloud.Snapshot{}, classify(ctx, opSnapshot, "", err)
	}
	if len(found) == 0 {
		return cloud.Snapshot{}, &cloud.Error{Provider: ProviderName, Op: opSnapshot, Kind: cloud.ErrNotFound, Err: fmt.Errorf("instance %s", standbyName)}
	}
	in := found[0]
	zone := zoneOf(in.GetZone())
	region, err := regionOf(zone)
	if err != nil {
		return cloud.Snapshot{}, permanent(opSnapshot, zone, "%v", err)
	}
	l := maps.Clone(labels)
	if l == nil {
		l = map[string]string{}
	}
	l[cloud.LabelManagedBy] = cloud.ManagedByValue
	l[cloud.LabelValidator] = in.GetLabels()[cloud.LabelValidator]
	l[LabelRole] = RoleChainDataSnapshot
	res := &computepb.Snapshot{
		Name:             proto.String(snapshotName),
		Description:      proto.String(fmt.Sprintf("failoverd chain-data snapshot of %s (validator %s)", standbyName, l[cloud.LabelValidator])),
		SourceDisk:       proto.String(fmt.Sprintf("projects/%s/zones/%s/disks/%s", p.o.Project, zone, DataDiskName(standbyName))),
		Labels:           l,
		StorageLocations: []string{region},
	}
	var got *computepb.Snapshot
	err = p.insertWithRetry(ctx, insertStep{
		key: "snapshot/" + snapshotName, step: "insert-snapshot", zone: "", what: "snapshot " + snapshotName,
		insert: func(ctx context.Context, rid string) (*computepb.Operation, error) {
			return p.api.InsertSnapshot(ctx, &computepb.InsertSnapshotRequest{Project: p.o.Project, RequestId: proto.String(rid), SnapshotResource: res})
		},
		get: func(ctx context.Context) error {
			s, err := p.api.GetSnapshot(ctx, &computepb.GetSnapshotRequest{Project: p.o.Project, Snapshot: snapshotName})
			got = s
			return err
		},
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			// The operation outlived OperationTimeout (a first snapshot of
			// a large disk takes a while): report it as not ready yet.
			if s, gerr := p.api.GetSnapshot(ctx, &computepb.GetSnapshotRequest{Project: p.o.Project, Snapshot: snapshotName}); gerr == nil {
				p.log.InfoContext(ctx, "gcp: snapshot operation still running; returning the snapshot not ready", "snapshot", snapshotName, "status", s.GetStatus())
				return p.existingSnapshot(s)
			}
		}
		var ce *cloud.Error
		if errors.As(err, &ce) {
			ce.Op, ce.Zone = opSnapshot, zone
		}
		return cloud.Snapshot{}, err
	}
	return p.existingSnapshot(got)
}

// existingSnapshot returns a snapshot found by name, if failoverd may use it.
func (p *Provider) existingSnapshot(sn *computepb.Snapshot) (cloud.Snapshot, error) {
	if !owned(sn.GetLabels()) {
		return cloud.Snapshot{}, permanent(opSnapshot, "", "snapshot %s exists and is not managed by failoverd", sn.GetName())
	}
	switch sn.GetStatus() {
	case "FAILED":
		return cloud.Snapshot{}, permanent(opSnapshot, "", "snapshot %s FAILED; delete it (DeleteSnapshot) and take a new one under another name", sn.GetName())
	case "DELETING":
		return cloud.Snapshot{}, &cloud.Error{Provider: ProviderName, Op: opSnapshot, Kind: cloud.ErrTransient,
			Err: fmt.Errorf("snapshot %s is being deleted; try again when it is gone", sn.GetName())}
	}
	return toSnapshot(sn), nil
}

// Snapshots implements cloud.Snapshotter: owned chain-data snapshots of the
// validator (snapshots.list filtered by labels, checked again here), newest
// first. FAILED snapshots are listed (not Ready) so the keeper prunes them;
// snapshots being deleted are not.
func (p *Provider) Snapshots(ctx context.Context, validator string) ([]cloud.Snapshot, error) {
	if err := cancelled(ctx, opSnapshots, validator); err != nil {
		return nil, err
	}
	want := map[string]string{
		cloud.LabelManagedBy: cloud.ManagedByValue,
		cloud.LabelValidator: cloud.LabelValue(validator),
		LabelRole:            RoleChainDataSnapshot,
	}
	filter := fmt.Sprintf("(labels.%s = %q) AND (labels.%s = %q) AND (labels.%s = %q)",
		cloud.LabelManagedBy, want[cloud.LabelManagedBy], cloud.LabelValidator, want[cloud.LabelValidator], LabelRole, want[LabelRole])
	all, err := p.api.ListSnapshots(ctx, &computepb.ListSnapshotsRequest{Project: p.o.Project, Filter: proto.String(filter)})
	if err != nil {
		return nil, classify(ctx, opSnapshots, "", fmt.Errorf("list snapshots: %w", err))
	}
	out := []cloud.Snapshot{}
	for _, sn := range all {
		if !hasLabels(sn.GetLabels(), want) || sn.GetStatus() == "DELETING" {
			continue
		}
		out = append(out, toSnapshot(sn))
	}
	sortNewestFirst(out)
	return out, nil
}

// DeleteSnapshot implements cloud.Snapshotter: snapshots.delete of an owned
// snapshot, awaited. Absent is done; an unowned one is ErrPermanent and is
// not touched.
func (p *Provider) DeleteSnapshot(ctx context.Context, name string) error {
	if err := cancelled(ctx, opDeleteSnapshot, name); err != nil {
		return err
	}
	sn, err := p.api.GetSnapshot(ctx, &computepb.GetSnapshotRequest{Project: p.o.Project, Snapshot: name})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return classify(ctx, opDeleteSnapshot, "", fmt.Errorf("get snapshot %s: %w", name, err))
	}
	if !owned(sn.GetLabels()) {
		return permanent(opDeleteSnapshot, "", "snapshot %s is not managed by failoverd; not deleting it", name)
	}
	rid := requestID(name+"/"+strconv.FormatUint(sn.GetId(), 10), "delete-snapshot", "global")
	op, err := p.api.DeleteSnapshot(ctx, &computepb.DeleteSnapshotRequest{Project: p.o.Project, Snapshot: name, RequestId: proto.String(rid)})
	if err == nil {
		err = p.await(ctx, op, "")
	}
	if err != nil && !isNotFound(err) {
		if ce := (*cloud.Error)(nil); errors.As(err, &ce) {
			ce.Op = opDeleteSnapshot
			return err
		}
		return classify(ctx, opDeleteSnapshot, "", fmt.Errorf("delete snapshot %s: %w", name, err))
	}
	return nil
}

func toSnapshot(sn *computepb.Snapshot) cloud.Snapshot {
	s := cloud.Snapshot{
		Provider:  ProviderName,
		Name:      sn.GetName(),
		ID:        strconv.FormatUint(sn.GetId(), 10),
		Validator: sn.GetLabels()[cloud.LabelValidator],
		SizeGB:    int(sn.GetDiskSizeGb()),
		Ready:     sn.GetStatus() == "READY",
		CreatedAt: parseTime(sn.GetCreationTimestamp()),
		Labels:    maps.Clone(sn.GetLabels()),
	}
	if l := sn.GetStorageLocations(); len(l) > 0 {
		s.Location = l[0]
	}
	return s
}

// sortNewestFirst orders by creation time, newest first; equal times by
// name, descending, so the order is stable.
func sortNewestFirst(l []cloud.Snapshot) {
	sort.SliceStable(l, func(i, j int) bool {
		if !l[i].CreatedAt.Equal(l[j].CreatedAt) {
			return l[i].CreatedAt.After(l[j].CreatedAt)
		}
		return l[i].Name > l[j].Name
	})
}
