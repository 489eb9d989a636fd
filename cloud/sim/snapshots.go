package sim

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"time"

	"github.com/failoverd/failoverd/cloud"
)

// Labels of the simulated cloud's standbys and snapshots, as the real
// providers write them.
const (
	// LabelSnapshot on a standby names the snapshot its data disk was made
	// from (the newest ready snapshot of its validator when Ensure created
	// it), or "none".
	LabelSnapshot = "failoverd-snapshot"
	// LabelRole is RoleChainDataSnapshot on snapshots SnapshotData takes.
	LabelRole             = "failoverd-role"
	RoleChainDataSnapshot = "chain-data-snapshot"
)

var _ cloud.Snapshotter = (*Cloud)(nil)

// snapshot is one simulated chain-data snapshot, as persisted in StatePath.
type snapshot struct {
	Name      string            `json:"name"`
	ID        string            `json:"id"`
	Standby   string            `json:"standby,omitempty"`
	Zone      string            `json:"zone"`
	SizeGB    int               `json:"sizeGB,omitempty"`
	Labels    map[string]string `json:"labels"`
	CreatedAt time.Time         `json:"createdAt"`
}

func (sn *snapshot) owned() bool { return sn.Labels[cloud.LabelManagedBy] == cloud.ManagedByValue }

func (c *Cloud) ready(sn *snapshot) bool { return !c.now().Before(sn.CreatedAt.Add(c.snapshotTime)) }

func (c *Cloud) snapshotOut(sn *snapshot) cloud.Snapshot {
	return cloud.Snapshot{
		Provider:  ProviderName,
		Name:      sn.Name,
		ID:        sn.ID,
		Location:  sn.Zone,
		Validator: sn.Labels[cloud.LabelValidator],
		SizeGB:    sn.SizeGB,
		Ready:     c.ready(sn),
		CreatedAt: sn.CreatedAt,
		Labels:    maps.Clone(sn.Labels),
	}
}

// SnapshotData implements cloud.Snapshotter. The snapshot is Ready
// Options.SnapshotTime after it is taken. An owned snapshot of that name is
// returned as it is (also after the standby is gone); an unowned one is
// ErrPermanent; an unknown standby is ErrNotFound.
func (c *Cloud) SnapshotData(ctx context.Context, standbyName, snapshotName string, labels map[string]string) (cloud.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return cloud.Snapshot{}, fmt.Errorf("sim snapshot %s: %w", snapshotName, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.injected(c.failBefore, OpSnapshot); err != nil {
		return cloud.Snapshot{}, err
	}
	out, err := c.snapshotLocked(standbyName, snapshotName, labels)
	if err != nil {
		return cloud.Snapshot{}, err
	}
	if err := c.injected(c.failAfter, OpSnapshot); err != nil {
		return cloud.Snapshot{}, err
	}
	return out, nil
}

func (c *Cloud) snapshotLocked(standbyName, snapshotName string, labels map[string]string) (cloud.Snapshot, error) {
	if !rfc1035.MatchString(snapshotName) {
		return cloud.Snapshot{}, &cloud.Error{Provider: ProviderName, Op: OpSnapshot, Kind: cloud.ErrPermanent,
			Err: fmt.Errorf("invalid snapshot name %q", snapshotName)}
	}
	if sn, ok := c.snapshots[snapshotName]; ok {
		if !sn.owned() {
			return cloud.Snapshot{}, &cloud.Error{Provider: ProviderName, Op: OpSnapshot, Kind: cloud.ErrPermanent,
				Err: fmt.Errorf("snapshot %s exists and is not managed by failoverd", snapshotName)}
		}
		return c.snapshotOut(sn), nil
	}
	in, err := c.lookup(OpSnapshot, standbyName)
	if err != nil {
		return cloud.Snapshot{}, err
	}
	l := maps.Clone(labels)
	if l == nil {
		l = map[string]string{}
	}
	l[cloud.LabelManagedBy] = cloud.ManagedByValue
	l[cloud.LabelValidator] = in.Labels[cloud.LabelValidator]
	l[LabelRole] = RoleChainDataSnapshot
	now := c.now()
	sn := &snapshot{Name: snapshotName, ID: fmt.Sprintf("sim-%s-%d", snapshotName, now.UnixNano()), Standby: standbyName,
		Zone: in.Zone, SizeGB: in.DiskGB, Labels: l, CreatedAt: now}
	c.snapshots[snapshotName] = sn
	if err := c.save(); err != nil {
		delete(c.snapshots, snapshotName)
		return cloud.Snapshot{}, &cloud.Error{Provider: ProviderName, Op: OpSnapshot, Zone: in.Zone, Kind: cloud.ErrTransient, Err: err}
	}
	return c.snapshotOut(sn), nil
}

// Snapshots implements cloud.Snapshotter: owned chain-data snapshots of the
// validator, newest first (equal times: by name, descending).
func (c *Cloud) Snapshots(ctx context.Context, validator string) ([]cloud.Snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("sim snapshots %s: %w", validator, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.injected(c.failBefore, OpSnapshots); err != nil {
		return nil, err
	}
	out := []cloud.Snapshot{}
	for _, sn := range c.ofValidatorLocked(cloud.LabelValue(validator)) {
		out = append(out, c.snapshotOut(sn))
	}
	if err := c.injected(c.failAfter, OpSnapshots); err != nil {
		return nil, err
	}
	return out, nil
}

// ofValidatorLocked: owned chain-data snapshots of validator (already a
// label value), newest first.
func (c *Cloud) ofValidatorLocked(validator string) []*snapshot {
	var l []*snapshot
	for _, sn := range c.snapshots {
		if sn.owned() && sn.Labels[cloud.LabelValidator] == validator && sn.Labels[LabelRole] == RoleChainDataSnapshot {
			l = append(l, sn)
		}
	}
	sort.Slice(l, func(i, j int) bool {
		if !l[i].CreatedAt.Equal(l[j].CreatedAt) {
			return l[i].CreatedAt.After(l[j].CreatedAt)
		}
		return l[i].Name > l[j].Name
	})
	return l
}

func (c *Cloud) newestReadyLocked(validator string) *snapshot {
	for _, sn := range c.ofValidatorLocked(validator) {
		if c.ready(sn) {
			return sn
		}
	}
	return nil
}

// DeleteSnapshot implements cloud.Snapshotter: an absent snapshot counts as
// deleted, an unowned one is ErrPermanent and stays.
func (c *Cloud) DeleteSnapshot(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("sim delete snapshot %s: %w", name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.injected(c.failBefore, OpDeleteSnapshot); err != nil {
		return err
	}
	if sn, ok := c.snapshots[name]; ok {
		if !sn.owned() {
			return &cloud.Error{Provider: ProviderName, Op: OpDeleteSnapshot, Kind: cloud.ErrPermanent,
				Err: fmt.Errorf("snapshot %s is not managed by failoverd; not deleting it", name)}
		}
		delete(c.snapshots, name)
		if err := c.save(); err != nil {
			c.snapshots[name] = sn
			return &cloud.Error{Provider: ProviderName, Op: OpDeleteSnapshot, Zone: sn.Zone, Kind: cloud.ErrTransient, Err: err}
		}
	}
	return c.injected(c.failAfter, OpDeleteSnapshot)
}

// AddUnownedSnapshot plants a ready snapshot failoverd did not take (no
// managed-by=failoverd label unless labels say so) for validator, as an
// operator's own snapshot.
func (c *Cloud) AddUnownedSnapshot(name, validator string, labels map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := maps.Clone(labels)
	if l == nil {
		l = map[string]string{}
	}
	l[cloud.LabelValidator] = cloud.LabelValue(validator)
	l[LabelRole] = RoleChainDataSnapshot
	c.snapshots[name] = &snapshot{Name: name, ID: "sim-unowned-" + name, Zone: DefaultZone, Labels: l, CreatedAt: c.now().Add(-c.snapshotTime)}
	if err := c.save(); err != nil {
		delete(c.snapshots, name)
	}
}
