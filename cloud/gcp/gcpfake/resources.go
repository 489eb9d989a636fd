package gcpfake

import (
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/compute/apiv1/computepb"
	"google.golang.org/protobuf/proto"
)

var (
	machineTypeRE = regexp.MustCompile(`^(?:(?:https://www\.googleapis\.com/compute/v1/)?projects/[^/]+/)?zones/([^/]+)/machineTypes/([a-z0-9-]+)$`)
	diskTypeRE    = regexp.MustCompile(`^(?:(?:https://www\.googleapis\.com/compute/v1/)?projects/[^/]+/)?zones/([^/]+)/diskTypes/(pd-standard|pd-balanced|pd-ssd|pd-extreme|hyperdisk-balanced|hyperdisk-throughput|hyperdisk-extreme)$`)
	imageRE       = regexp.MustCompile(`^(?:(?:https://www\.googleapis\.com/compute/v1/)?projects/[^/]+/)?global/images/(?:family/)?[a-z]([-a-z0-9]*[a-z0-9])?$`)
	snapshotRE    = regexp.MustCompile(`^(?:(?:https://www\.googleapis\.com/compute/v1/)?projects/[^/]+/)?global/snapshots/([a-z]([-a-z0-9]*[a-z0-9])?)$`)
	networkRE     = regexp.MustCompile(`^(?:(?:https://www\.googleapis\.com/compute/v1/)?projects/[^/]+/)?global/networks/[a-z]([-a-z0-9]*[a-z0-9])?$`)
	subnetRE      = regexp.MustCompile(`^(?:(?:https://www\.googleapis\.com/compute/v1/)?projects/[^/]+/)?regions/([^/]+)/subnetworks/[a-z]([-a-z0-9]*[a-z0-9])?$`)
)

func validLabels(what string, l map[string]string) *apiError {
	if len(l) > 64 {
		return badRequest("Invalid value for field '%s.labels': too many labels", what)
	}
	for k, v := range l {
		if !labelKeyRE.MatchString(k) {
			return badRequest("Invalid value for field '%s.labels': label key '%s' is invalid", what, k)
		}
		if !labelValRE.MatchString(v) {
			return badRequest("Invalid value for field '%s.labels': label value '%s' for key '%s' is invalid", what, v, k)
		}
	}
	return nil
}

// ---- instances ----

func (c *call) insertInstance(zone string) {
	in := &computepb.Instance{}
	if !c.decode(in) {
		return
	}
	if e := validateInstance(in, zone); e != nil {
		e.write(c.w)
		return
	}
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.replay() {
		return
	}
	s.settle()
	name := in.GetName()
	if _, ok := s.instances[zone+"/"+name]; ok {
		errf(409, "alreadyExists", "The resource 'projects/%s/zones/%s/instances/%s' already exists", c.project, zone, name).write(c.w)
		return
	}
	for _, d := range in.GetDisks() {
		if src := d.GetInitializeParams().GetSourceSnapshot(); src != "" {
			m := snapshotRE.FindStringSubmatch(src)
			sn := s.snapshots[m[1]]
			if sn == nil {
				notFound("projects/" + c.project + "/global/snapshots/" + m[1]).write(c.w)
				return
			}
			if size := d.GetInitializeParams().GetDiskSizeGb(); size != 0 && size < sn.GetDiskSizeGb() {
				badRequest("Invalid value for field 'resource.disks[].initializeParams.diskSizeGb': '%d'. Requested disk size cannot be smaller than the snapshot size (%d GB)", size, sn.GetDiskSizeGb()).write(c.w)
				return
			}
			if sn.GetStatus() != "READY" {
				badRequest("The snapshot 'projects/%s/global/snapshots/%s' is not ready", c.project, m[1]).write(c.w)
				return
			}
		}
	}
	target := c.url("zones", zone, "instances", name)
	if s.exhausted[zone] {
		op := c.newOp(zone, "insert", target, nil, failedOp("ZONE_RESOURCE_POOL_EXHAUSTED",
			fmt.Sprintf("The zone 'projects/%s/zones/%s' does not have enough resources available to fulfill the request.  Try a different zone, or try again later.", c.project, zone),
			503, "SERVICE UNAVAILABLE"))
		c.started(op)
		return
	}
	if f := s.takeOpFailure(c.r.URL.Path); f != nil {
		op := c.newOp(zone, "insert", target, nil, failedOp(f.code, f.message, f.status, strings.ToUpper(httpStatusText(f.status))))
		c.started(op)
		return
	}
	// Disks the instance creates must not exist yet.
	type newDisk struct {
		key  string
		disk *computepb.Disk
	}
	var created []newDisk
	for i, ad := range in.GetDisks() {
		ip := ad.GetInitializeParams()
		if ip == nil {
			continue
		}
		dn := ip.GetDiskName()
		if dn == "" {
			if ad.GetBoot() {
				dn = name
			} else {
				dn = fmt.Sprintf("%s-%d", name, i)
			}
		}
		if _, ok := s.disks[zone+"/"+dn]; ok || slices.ContainsFunc(created, func(n newDisk) bool { return n.disk.GetName() == dn }) {
			op := c.newOp(zone, "insert", target, nil, failedOp("RESOURCE_ALREADY_EXISTS",
				fmt.Sprintf("The resource 'projects/%s/zones/%s/disks/%s' already exists", c.project, zone, dn), 409, "CONFLICT"))
			c.started(op)
			return
		}
		size := ip.GetDiskSizeGb()
		if size == 0 {
			size = 10
		}
		dt := ip.GetDiskType()
		if dt == "" {
			dt = "zones/" + zone + "/diskTypes/pd-balanced"
		}
		d := &computepb.Disk{
			Kind:              proto.String("compute#disk"),
			Id:                proto.Uint64(s.id()),
			Name:              proto.String(dn),
			Zone:              proto.String(c.url("zones", zone)),
			SizeGb:            proto.Int64(size),
			Type:              proto.String(c.url("zones", zone, "diskTypes", dt[strings.LastIndexByte(dt, '/')+1:])),
			Labels:            maps.Clone(ip.GetLabels()),
			Status:            proto.String("READY"),
			CreationTimestamp: proto.String(timestamp(time.Now())),
			SelfLink:          proto.String(c.url("zones", zone, "disks", dn)),
			Users:             []string{target},
		}
		if v := ip.GetSourceImage(); v != "" {
			d.SourceImage = proto.String(v)
		}
		if v := ip.GetSourceSnapshot(); v != "" {
			d.SourceSnapshot = proto.String(v)
		}
		created = append(created, newDisk{zone + "/" + dn, d})
		in.Disks[i] = &computepb.AttachedDisk{
			Kind: proto.String("compute#attachedDisk"), Boot: proto.Bool(ad.GetBoot()), AutoDelete: proto.Bool(ad.GetAutoDelete()),
			DeviceName: proto.String(cmpOr(ad.GetDeviceName(), dn)), Index: proto.Int32(int32(i)), Source: d.SelfLink,
			Mode: proto.String(cmpOr(ad.GetMode(), "READ_WRITE")), Type: proto.String("PERSISTENT"), DiskSizeGb: proto.Int64(size),
		}
	}
	for _, n := range created {
		s.disks[n.key] = n.disk
		s.created["disk"]++
	}
	in.Kind = proto.String("compute#instance")
	in.Id = proto.Uint64(s.id())
	in.Zone = proto.String(c.url("zones", zone))
	in.SelfLink = proto.String(target)
	in.Status = proto.String("PROVISIONING")
	in.CreationTimestamp = proto.String(timestamp(time.Now()))
	in.MachineType = proto.String(c.url("zones", zone, "machineTypes", machineTypeRE.FindStringSubmatch(in.GetMachineType())[2]))
	in.LabelFingerprint = proto.String("42WmSpB8rSM=")
	for i, nic := range in.GetNetworkInterfaces() {
		nic.Name = proto.String(fmt.Sprintf("nic%d", i))
		nic.NetworkIP = proto.String(fmt.Sprintf("10.128.%d.%d", (in.GetId()>>8)%250, in.GetId()%250+2))
		for _, ac := range nic.GetAccessConfigs() {
			ac.Kind = proto.String("compute#accessConfig")
			// Loopback, never a routable address: whatever dials a fake
			// standby (failoverd's agent client) must stay on this machine.
			ac.NatIP = proto.String(fmt.Sprintf("127.2.%d.%d", (in.GetId()>>8)%250, in.GetId()%250+2))
			if c.s.externalIP != "" {
				ac.NatIP = proto.String(c.s.externalIP)
			}
			ac.NetworkTier = proto.String("PREMIUM")
		}
	}
	key := zone + "/" + name
	s.instances[key] = in
	s.created["instance"]++
	op := c.newOp(zone, "insert", target, func() {
		if cur := s.instances[key]; cur == in {
			in.Status = proto.String("RUNNING")
		}
	}, nil)
	c.started(op)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func httpStatusText(code int) string {
	switch code {
	case 403:
		return "Forbidden"
	case 503:
		return "Service Unavailable"
	case 409:
		return "Conflict"
	case 400:
		return "Bad Request"
	}
	return "Error " + strconv.Itoa(code)
}

// validateInstance checks an insert body as GCP would.
func validateInstance(in *computepb.Instance, zone string) *apiError {
	if !rfc1035.MatchString(in.GetName()) {
		return badRequest("Invalid value for field 'resource.name': '%s'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'", in.GetName())
	}
	m := machineTypeRE.FindStringSubmatch(in.GetMachineType())
	if m == nil {
		return badRequest("Invalid value for field 'resource.machineType': '%s'. Must be a URL to a valid Compute resource of the correct type", in.GetMachineType())
	}
	if m[1] != zone {
		return badRequest("Invalid value for field 'resource.machineType': '%s'. Machine type must be in zone %s", in.GetMachineType(), zone)
	}
	if e := validLabels("resource", in.GetLabels()); e != nil {
		return e
	}
	if len(in.GetDisks()) == 0 {
		return badRequest("Invalid value for field 'resource.disks': ''. At least one disk must be specified")
	}
	boots := 0
	names := map[string]bool{}
	for i, d := range in.GetDisks() {
		if d.GetBoot() {
			boots++
			if i != 0 {
				return badRequest("Invalid value for field 'resource.disks[%d].boot': the boot disk must be the first disk", i)
			}
		}
		ip := d.GetInitializeParams()
		if ip == nil && d.GetSource() == "" {
			return badRequest("Invalid value for field 'resource.disks[%d]': one of source or initializeParams is required", i)
		}
		if ip == nil {
			return badRequest("gcpfake: attaching existing disks (resource.disks[%d].source) is not supported", i)
		}
		if ip.DiskName != nil {
			if !rfc1035.MatchString(ip.GetDiskName()) {
				return badRequest("Invalid value for field 'resource.disks[%d].initializeParams.diskName': '%s'", i, ip.GetDiskName())
			}
			if names[ip.GetDiskName()] {
				return badRequest("Invalid value for field 'resource.disks[%d].initializeParams.diskName': duplicate '%s'", i, ip.GetDiskName())
			}
			names[ip.GetDiskName()] = true
		}
		if d.GetBoot() && ip.GetSourceImage() == "" && ip.GetSourceSnapshot() == "" {
			return badRequest("Invalid value for field 'resource.disks[0].initializeParams': the boot disk needs a sourceImage or sourceSnapshot")
		}
		if !d.GetBoot() && ip.GetDiskSizeGb() <= 0 && ip.GetSourceSnapshot() == "" {
			return badRequest("Invalid value for field 'resource.disks[%d].initializeParams.diskSizeGb': a blank disk needs a size", i)
		}
		if v := ip.GetSourceImage(); v != "" && !imageRE.MatchString(v) {
			return badRequest("Invalid value for field 'resource.disks[%d].initializeParams.sourceImage': '%s'", i, v)
		}
		if v := ip.GetSourceSnapshot(); v != "" && !snapshotRE.MatchString(v) {
			return badRequest("Invalid value for field 'resource.disks[%d].initializeParams.sourceSnapshot': '%s'", i, v)
		}
		if v := ip.GetDiskType(); v != "" {
			dm := diskTypeRE.FindStringSubmatch(v)
			if dm == nil || dm[1] != zone {
				return badRequest("Invalid value for field 'resource.disks[%d].initializeParams.diskType': '%s'", i, v)
			}
		}
		if ip.DiskSizeGb != nil && (ip.GetDiskSizeGb() < 10 || ip.GetDiskSizeGb() > 65536) {
			return badRequest("Invalid value for field 'resource.disks[%d].initializeParams.diskSizeGb': '%d'", i, ip.GetDiskSizeGb())
		}
		if e := validLabels(fmt.Sprintf("resource.disks[%d].initializeParams", i), ip.GetLabels()); e != nil {
			return e
		}
	}
	if boots != 1 {
		return badRequest("Invalid value for field 'resource.disks': exactly one boot disk is required, got %d", boots)
	}
	if len(in.GetNetworkInterfaces()) == 0 {
		return badRequest("Invalid value for field 'resource.networkInterfaces': ''. At least one network interface is required")
	}
	for i, nic := range in.GetNetworkInterfaces() {
		if nic.GetNetwork() == "" && nic.GetSubnetwork() == "" {
			return badRequest("Invalid value for field 'resource.networkInterfaces[%d]': a network or subnetwork is required", i)
		}
		if v := nic.GetNetwork(); v != "" && !networkRE.MatchString(v) {
			return badRequest("Invalid value for field 'resource.networkInterfaces[%d].network': '%s'", i, v)
		}
		if v := nic.GetSubnetwork(); v != "" {
			sm := subnetRE.FindStringSubmatch(v)
			if sm == nil || !strings.HasPrefix(zone, sm[1]+"-") {
				return badRequest("Invalid value for field 'resource.networkInterfaces[%d].subnetwork': '%s' (zone %s)", i, v, zone)
			}
		}
		for j, ac := range nic.GetAccessConfigs() {
			if ac.GetType() != "ONE_TO_ONE_NAT" {
				return badRequest("Invalid value for field 'resource.networkInterfaces[%d].accessConfigs[%d].type': '%s'", i, j, ac.GetType())
			}
		}
	}
	for _, t := range in.GetTags().GetItems() {
		if !rfc1035.MatchString(t) {
			return badRequest("Invalid value for field 'resource.tags.items': '%s'", t)
		}
	}
	total := 0
	keys := map[string]bool{}
	for _, it := range in.GetMetadata().GetItems() {
		if !metaKeyRE.MatchString(it.GetKey()) || keys[it.GetKey()] {
			return badRequest("Invalid value for field 'resource.metadata.items.key': '%s'", it.GetKey())
		}
		keys[it.GetKey()] = true
		if len(it.GetValue()) > 256<<10 {
			return badRequest("Invalid value for field 'resource.metadata.items.value': value of '%s' exceeds 256 KB", it.GetKey())
		}
		total += len(it.GetKey()) + len(it.GetValue())
	}
	if total > 512<<10 {
		return badRequest("Invalid value for field 'resource.metadata': metadata exceeds 512 KB")
	}
	if sc := in.GetScheduling(); sc != nil {
		switch sc.GetProvisioningModel() {
		case "", "STANDARD":
			if sc.InstanceTerminationAction != nil {
				return badRequest("Invalid value for field 'resource.scheduling.instanceTerminationAction': only for SPOT VMs")
			}
		case "SPOT":
			if sc.GetAutomaticRestart() {
				return badRequest("Invalid value for field 'resource.scheduling.automaticRestart': SPOT VMs cannot restart automatically")
			}
			if sc.GetOnHostMaintenance() != "TERMINATE" {
				return badRequest("Invalid value for field 'resource.scheduling.onHostMaintenance': SPOT VMs must use TERMINATE")
			}
			switch sc.GetInstanceTerminationAction() {
			case "", "STOP", "DELETE":
			default:
				return badRequest("Invalid value for field 'resource.scheduling.instanceTerminationAction': '%s'", sc.GetInstanceTerminationAction())
			}
		default:
			return badRequest("Invalid value for field 'resource.scheduling.provisioningModel': '%s'", sc.GetProvisioningModel())
		}
		switch sc.GetOnHostMaintenance() {
		case "", "MIGRATE", "TERMINATE":
		default:
			return badRequest("Invalid value for field 'resource.scheduling.onHostMaintenance': '%s'", sc.GetOnHostMaintenance())
		}
	}
	return nil
}

func (c *call) getInstance(zone, name string) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	in := s.instances[zone+"/"+name]
	if in == nil {
		notFound("projects/" + c.project + "/zones/" + zone + "/instances/" + name).write(c.w)
		return
	}
	c.reply(proto.CloneOf(in))
}

func (c *call) deleteInstance(zone, name string) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.replay() {
		return
	}
	s.settle()
	key := zone + "/" + name
	in := s.instances[key]
	if in == nil {
		notFound("projects/" + c.project + "/zones/" + zone + "/instances/" + name).write(c.w)
		return
	}
	in.Status = proto.String("STOPPING")
	op := c.newOp(zone, "delete", in.GetSelfLink(), func() {
		if s.instances[key] != in {
			return
		}
		delete(s.instances, key)
		for _, ad := range in.GetDisks() {
			dk := zone + "/" + ad.GetSource()[strings.LastIndexByte(ad.GetSource(), '/')+1:]
			d := s.disks[dk]
			if d == nil {
				continue
			}
			d.Users = slices.DeleteFunc(d.Users, func(u string) bool { return u == in.GetSelfLink() })
			if ad.GetAutoDelete() {
				delete(s.disks, dk)
			}
		}
	}, nil)
	c.started(op)
}

func (c *call) listInstances(zone string) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	match, e := parseFilter(c.r.URL.Query().Get("filter"))
	if e != nil {
		e.write(c.w)
		return
	}
	out := &computepb.InstanceList{Kind: proto.String("compute#instanceList"), Id: proto.String("projects/" + c.project + "/zones/" + zone + "/instances")}
	for _, k := range slices.Sorted(maps.Keys(s.instances)) {
		in := s.instances[k]
		if zoneOfURL(in.GetZone()) == zone && match(instanceFields(in)) {
			out.Items = append(out.Items, proto.CloneOf(in))
		}
	}
	c.reply(out)
}

func (c *call) aggregatedInstances() {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	match, e := parseFilter(c.r.URL.Query().Get("filter"))
	if e != nil {
		e.write(c.w)
		return
	}
	if c.r.URL.Query().Get("pageToken") != "" {
		badRequest("Invalid value for field 'pageToken'").write(c.w)
		return
	}
	out := &computepb.InstanceAggregatedList{Kind: proto.String("compute#instanceAggregatedList"),
		Id: proto.String("projects/" + c.project + "/aggregated/instances"), Items: map[string]*computepb.InstancesScopedList{}}
	for _, k := range slices.Sorted(maps.Keys(s.instances)) {
		in := s.instances[k]
		if !match(instanceFields(in)) {
			continue
		}
		scope := "zones/" + zoneOfURL(in.GetZone())
		if out.Items[scope] == nil {
			out.Items[scope] = &computepb.InstancesScopedList{}
		}
		out.Items[scope].Instances = append(out.Items[scope].Instances, proto.CloneOf(in))
	}
	c.reply(out)
}

func instanceFields(in *computepb.Instance) map[string]string {
	f := map[string]string{"name": in.GetName(), "status": in.GetStatus(), "zone": in.GetZone()}
	for k, v := range in.GetLabels() {
		f["labels."+k] = v
	}
	return f
}

// ---- disks ----

func (c *call) insertDisk(zone string) {
	d := &computepb.Disk{}
	if !c.decode(d) {
		return
	}
	if !rfc1035.MatchString(d.GetName()) {
		badRequest("Invalid value for field 'resource.name': '%s'", d.GetName()).write(c.w)
		return
	}
	if d.GetSizeGb() <= 0 && d.GetSourceSnapshot() == "" && d.GetSourceImage() == "" {
		badRequest("Invalid value for field 'resource.sizeGb': a blank disk needs a size").write(c.w)
		return
	}
	if v := d.GetType(); v != "" {
		if m := diskTypeRE.FindStringSubmatch(v); m == nil || m[1] != zone {
			badRequest("Invalid value for field 'resource.type': '%s'", v).write(c.w)
			return
		}
	}
	if v := d.GetSourceSnapshot(); v != "" && !snapshotRE.MatchString(v) {
		badRequest("Invalid value for field 'resource.sourceSnapshot': '%s'", v).write(c.w)
		return
	}
	if e := validLabels("resource", d.GetLabels()); e != nil {
		e.write(c.w)
		return
	}
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.replay() {
		return
	}
	s.settle()
	key := zone + "/" + d.GetName()
	target := c.url("zones", zone, "disks", d.GetName())
	if _, ok := s.disks[key]; ok {
		errf(409, "alreadyExists", "The resource 'projects/%s/zones/%s/disks/%s' already exists", c.project, zone, d.GetName()).write(c.w)
		return
	}
	if v := d.GetSourceSnapshot(); v != "" {
		name := snapshotRE.FindStringSubmatch(v)[1]
		if s.snapshots[name] == nil {
			notFound("projects/" + c.project + "/global/snapshots/" + name).write(c.w)
			return
		}
	}
	if f := s.takeOpFailure(c.r.URL.Path); f != nil {
		c.started(c.newOp(zone, "insert", target, nil, failedOp(f.code, f.message, f.status, strings.ToUpper(httpStatusText(f.status)))))
		return
	}
	d.Kind = proto.String("compute#disk")
	d.Id = proto.Uint64(s.id())
	d.Zone = proto.String(c.url("zones", zone))
	d.SelfLink = proto.String(target)
	d.Status = proto.String("CREATING")
	d.CreationTimestamp = proto.String(timestamp(time.Now()))
	if d.GetSizeGb() == 0 {
		d.SizeGb = proto.Int64(100)
	}
	s.disks[key] = d
	s.created["disk"]++
	c.started(c.newOp(zone, "insert", target, func() {
		if s.disks[key] == d {
			d.Status = proto.String("READY")
		}
	}, nil))
}

func (c *call) getDisk(zone, name string) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	d := s.disks[zone+"/"+name]
	if d == nil {
		notFound("projects/" + c.project + "/zones/" + zone + "/disks/" + name).write(c.w)
		return
	}
	c.reply(proto.CloneOf(d))
}

func (c *call) deleteDisk(zone, name string) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.replay() {
		return
	}
	s.settle()
	key := zone + "/" + name
	d := s.disks[key]
	if d == nil {
		notFound("projects/" + c.project + "/zones/" + zone + "/disks/" + name).write(c.w)
		return
	}
	if len(d.GetUsers()) > 0 {
		errf(400, "resourceInUseByAnotherResource", "The disk resource 'projects/%s/zones/%s/disks/%s' is already being used by '%s'", c.project, zone, name, d.GetUsers()[0]).write(c.w)
		return
	}
	d.Status = proto.String("DELETING")
	c.started(c.newOp(zone, "delete", d.GetSelfLink(), func() {
		if s.disks[key] == d {
			delete(s.disks, key)
		}
	}, nil))
}

func (c *call) listDisks(zone string) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	match, e := parseFilter(c.r.URL.Query().Get("filter"))
	if e != nil {
		e.write(c.w)
		return
	}
	out := &computepb.DiskList{Kind: proto.String("compute#diskList"), Id: proto.String("projects/" + c.project + "/zones/" + zone + "/disks")}
	for _, k := range slices.Sorted(maps.Keys(s.disks)) {
		d := s.disks[k]
		if zoneOfURL(d.GetZone()) == zone && match(diskFields(d)) {
			out.Items = append(out.Items, proto.CloneOf(d))
		}
	}
	c.reply(out)
}

func (c *call) aggregatedDisks() {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	match, e := parseFilter(c.r.URL.Query().Get("filter"))
	if e != nil {
		e.write(c.w)
		return
	}
	out := &computepb.DiskAggregatedList{Kind: proto.String("compute#diskAggregatedList"),
		Id: proto.String("projects/" + c.project + "/aggregated/disks"), Items: map[string]*computepb.DisksScopedList{}}
	for _, k := range slices.Sorted(maps.Keys(s.disks)) {
		d := s.disks[k]
		if !match(diskFields(d)) {
			continue
		}
		scope := "zones/" + zoneOfURL(d.GetZone())
		if out.Items[scope] == nil {
			out.Items[scope] = &computepb.DisksScopedList{}
		}
		out.Items[scope].Disks = append(out.Items[scope].Disks, proto.CloneOf(d))
	}
	c.reply(out)
}

func diskFields(d *computepb.Disk) map[string]string {
	f := map[string]string{"name": d.GetName(), "status": d.GetStatus(), "zone": d.GetZone()}
	for k, v := range d.GetLabels() {
		f["labels."+k] = v
	}
	return f
}

// ---- snapshots ----

func (c *call) listSnapshots() {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	match, e := parseFilter(c.r.URL.Query().Get("filter"))
	if e != nil {
		e.write(c.w)
		return
	}
	out := &computepb.SnapshotList{Kind: proto.String("compute#snapshotList"), Id: proto.String("projects/" + c.project + "/global/snapshots")}
	for _, k := range slices.Sorted(maps.Keys(s.snapshots)) {
		sn := s.snapshots[k]
		f := map[string]string{"name": sn.GetName(), "status": sn.GetStatus()}
		for k, v := range sn.GetLabels() {
			f["labels."+k] = v
		}
		if match(f) {
			cp := proto.CloneOf(sn)
			cp.SelfLink = proto.String(c.url("global", "snapshots", sn.GetName()))
			out.Items = append(out.Items, cp)
		}
	}
	c.reply(out)
}

var (
	sourceDiskRE = regexp.MustCompile(`^(?:(?:https://www\.googleapis\.com/compute/v1/)?projects/([^/]+)/)?zones/([^/]+)/disks/([a-z]([-a-z0-9]*[a-z0-9])?)$`)
	// A region ("europe-west4") or a multi-region ("eu", "us", "asia").
	storageLocationRE = regexp.MustCompile(`^(?:[a-z]+-[a-z]+[0-9]+|us|eu|asia)$`)
)

// insertSnapshot is snapshots.insert from a zonal disk (the only source
// the fake supports): the snapshot is CREATING in the answer, UPLOADING
// when its (global) operation is DONE and READY after SetSnapshotUploadTime.
func (c *call) insertSnapshot() {
	sn := &computepb.Snapshot{}
	if !c.decode(sn) {
		return
	}
	if !rfc1035.MatchString(sn.GetName()) {
		badRequest("Invalid value for field 'resource.name': '%s'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'", sn.GetName()).write(c.w)
		return
	}
	if sn.GetSourceDisk() == "" {
		if sn.GetSourceInstantSnapshot() != "" {
			badRequest("gcpfake: snapshots only from a sourceDisk").write(c.w)
			return
		}
		badRequest("Invalid value for field 'resource.sourceDisk': ''. The source disk is required").write(c.w)
		return
	}
	m := sourceDiskRE.FindStringSubmatch(sn.GetSourceDisk())
	if m == nil {
		badRequest("Invalid value for field 'resource.sourceDisk': '%s'", sn.GetSourceDisk()).write(c.w)
		return
	}
	if m[1] != "" && m[1] != c.project {
		badRequest("Invalid value for field 'resource.sourceDisk': '%s'. The disk must be in project %s", sn.GetSourceDisk(), c.project).write(c.w)
		return
	}
	zone, diskName := m[2], m[3]
	if len(sn.GetStorageLocations()) > 1 {
		badRequest("Invalid value for field 'resource.storageLocations': at most one location may be specified").write(c.w)
		return
	}
	for _, l := range sn.GetStorageLocations() {
		if !storageLocationRE.MatchString(l) {
			badRequest("Invalid value for field 'resource.storageLocations[0]': '%s'", l).write(c.w)
			return
		}
	}
	if e := validLabels("resource", sn.GetLabels()); e != nil {
		e.write(c.w)
		return
	}
	if sn.Status != nil || sn.Id != nil || sn.DiskSizeGb != nil {
		badRequest("Invalid value for field 'resource': output-only fields (status, id, diskSizeGb) must not be set").write(c.w)
		return
	}
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.replay() {
		return
	}
	s.settle()
	name := sn.GetName()
	target := c.url("global", "snapshots", name)
	if _, ok := s.snapshots[name]; ok {
		errf(409, "alreadyExists", "The resource 'projects/%s/global/snapshots/%s' already exists", c.project, name).write(c.w)
		return
	}
	if !s.zones[zone] {
		notFound("projects/" + c.project + "/zones/" + zone).write(c.w)
		return
	}
	d := s.disks[zone+"/"+diskName]
	if d == nil {
		notFound("projects/" + c.project + "/zones/" + zone + "/disks/" + diskName).write(c.w)
		return
	}
	if d.GetStatus() != "READY" {
		errf(400, "resourceNotReady", "The resource 'projects/%s/zones/%s/disks/%s' is not ready", c.project, zone, diskName).write(c.w)
		return
	}
	if f := s.takeOpFailure(c.r.URL.Path); f != nil {
		c.started(c.newOp("", "insert", target, nil, failedOp(f.code, f.message, f.status, strings.ToUpper(httpStatusText(f.status)))))
		return
	}
	if len(sn.StorageLocations) == 0 {
		sn.StorageLocations = []string{zone[:strings.LastIndexByte(zone, '-')]}
	}
	sn.Kind = proto.String("compute#snapshot")
	sn.Id = proto.Uint64(s.id())
	sn.SelfLink = proto.String(target)
	sn.Status = proto.String("CREATING")
	sn.CreationTimestamp = proto.String(timestamp(time.Now()))
	sn.DiskSizeGb = proto.Int64(d.GetSizeGb())
	sn.SourceDisk = d.SelfLink
	sn.SourceDiskId = proto.String(strconv.FormatUint(d.GetId(), 10))
	sn.StorageBytes = proto.Int64(0)
	sn.StorageBytesStatus = proto.String("UPDATING")
	sn.SnapshotType = proto.String("STANDARD")
	sn.LabelFingerprint = proto.String("42WmSpB8rSM=")
	s.snapshots[name] = sn
	s.created["snapshot"]++
	c.started(c.newOp("", "insert", target, func() {
		if s.snapshots[name] != sn {
			return
		}
		sn.StorageBytes = proto.Int64(d.GetSizeGb() << 30 / 3)
		sn.StorageBytesStatus = proto.String("UP_TO_DATE")
		if s.uploadTime > 0 {
			sn.Status = proto.String("UPLOADING")
			s.snapReady[name] = time.Now().Add(s.uploadTime)
			return
		}
		sn.Status = proto.String("READY")
	}, nil))
}

func (c *call) getSnapshot(name string) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	sn := s.snapshots[name]
	if sn == nil {
		notFound("projects/" + c.project + "/global/snapshots/" + name).write(c.w)
		return
	}
	cp := proto.CloneOf(sn)
	cp.SelfLink = proto.String(c.url("global", "snapshots", name))
	c.reply(cp)
}

func (c *call) deleteSnapshot(name string) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.replay() {
		return
	}
	s.settle()
	sn := s.snapshots[name]
	if sn == nil {
		notFound("projects/" + c.project + "/global/snapshots/" + name).write(c.w)
		return
	}
	sn.Status = proto.String("DELETING")
	c.started(c.newOp("", "delete", c.url("global", "snapshots", name), func() {
		if s.snapshots[name] == sn {
			delete(s.snapshots, name)
		}
	}, nil))
}

// ---- firewalls ----

func (c *call) insertFirewall() {
	f := &computepb.Firewall{}
	if !c.decode(f) {
		return
	}
	if e := validateFirewall(f); e != nil {
		e.write(c.w)
		return
	}
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.replay() {
		return
	}
	s.settle()
	name := f.GetName()
	target := c.url("global", "firewalls", name)
	if _, ok := s.firewalls[name]; ok {
		errf(409, "alreadyExists", "The resource 'projects/%s/global/firewalls/%s' already exists", c.project, name).write(c.w)
		return
	}
	if of := s.takeOpFailure(c.r.URL.Path); of != nil {
		c.started(c.newOp("", "insert", target, nil, failedOp(of.code, of.message, of.status, strings.ToUpper(httpStatusText(of.status)))))
		return
	}
	f.Kind = proto.String("compute#firewall")
	f.Id = proto.Uint64(s.id())
	f.SelfLink = proto.String(target)
	f.CreationTimestamp = proto.String(timestamp(time.Now()))
	if f.Direction == nil {
		f.Direction = proto.String("INGRESS")
	}
	if f.Priority == nil {
		f.Priority = proto.Int32(1000)
	}
	if len(f.SourceRanges) == 0 && len(f.SourceTags) == 0 && len(f.SourceServiceAccounts) == 0 {
		f.SourceRanges = []string{"0.0.0.0/0"}
	}
	net := f.GetNetwork()
	f.Network = proto.String(c.url("global", "networks", net[strings.LastIndexByte(net, '/')+1:]))
	s.firewalls[name] = f
	s.created["firewall"]++
	c.started(c.newOp("", "insert", target, nil, nil))
}

func validateFirewall(f *computepb.Firewall) *apiError {
	if !rfc1035.MatchString(f.GetName()) {
		return badRequest("Invalid value for field 'resource.name': '%s'", f.GetName())
	}
	if !networkRE.MatchString(f.GetNetwork()) {
		return badRequest("Invalid value for field 'resource.network': '%s'", f.GetNetwork())
	}
	if len(f.GetDescription()) > 2048 {
		return badRequest("Invalid value for field 'resource.description': too long")
	}
	switch f.GetDirection() {
	case "", "INGRESS":
	case "EGRESS":
		return badRequest("gcpfake: EGRESS rules are not supported")
	default:
		return badRequest("Invalid value for field 'resource.direction': '%s'", f.GetDirection())
	}
	if len(f.GetAllowed()) == 0 && len(f.GetDenied()) == 0 {
		return badRequest("Invalid value for field 'resource.allowed': at least one allowed or denied rule is required")
	}
	for i, a := range f.GetAllowed() {
		switch a.GetIPProtocol() {
		case "tcp", "udp", "sctp":
		case "icmp", "esp", "ah", "all":
			if len(a.GetPorts()) > 0 {
				return badRequest("Invalid value for field 'resource.allowed[%d].ports': ports only for tcp, udp, sctp", i)
			}
		default:
			return badRequest("Invalid value for field 'resource.allowed[%d].IPProtocol': '%s'", i, a.GetIPProtocol())
		}
		for _, p := range a.GetPorts() {
			lo, hi, ok := strings.Cut(p, "-")
			if !ok {
				hi = lo
			}
			l, err1 := strconv.Atoi(lo)
			h, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil || l < 0 || h > 65535 || l > h {
				return badRequest("Invalid value for field 'resource.allowed[%d].ports': '%s'", i, p)
			}
		}
	}
	for _, r := range f.GetSourceRanges() {
		if _, _, err := net.ParseCIDR(r); err != nil && net.ParseIP(r) == nil {
			return badRequest("Invalid value for field 'resource.sourceRanges': '%s'. Must be a CIDR address range", r)
		}
	}
	for _, t := range f.GetTargetTags() {
		if !rfc1035.MatchString(t) {
			return badRequest("Invalid value for field 'resource.targetTags': '%s'", t)
		}
	}
	if f.Priority != nil && (f.GetPriority() < 0 || f.GetPriority() > 65535) {
		return badRequest("Invalid value for field 'resource.priority': '%d'", f.GetPriority())
	}
	return nil
}

func (c *call) getFirewall(name string) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	f := s.firewalls[name]
	if f == nil {
		notFound("projects/" + c.project + "/global/firewalls/" + name).write(c.w)
		return
	}
	c.reply(proto.CloneOf(f))
}

func (c *call) deleteFirewall(name string) {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.replay() {
		return
	}
	s.settle()
	f := s.firewalls[name]
	if f == nil {
		notFound("projects/" + c.project + "/global/firewalls/" + name).write(c.w)
		return
	}
	c.started(c.newOp("", "delete", f.GetSelfLink(), func() {
		if s.firewalls[name] == f {
			delete(s.firewalls, name)
		}
	}, nil))
}

func (c *call) listFirewalls() {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	match, e := parseFilter(c.r.URL.Query().Get("filter"))
	if e != nil {
		e.write(c.w)
		return
	}
	out := &computepb.FirewallList{Kind: proto.String("compute#firewallList"), Id: proto.String("projects/" + c.project + "/global/firewalls")}
	for _, k := range slices.Sorted(maps.Keys(s.firewalls)) {
		f := s.firewalls[k]
		if match(map[string]string{"name": f.GetName(), "network": f.GetNetwork()}) {
			out.Items = append(out.Items, proto.CloneOf(f))
		}
	}
	c.reply(out)
}
