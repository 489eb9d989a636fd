// Package gcp is the Google Compute Engine provider: it creates a standby
// as one VM (boot disk + data disk created with it) plus firewall rules, all
// labelled as failoverd's, and finds, lists and deletes them again. It talks
// to GCP through the cloud.google.com/go/compute REST clients behind the
// narrow computeAPI interface; gcpfake is a local server speaking the same
// wire protocol for tests. README.md describes what is created and why.
package gcp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/compute/apiv1/computepb"
	"github.com/google/uuid"
	"google.golang.org/api/option"
	"google.golang.org/protobuf/proto"

	"github.com/failoverd/failoverd/cloud"
)

// ProviderName is the provider's name in config and incidents.
const ProviderName = "gcp"

// APICalls are the IAM permissions of every Compute Engine call the provider
// makes (directly, or implied by what an instances.insert request contains).
// docs/cloud-permissions.md must list each; a test checks it.
var APICalls = []string{
	"compute.instances.create",          // instances.insert
	"compute.instances.get",             // instances.get
	"compute.instances.list",            // instances.aggregatedList
	"compute.instances.delete",          // instances.delete
	"compute.instances.setMetadata",     // insert with metadata (startup-script / user-data)
	"compute.instances.setLabels",       // insert with labels
	"compute.instances.setTags",         // insert with the network tag the firewall rules target
	"compute.disks.create",              // boot and data disk created by instances.insert
	"compute.disks.setLabels",           // labels on those disks
	"compute.disks.get",                 // disks.get (DeleteResource ownership check)
	"compute.disks.list",                // disks.aggregatedList
	"compute.disks.delete",              // disks.delete
	"compute.images.useReadOnly",        // boot disk from BootImage
	"compute.snapshots.list",            // snapshots.list (newest matching snapshot)
	"compute.snapshots.useReadOnly",     // data disk from a snapshot
	"compute.snapshots.create",          // snapshots.insert (SnapshotData)
	"compute.disks.createSnapshot",      // snapshots.insert with the data disk as sourceDisk
	"compute.snapshots.setLabels",       // snapshots.insert with labels
	"compute.snapshots.get",             // snapshots.get (idempotency, ownership check before a delete)
	"compute.snapshots.delete",          // snapshots.delete (DeleteSnapshot)
	"compute.subnetworks.use",           // the VM's network interface
	"compute.subnetworks.useExternalIp", // its external IP (p2p needs inbound)
	"compute.networks.updatePolicy",     // firewall rules on the network (insert/delete)
	"compute.firewalls.create",          // firewalls.insert
	"compute.firewalls.get",             // firewalls.get
	"compute.firewalls.list",            // firewalls.list
	"compute.firewalls.delete",          // firewalls.delete
	"compute.zoneOperations.get",        // zoneOperations.wait
	"compute.globalOperations.get",      // globalOperations.wait (firewall and snapshot operations)
}

// PortRule is one protocol/port pair a firewall rule allows.
type PortRule struct {
	Protocol string // "tcp" or "udp"
	Port     int
}

// Defaults for Options.
var (
	// DefaultP2PPorts: execution p2p (30303 tcp+udp), consensus p2p (9000
	// tcp+udp) and QUIC (9001 udp).
	DefaultP2PPorts = []PortRule{{"tcp", 30303}, {"udp", 30303}, {"tcp", 9000}, {"udp", 9000}, {"udp", 9001}}
	// DefaultAPIPorts: execution JSON-RPC 8545, beacon API 5052, metrics
	// 9100, standby agent 7443.
	DefaultAPIPorts = []PortRule{{"tcp", 8545}, {"tcp", 5052}, {"tcp", 9100}, {"tcp", 7443}}
)

const (
	defaultMachineType      = "n2-standard-8"
	defaultDiskType         = "pd-ssd"
	defaultDiskGB           = 2000
	defaultBootImage        = "projects/debian-cloud/global/images/family/debian-12"
	defaultBootDiskGB       = 20
	defaultNetwork          = "global/networks/default"
	defaultOperationTimeout = 5 * time.Minute
	// maxGenerations bounds how often an insert is re-sent under a new
	// request ID (see insertWithRetry).
	maxGenerations = 8
)

// Labels the provider adds besides cloud.OwnershipLabels.
const (
	// LabelSnapshot names the snapshot the data disk was created from, or
	// "none" for a blank disk.
	LabelSnapshot = "failoverd-snapshot"
	// LabelRole tells the resources of one standby apart: "standby" on the
	// instance, "boot"/"data" on its disks.
	LabelRole = "failoverd-role"
)

// Firewall rule name prefixes; see README.md for the ownership model.
const (
	FirewallP2PPrefix = "fo-p2p-"
	FirewallAPIPrefix = "fo-api-"
	// firewallOwnerPrefix starts the description of every rule failoverd
	// creates: firewall rules carry no labels.
	firewallOwnerPrefix = cloud.LabelManagedBy + "=" + cloud.ManagedByValue
)

// Options configures the provider.
type Options struct {
	// Project is the GCP project ID. Required.
	Project string
	// MachineType is used when the spec's Placement.MachineType is empty.
	MachineType string
	// DiskType is the data disk's type (default pd-ssd).
	DiskType string
	// DiskGB is the data disk's size when the spec's Placement.DiskGB is 0.
	DiskGB int
	// BootImage is the boot disk's image (default Debian 12).
	BootImage string
	// BootDiskGB defaults to 20.
	BootDiskGB int
	// Network defaults to "global/networks/default".
	Network string
	// Subnetwork, when set, is the subnetwork's name; the provider uses
	// "regions/{region}/subnetworks/{name}" with the region of the zone.
	Subnetwork string
	// Spot makes every standby a SPOT VM; spec.Placement.Spot turns it on
	// per standby.
	Spot bool
	// P2PPorts are opened to 0.0.0.0/0 (default DefaultP2PPorts).
	P2PPorts []PortRule
	// APIPorts are opened only to APISourceRanges (default DefaultAPIPorts).
	APIPorts []PortRule
	// APISourceRanges are CIDRs allowed to reach APIPorts; empty → no API
	// rule at all, the ports stay closed to everyone.
	APISourceRanges []string
	// SnapshotLabels, when set, makes the data disk start from the newest
	// READY snapshot whose labels match these plus
	// failoverd-validator=<validator>; with none, the disk is blank. The
	// instance's failoverd-snapshot label says which.
	SnapshotLabels map[string]string
	// OperationTimeout bounds the wait for one operation (default 5m).
	OperationTimeout time.Duration
	// Endpoint overrides the Compute endpoint ("" → Google's); tests use gcpfake.
	Endpoint string
	// ClientOptions are passed to every SDK client. Without any credential
	// option, Application Default Credentials are used.
	ClientOptions []option.ClientOption
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives what the provider decided (snapshot chosen or not,
	// retries under a new request ID). Default: discarded.
	Logger *slog.Logger
}

// Provider is the GCP implementation of cloud.Provider.
type Provider struct {
	api     computeAPI
	o       Options
	log     *slog.Logger
	closeFn func() error
}

var _ cloud.Provider = (*Provider)(nil)

// New builds the REST clients (instances, disks, snapshots, firewalls, zone
// and global operations) and returns the provider. Close releases them.
func New(ctx context.Context, o Options) (*Provider, error) {
	if o.Project == "" {
		return nil, errors.New("gcp: Options.Project is required")
	}
	var opts []option.ClientOption
	if o.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(o.Endpoint))
	}
	opts = append(opts, o.ClientOptions...)
	a, err := newRESTAPI(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("gcp: compute clients: %w", err)
	}
	p := newProvider(a, o)
	p.closeFn = a.Close
	return p, nil
}

// newProvider is the constructor unit tests call with a stub API.
func newProvider(api computeAPI, o Options) *Provider {
	if o.MachineType == "" {
		o.MachineType = defaultMachineType
	}
	if o.DiskType == "" {
		o.DiskType = defaultDiskType
	}
	if o.DiskGB == 0 {
		o.DiskGB = defaultDiskGB
	}
	if o.BootImage == "" {
		o.BootImage = defaultBootImage
	}
	if o.BootDiskGB == 0 {
		o.BootDiskGB = defaultBootDiskGB
	}
	if o.Network == "" {
		o.Network = defaultNetwork
	}
	if o.P2PPorts == nil {
		o.P2PPorts = DefaultP2PPorts
	}
	if o.APIPorts == nil {
		o.APIPorts = DefaultAPIPorts
	}
	if o.OperationTimeout <= 0 {
		o.OperationTimeout = defaultOperationTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Provider{api: api, o: o, log: log}
}

// Close releases the SDK clients.
func (p *Provider) Close() error {
	if p.closeFn == nil {
		return nil
	}
	return p.closeFn()
}

// Name implements cloud.Provider.
func (p *Provider) Name() string { return ProviderName }

// Operation names used in errors.
const (
	opEnsure = "ensure"
	opGet    = "get"
	opList   = "list"
	opDelete = "delete"
)

var rfc1035 = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)

// requestNamespace scopes failoverd's request IDs.
var requestNamespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/failoverd/failoverd/cloud/gcp"))

// requestID is the deterministic requestId of one mutating step: a UUIDv5 of
// the key (the incident ID for creation, the resource's name and GCP ID for
// deletion), the step and the zone ("global" for global resources). A retry
// or a restarted failoverd sends the same ID, and GCP ignores the repeat.
func requestID(key, step, zone string) string {
	return uuid.NewSHA1(requestNamespace, []byte(key+"\x00"+step+"\x00"+zone)).String()
}

func generationStep(step string, gen int) string {
	if gen == 0 {
		return step
	}
	return step + "#" + strconv.Itoa(gen)
}

func permanent(op, zone string, format string, args ...any) error {
	return &cloud.Error{Provider: ProviderName, Op: op, Zone: zone, Kind: cloud.ErrPermanent, Err: fmt.Errorf(format, args...)}
}

func cancelled(ctx context.Context, op, name string) error {
	if err := ctx.Err(); err != nil {
		return classify(ctx, op, "", fmt.Errorf("%s: %w", name, err))
	}
	return nil
}

// Ensure implements cloud.Provider. An owned instance named spec.Name is
// returned wherever it is; otherwise the firewall rules and the instance
// (with its boot and data disks) are created in spec.Zone.
func (p *Provider) Ensure(ctx context.Context, spec cloud.StandbySpec) (cloud.Standby, error) {
	if err := cancelled(ctx, opEnsure, spec.Name); err != nil {
		return cloud.Standby{}, err
	}
	if !rfc1035.MatchString(spec.Name) {
		return cloud.Standby{}, permanent(opEnsure, spec.Zone, "invalid instance name %q", spec.Name)
	}
	if limit := cloud.MaxUserData[ProviderName]; len(spec.UserData) > limit {
		return cloud.Standby{}, permanent(opEnsure, spec.Zone, "user data of %d bytes exceeds the GCP metadata value limit of %d bytes", len(spec.UserData), limit)
	}
	if spec.Zone == "" {
		return cloud.Standby{}, permanent(opEnsure, "", "spec.Zone is empty")
	}
	if spec.IncidentID == "" {
		return cloud.Standby{}, permanent(opEnsure, spec.Zone, "spec.IncidentID is empty (request IDs derive from it)")
	}

	found, err := p.findInstances(ctx, spec.Name, false)
	if err != nil {
		return cloud.Standby{}, classify(ctx, opEnsure, "", err)
	}
	for _, in := range found {
		if owned(in.GetLabels()) {
			return p.standby(in), nil
		}
	}
	for _, in := range found {
		if zoneOf(in.GetZone()) == spec.Zone {
			return cloud.Standby{}, permanent(opEnsure, spec.Zone, "instance %s exists and is not managed by failoverd", spec.Name)
		}
	}

	if err := p.ensureFirewalls(ctx, spec); err != nil {
		return cloud.Standby{}, err
	}
	snap, err := p.pickSnapshot(ctx, spec)
	if err != nil {
		return cloud.Standby{}, classify(ctx, opEnsure, spec.Zone, fmt.Errorf("list snapshots: %w", err))
	}
	in, err := p.insertInstance(ctx, spec, snap)
	if err != nil {
		return cloud.Standby{}, err
	}
	return p.standby(in), nil
}

// insertInstance sends instances.insert and waits for it. See
// insertWithRetry for why there are generations of request IDs.
func (p *Provider) insertInstance(ctx context.Context, spec cloud.StandbySpec, snap *computepb.Snapshot) (*computepb.Instance, error) {
	zone := spec.Zone
	res, err := p.instanceResource(spec, snap)
	if err != nil {
		return nil, err
	}
	var got *computepb.Instance
	err = p.insertWithRetry(ctx, insertStep{
		key: spec.IncidentID, step: "insert-instance", zone: zone, what: "instance " + spec.Name,
		insert: func(ctx context.Context, rid string) (*computepb.Operation, error) {
			return p.api.InsertInstance(ctx, &computepb.InsertInstanceRequest{
				Project: p.o.Project, Zone: zone, RequestId: proto.String(rid),
				InstanceResource: res,
			})
		},
		get: func(ctx context.Context) error {
			in, err := p.api.GetInstance(ctx, &computepb.GetInstanceRequest{Project: p.o.Project, Zone: zone, Instance: spec.Name})
			got = in
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	if !owned(got.GetLabels()) {
		return nil, permanent(opEnsure, zone, "instance %s exists and is not managed by failoverd", spec.Name)
	}
	return got, nil
}

type insertStep struct {
	key, step, zone, what string
	insert                func(ctx context.Context, requestID string) (*computepb.Operation, error)
	// get fetches the resource; a not-found error means it does not exist.
	get func(ctx context.Context) error
}

// insertWithRetry inserts a resource idempotently. The request ID is
// deterministic, so a repeat (retry, restart, concurrent Ensure) is ignored
// by GCP, which answers with the first request's operation. That has two
// consequences handled here:
//   - the replayed operation may be DONE with an error from an earlier
//     attempt (a stockout an hour ago): an insert answered with an operation
//     that is already DONE with an error is such a replay, and is re-sent
//     under the next generation of the ID;
//   - the replayed operation may be DONE without error while the resource
//     has since been deleted: the resource is fetched after the operation,
//     and a not-found also moves to the next generation.
//
// Generations are deterministic too (step, step#1, step#2, …), so a
// restarted failoverd walks the same IDs.
func (p *Provider) insertWithRetry(ctx context.Context, s insertStep) error {
	scope := s.zone
	if scope == "" {
		scope = "global"
	}
	var lastErr error
	for gen := range maxGenerations {
		rid := requestID(s.key, generationStep(s.step, gen), scope)
		op, err := s.insert(ctx, rid)
		exists := false
		switch {
		case err != nil && isAlreadyExists(err):
			exists = true
		case err != nil && isNotFound(err):
			// Not found on an insert: something the request refers to (zone,
			// image, snapshot, network) does not exist.
			return permanent(opEnsure, s.zone, "insert %s: %w", s.what, err)
		case err != nil:
			return classify(ctx, opEnsure, s.zone, fmt.Errorf("insert %s: %w", s.what, err))
		case op.GetStatus() == computepb.Operation_DONE && operationError(op) != nil:
			// A replay of an earlier attempt that failed.
			lastErr = operationError(op)
			if isAlreadyExists(lastErr) {
				exists = true
				break
			}
			p.log.InfoContext(ctx, "gcp: insert replayed an earlier failed attempt; retrying under a new request ID",
				"what", s.what, "generation", gen+1, "error", lastErr)
			continue
		default:
			if err := p.await(ctx, op, s.zone); err != nil {
				if !isAlreadyExists(err) {
					return classify(ctx, opEnsure, s.zone, fmt.Errorf("insert %s: %w", s.what, err))
				}
				exists = true
			}
		}
		err = s.get(ctx)
		if err == nil {
			return nil
		}
		if !isNotFound(err) {
			return classify(ctx, opEnsure, s.zone, fmt.Errorf("get %s: %w", s.what, err))
		}
		if exists {
			// alreadyExists, yet not there: the name is held by something
			// else (for an instance: a leftover data disk).
			return permanent(opEnsure, s.zone, "insert %s: already exists, but it cannot be read back: %v", s.what, err)
		}
		lastErr = err
		p.log.InfoContext(ctx, "gcp: insert succeeded but the resource is gone (replayed request ID); retrying under a new request ID",
			"what", s.what, "generation", gen+1)
	}
	return classify(ctx, opEnsure, s.zone, fmt.Errorf("insert %s: gave up after %d request IDs: %w", s.what, maxGenerations, lastErr))
}

// await waits until op is DONE (zone "" → a global operation), at most
// OperationTimeout, and returns its error. A timeout is ErrTransient; the
// caller's cancellation is returned as is (classify wraps it).
func (p *Provider) await(ctx context.Context, op *computepb.Operation, zone string) error {
	octx, cancel := context.WithTimeout(ctx, p.o.OperationTimeout)
	defer cancel()
	if z := zoneOf(op.GetZone()); z != "" {
		zone = z
	}
	name := op.GetName()
	pause := 100 * time.Millisecond
	for op.GetStatus() != computepb.Operation_DONE {
		var err error
		// wait blocks server-side until DONE or about two minutes pass.
		if zone != "" {
			op, err = p.api.WaitZoneOperation(octx, &computepb.WaitZoneOperationRequest{Project: p.o.Project, Zone: zone, Operation: name})
		} else {
			op, err = p.api.WaitGlobalOperation(octx, &computepb.WaitGlobalOperationRequest{Project: p.o.Project, Operation: name})
		}
		if err != nil {
			if ctx.Err() == nil && octx.Err() != nil {
				return &cloud.Error{Provider: ProviderName, Op: "await", Zone: zone, Kind: cloud.ErrTransient,
					Err: fmt.Errorf("operation %s not done within %v: %w", name, p.o.OperationTimeout, octx.Err())}
			}
			return fmt.Errorf("wait for operation %s: %w", name, err)
		}
		if op.GetStatus() == computepb.Operation_DONE {
			break
		}
		t := time.NewTimer(pause)
		select {
		case <-octx.Done():
			t.Stop()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &cloud.Error{Provider: ProviderName, Op: "await", Zone: zone, Kind: cloud.ErrTransient,
				Err: fmt.Errorf("operation %s not done within %v: %w", name, p.o.OperationTimeout, octx.Err())}
		case <-t.C:
		}
		pause = min(pause*2, 5*time.Second)
	}
	return operationError(op)
}

// instanceResource is the instance insert body.
func (p *Provider) instanceResource(spec cloud.StandbySpec, snap *computepb.Snapshot) (*computepb.Instance, error) {
	zone := spec.Zone
	labels := cloud.OwnershipLabels(spec)
	if snap != nil {
		labels[LabelSnapshot] = cloud.LabelValue(snap.GetName())
	} else {
		labels[LabelSnapshot] = "none"
	}
	withRole := func(role string) map[string]string {
		l := maps.Clone(labels)
		l[LabelRole] = role
		return l
	}
	labels[LabelRole] = "standby"

	machineType := spec.Placement.MachineType
	if machineType == "" {
		machineType = p.o.MachineType
	}
	diskGB := spec.Placement.DiskGB
	if diskGB == 0 {
		diskGB = p.o.DiskGB
	}
	data := &computepb.AttachedDiskInitializeParams{
		DiskName:   proto.String(DataDiskName(spec.Name)),
		DiskSizeGb: proto.Int64(int64(diskGB)),
		DiskType:   proto.String(fmt.Sprintf("zones/%s/diskTypes/%s", zone, p.o.DiskType)),
		Labels:     withRole("data"),
	}
	if snap != nil {
		data.SourceSnapshot = proto.String(snapshotRef(p.o.Project, snap))
	}
	nic := &computepb.NetworkInterface{
		Network: proto.String(p.o.Network),
		// An external IP: p2p peers must reach the node and the API source
		// ranges are usually the operator's home address.
		AccessConfigs: []*computepb.AccessConfig{{Name: proto.String("External NAT"), Type: proto.String("ONE_TO_ONE_NAT")}},
	}
	if p.o.Subnetwork != "" {
		region, err := regionOf(zone)
		if err != nil {
			return nil, permanent(opEnsure, zone, "%v", err)
		}
		nic.Subnetwork = proto.String(fmt.Sprintf("regions/%s/subnetworks/%s", region, p.o.Subnetwork))
	}
	in := &computepb.Instance{
		Name:        proto.String(spec.Name),
		Description: proto.String(fmt.Sprintf("failoverd standby for incident %s (validator %s)", spec.IncidentID, spec.Validator)),
		MachineType: proto.String(fmt.Sprintf("zones/%s/machineTypes/%s", zone, machineType)),
		Labels:      labels,
		Tags:        &computepb.Tags{Items: []string{spec.Name}},
		Disks: []*computepb.AttachedDisk{
			{
				Boot: proto.Bool(true), AutoDelete: proto.Bool(true), DeviceName: proto.String("boot"),
				Type: proto.String("PERSISTENT"), Mode: proto.String("READ_WRITE"),
				InitializeParams: &computepb.AttachedDiskInitializeParams{
					SourceImage: proto.String(p.o.BootImage),
					DiskSizeGb:  proto.Int64(int64(p.o.BootDiskGB)),
					Labels:      withRole("boot"),
				},
			},
			{
				// AutoDelete: deleting the instance deletes the data disk,
				// so nothing is left to bill even if Delete is never
				// called again after the instance went.
				Boot: proto.Bool(false), AutoDelete: proto.Bool(true), DeviceName: proto.String("data"),
				Type: proto.String("PERSISTENT"), Mode: proto.String("READ_WRITE"),
				InitializeParams: data,
			},
		},
		NetworkInterfaces: []*computepb.NetworkInterface{nic},
		Scheduling:        p.scheduling(spec),
	}
	if len(spec.UserData) > 0 {
		in.Metadata = &computepb.Metadata{Items: []*computepb.Items{{
			Key: proto.String(userDataKey(spec.UserData)), Value: proto.String(string(spec.UserData)),
		}}}
	}
	return in, nil
}

// userDataKey picks the metadata key for a bootstrap: cloud-init documents
// (#cloud-config, #include, MIME multipart) go to "user-data", which
// cloud-init images read; anything else is a script for the guest agent's
// "startup-script", which every Google image runs on boot.
func userDataKey(b []byte) string {
	s := string(b[:min(len(b), 64)])
	for _, p := range []string{"#cloud-config", "#include", "#cloud-boothook", "Content-Type: multipart/"} {
		if strings.HasPrefix(s, p) {
			return "user-data"
		}
	}
	return "startup-script"
}

// scheduling: SPOT VMs are deleted when preempted (instanceTerminationAction
// DELETE), disks included, so a preempted standby is simply gone (Get →
// ErrNotFound) and nothing keeps billing; the engine provisions again.
func (p *Provider) scheduling(spec cloud.StandbySpec) *computepb.Scheduling {
	if p.o.Spot || spec.Placement.Spot {
		return &computepb.Scheduling{
			ProvisioningModel:         proto.String("SPOT"),
			InstanceTerminationAction: proto.String("DELETE"),
			AutomaticRestart:          proto.Bool(false),
			OnHostMaintenance:         proto.String("TERMINATE"),
		}
	}
	return &computepb.Scheduling{
		ProvisioningModel: proto.String("STANDARD"),
		AutomaticRestart:  proto.Bool(true),
		OnHostMaintenance: proto.String("MIGRATE"),
	}
}

// DataDiskName is the data disk's name for a standby.
func DataDiskName(name string) string { return name + "-data" }

// FirewallNames are the names of a standby's p2p and API rules. Names over
// 63 characters are cut and made unique with a hash of the standby's name.
func FirewallNames(name string) (p2p, api string) {
	return firewallName(FirewallP2PPrefix, name), firewallName(FirewallAPIPrefix, name)
}

func firewallName(prefix, name string) string {
	n := prefix + name
	if len(n) <= 63 {
		return n
	}
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:4])
	return strings.TrimRight(n[:63-len(h)-1], "-") + "-" + h
}

func snapshotRef(project string, s *computepb.Snapshot) string {
	if l := s.GetSelfLink(); l != "" {
		return l
	}
	return fmt.Sprintf("projects/%s/global/snapshots/%s", project, s.GetName())
}

// firewallDescription encodes ownership for firewall rules, which have no
// labels: "managed-by=failoverd failoverd-incident=… failoverd-site=…
// failoverd-validator=… failoverd-standby=<name>".
func firewallDescription(spec cloud.StandbySpec) string {
	l := map[string]string{
		cloud.LabelIncident:  cloud.LabelValue(spec.IncidentID),
		cloud.LabelValidator: cloud.LabelValue(spec.Validator),
		cloud.LabelSite:      cloud.LabelValue(spec.Site),
		"failoverd-standby":  spec.Name,
	}
	parts := []string{firewallOwnerPrefix}
	for _, k := range slices.Sorted(maps.Keys(l)) {
		parts = append(parts, k+"="+l[k])
	}
	return strings.Join(parts, " ")
}

// firewallLabels parses a description written by firewallDescription; ok is
// false for a rule failoverd does not own.
func firewallLabels(f *computepb.Firewall) (map[string]string, bool) {
	name := f.GetName()
	if !strings.HasPrefix(name, FirewallP2PPrefix) && !strings.HasPrefix(name, FirewallAPIPrefix) {
		return nil, false
	}
	d := f.GetDescription()
	if d != firewallOwnerPrefix && !strings.HasPrefix(d, firewallOwnerPrefix+" ") {
		return nil, false
	}
	l := map[string]string{}
	for _, kv := range strings.Fields(d) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			l[k] = v
		}
	}
	return l, true
}

func (p *Provider) firewallResources(spec cloud.StandbySpec) []*computepb.Firewall {
	p2pName, apiName := FirewallNames(spec.Name)
	desc := firewallDescription(spec)
	mk := func(name string, rules []PortRule, ranges []string) *computepb.Firewall {
		return &computepb.Firewall{
			Name:         proto.String(name),
			Description:  proto.String(desc),
			Network:      proto.String(p.o.Network),
			Direction:    proto.String("INGRESS"),
			Priority:     proto.Int32(1000),
			SourceRanges: slices.Clone(ranges),
			TargetTags:   []string{spec.Name},
			Allowed:      allowed(rules),
		}
	}
	out := []*computepb.Firewall{mk(p2pName, p.o.P2PPorts, []string{"0.0.0.0/0"})}
	if len(p.o.APISourceRanges) > 0 && len(p.o.APIPorts) > 0 {
		out = append(out, mk(apiName, p.o.APIPorts, p.o.APISourceRanges))
	}
	return out
}

// allowed groups port rules by protocol, in a stable order.
func allowed(rules []PortRule) []*computepb.Allowed {
	byProto := map[string][]string{}
	for _, r := range rules {
		proto := strings.ToLower(r.Protocol)
		port := strconv.Itoa(r.Port)
		if !slices.Contains(byProto[proto], port) {
			byProto[proto] = append(byProto[proto], port)
		}
	}
	var out []*computepb.Allowed
	for _, pr := range slices.Sorted(maps.Keys(byProto)) {
		out = append(out, &computepb.Allowed{IPProtocol: proto.String(pr), Ports: byProto[pr]})
	}
	return out
}

func (p *Provider) validateFirewallOptions() error {
	for _, r := range append(slices.Clone(p.o.P2PPorts), p.o.APIPorts...) {
		if r.Protocol != "tcp" && r.Protocol != "udp" {
			return fmt.Errorf("port rule %v: protocol must be tcp or udp", r)
		}
		if r.Port < 1 || r.Port > 65535 {
			return fmt.Errorf("port rule %v: port out of range", r)
		}
	}
	for _, c := range p.o.APISourceRanges {
		pfx, err := netip(c)
		if err != nil {
			return err
		}
		if pfx == "0.0.0.0/0" || pfx == "::/0" {
			return fmt.Errorf("APISourceRanges %q opens the API ports to the world", c)
		}
	}
	return nil
}

func netip(c string) (string, error) {
	_, n, err := net.ParseCIDR(c)
	if err != nil {
		return "", fmt.Errorf("APISourceRanges: %w", err)
	}
	return n.String(), nil
}

// ensureFirewalls creates the standby's rules (global resources); a rule
// that exists already counts as done.
func (p *Provider) ensureFirewalls(ctx context.Context, spec cloud.StandbySpec) error {
	if err := p.validateFirewallOptions(); err != nil {
		return permanent(opEnsure, spec.Zone, "firewall options: %v", err)
	}
	for _, fw := range p.firewallResources(spec) {
		name := fw.GetName()
		var got *computepb.Firewall
		err := p.insertWithRetry(ctx, insertStep{
			key: spec.IncidentID, step: "insert-firewall-" + name, zone: "", what: "firewall " + name,
			insert: func(ctx context.Context, rid string) (*computepb.Operation, error) {
				return p.api.InsertFirewall(ctx, &computepb.InsertFirewallRequest{Project: p.o.Project, RequestId: proto.String(rid), FirewallResource: fw})
			},
			get: func(ctx context.Context) error {
				f, err := p.api.GetFirewall(ctx, &computepb.GetFirewallRequest{Project: p.o.Project, Firewall: name})
				got = f
				return err
			},
		})
		if err != nil {
			if ce := (*cloud.Error)(nil); errors.As(err, &ce) {
				ce.Zone = spec.Zone
			}
			return err
		}
		if _, ok := firewallLabels(got); !ok {
			return permanent(opEnsure, spec.Zone, "firewall rule %s exists and is not managed by failoverd", name)
		}
	}
	return nil
}

// pickSnapshot returns the newest READY snapshot matching SnapshotLabels and
// the validator, or nil (blank disk).
func (p *Provider) pickSnapshot(ctx context.Context, spec cloud.StandbySpec) (*computepb.Snapshot, error) {
	if len(p.o.SnapshotLabels) == 0 {
		return nil, nil
	}
	want := maps.Clone(p.o.SnapshotLabels)
	want[cloud.LabelValidator] = cloud.LabelValue(spec.Validator)
	var terms []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		terms = append(terms, fmt.Sprintf("(labels.%s = %q)", k, want[k]))
	}
	snaps, err := p.api.ListSnapshots(ctx, &computepb.ListSnapshotsRequest{Project: p.o.Project, Filter: proto.String(strings.Join(terms, " AND "))})
	if err != nil {
		return nil, err
	}
	var best *computepb.Snapshot
	var bestAt time.Time
	for _, s := range snaps {
		if s.GetStatus() != "READY" || !hasLabels(s.GetLabels(), want) {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, s.GetCreationTimestamp())
		if err != nil {
			continue
		}
		if best == nil || at.After(bestAt) || (at.Equal(bestAt) && s.GetName() > best.GetName()) {
			best, bestAt = s, at
		}
	}
	if best == nil {
		p.log.WarnContext(ctx, "gcp: no READY snapshot matches; the data disk starts blank", "standby", spec.Name, "labels", want)
	} else {
		p.log.InfoContext(ctx, "gcp: data disk from snapshot", "standby", spec.Name, "snapshot", best.GetName(), "created", bestAt)
	}
	return best, nil
}

func hasLabels(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

func owned(l map[string]string) bool { return l[cloud.LabelManagedBy] == cloud.ManagedByValue }

const ownedFilter = `labels.` + cloud.LabelManagedBy + ` = "` + cloud.ManagedByValue + `"`

// findInstances finds instances named name in every zone of the project;
// ownedOnly narrows to failoverd's. Ownership is checked on the client too.
func (p *Provider) findInstances(ctx context.Context, name string, ownedOnly bool) ([]*computepb.Instance, error) {
	filter := fmt.Sprintf("name = %q", name)
	if ownedOnly {
		filter = fmt.Sprintf("(%s) AND (%s)", filter, ownedFilter)
	}
	all, err := p.api.AggregatedListInstances(ctx, &computepb.AggregatedListInstancesRequest{Project: p.o.Project, Filter: proto.String(filter)})
	if err != nil {
		return nil, err
	}
	var out []*computepb.Instance
	for _, in := range all {
		if in.GetName() == name && (!ownedOnly || owned(in.GetLabels())) {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetZone() < out[j].GetZone() })
	return out, nil
}

// Get implements cloud.Provider.
func (p *Provider) Get(ctx context.Context, name string) (cloud.Standby, error) {
	if err := cancelled(ctx, opGet, name); err != nil {
		return cloud.Standby{}, err
	}
	found, err := p.findInstances(ctx, name, true)
	if err != nil {
		return cloud.Standby{}, classify(ctx, opGet, "", err)
	}
	if len(found) == 0 {
		return cloud.Standby{}, &cloud.Error{Provider: ProviderName, Op: opGet, Kind: cloud.ErrNotFound, Err: fmt.Errorf("instance %s", name)}
	}
	return p.standby(found[0]), nil
}

// List implements cloud.Provider: failoverd's instances in every zone,
// sorted by name.
func (p *Provider) List(ctx context.Context) ([]cloud.Standby, error) {
	if err := cancelled(ctx, opList, "standbys"); err != nil {
		return nil, err
	}
	all, err := p.api.AggregatedListInstances(ctx, &computepb.AggregatedListInstancesRequest{Project: p.o.Project, Filter: proto.String(ownedFilter)})
	if err != nil {
		return nil, classify(ctx, opList, "", err)
	}
	var out []cloud.Standby
	for _, in := range all {
		if owned(in.GetLabels()) {
			out = append(out, p.standby(in))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].Zone < out[j].Zone
	})
	return out, nil
}

// Delete implements cloud.Provider: the owned instance (its disks go with
// it), then any owned disk of the standby left behind, then its firewall
// rules. What is absent counts as deleted; unowned resources are not touched.
func (p *Provider) Delete(ctx context.Context, name string) error {
	if err := cancelled(ctx, opDelete, name); err != nil {
		return err
	}
	found, err := p.findInstances(ctx, name, true)
	if err != nil {
		return classify(ctx, opDelete, "", err)
	}
	for _, in := range found {
		if err := p.deleteInstance(ctx, in); err != nil {
			return err
		}
	}
	// The disks are auto-deleted with the instance; this catches a disk
	// left behind (auto-delete turned off by hand, a half-failed delete).
	disks, err := p.api.AggregatedListDisks(ctx, &computepb.AggregatedListDisksRequest{
		Project: p.o.Project,
		Filter:  proto.String(ownedFilter),
	})
	if err != nil {
		return classify(ctx, opDelete, "", fmt.Errorf("list disks: %w", err))
	}
	for _, d := range disks {
		if (d.GetName() == DataDiskName(name) || d.GetName() == name) && owned(d.GetLabels()) && len(d.GetUsers()) == 0 {
			if err := p.deleteDisk(ctx, d); err != nil {
				return err
			}
		}
	}
	p2p, api := FirewallNames(name)
	for _, fw := range []string{p2p, api} {
		if err := p.deleteFirewallByName(ctx, fw); err != nil {
			return err
		}
	}
	return nil
}

// The delete request ID includes the resource's GCP ID: retries of one
// delete share it, and a later instance with the same name gets a new one.
func (p *Provider) deleteInstance(ctx context.Context, in *computepb.Instance) error {
	zone := zoneOf(in.GetZone())
	rid := requestID(in.GetName()+"/"+strconv.FormatUint(in.GetId(), 10), "delete-instance", zone)
	op, err := p.api.DeleteInstance(ctx, &computepb.DeleteInstanceRequest{Project: p.o.Project, Zone: zone, Instance: in.GetName(), RequestId: proto.String(rid)})
	if err == nil {
		err = p.await(ctx, op, zone)
	}
	if err != nil && !isNotFound(err) {
		return classify(ctx, opDelete, zone, fmt.Errorf("delete instance %s: %w", in.GetName(), err))
	}
	return nil
}

func (p *Provider) deleteDisk(ctx context.Context, d *computepb.Disk) error {
	zone := zoneOf(d.GetZone())
	rid := requestID(d.GetName()+"/"+strconv.FormatUint(d.GetId(), 10), "delete-disk", zone)
	op, err := p.api.DeleteDisk(ctx, &computepb.DeleteDiskRequest{Project: p.o.Project, Zone: zone, Disk: d.GetName(), RequestId: proto.String(rid)})
	if err == nil {
		err = p.await(ctx, op, zone)
	}
	if err != nil && !isNotFound(err) {
		return classify(ctx, opDelete, zone, fmt.Errorf("delete disk %s: %w", d.GetName(), err))
	}
	return nil
}

func (p *Provider) deleteFirewallByName(ctx context.Context, name string) error {
	fw, err := p.api.GetFirewall(ctx, &computepb.GetFirewallRequest{Project: p.o.Project, Firewall: name})
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return classify(ctx, opDelete, "", fmt.Errorf("get firewall %s: %w", name, err))
	}
	if _, ok := firewallLabels(fw); !ok {
		return nil // not ours: leave it
	}
	return p.deleteFirewall(ctx, fw)
}

func (p *Provider) deleteFirewall(ctx context.Context, fw *computepb.Firewall) error {
	rid := requestID(fw.GetName()+"/"+strconv.FormatUint(fw.GetId(), 10), "delete-firewall", "global")
	op, err := p.api.DeleteFirewall(ctx, &computepb.DeleteFirewallRequest{Project: p.o.Project, Firewall: fw.GetName(), RequestId: proto.String(rid)})
	if err == nil {
		err = p.await(ctx, op, "")
	}
	if err != nil && !isNotFound(err) {
		return classify(ctx, opDelete, "", fmt.Errorf("delete firewall %s: %w", fw.GetName(), err))
	}
	return nil
}

// standby converts an instance.
func (p *Provider) standby(in *computepb.Instance) cloud.Standby {
	created, _ := time.Parse(time.RFC3339Nano, in.GetCreationTimestamp())
	return cloud.Standby{
		Name:      in.GetName(),
		Provider:  ProviderName,
		Zone:      zoneOf(in.GetZone()),
		State:     stateOf(in.GetStatus()),
		Labels:    maps.Clone(in.GetLabels()),
		CreatedAt: created,
		Address:   addressOf(in),
	}
}

// stateOf maps GCE instance statuses.
func stateOf(s string) string {
	switch s {
	case "PROVISIONING", "STAGING", "PENDING":
		return cloud.StatePending
	case "RUNNING", "REPAIRING":
		return cloud.StateRunning
	case "STOPPING", "SUSPENDING", "PENDING_STOP":
		return cloud.StateStopping
	case "STOPPED", "SUSPENDED", "TERMINATED":
		return cloud.StateTerminated
	default:
		return cloud.StatePending
	}
}

// addressOf is the instance's external IP, else its internal one.
func addressOf(in *computepb.Instance) string {
	for _, nic := range in.GetNetworkInterfaces() {
		for _, ac := range nic.GetAccessConfigs() {
			if ip := ac.GetNatIP(); ip != "" {
				return ip
			}
		}
	}
	for _, nic := range in.GetNetworkInterfaces() {
		if ip := nic.GetNetworkIP(); ip != "" {
			return ip
		}
	}
	return ""
}

// zoneOf returns the last path element of a zone URL ("…/zones/us-central1-a").
func zoneOf(u string) string {
	if i := strings.LastIndexByte(u, '/'); i >= 0 {
		return u[i+1:]
	}
	return u
}

// regionOf: "europe-west4-b" → "europe-west4".
func regionOf(zone string) (string, error) {
	i := strings.LastIndexByte(zone, '-')
	if i <= 0 {
		return "", fmt.Errorf("cannot derive a region from zone %q", zone)
	}
	return zone[:i], nil
}
