// Package ec2fake is a local EC2 endpoint for tests: an HTTP server on
// 127.0.0.1 that speaks the EC2 Query API wire protocol (POST / with a form
// body Action=…&Version=2016-11-15, SigV4-signed, XML answers in the
// namespace http://ec2.amazonaws.com/doc/2016-11-15/), so the real
// aws-sdk-go-v2 ec2 client can be pointed at it with ec2.Options.BaseEndpoint.
//
// It implements exactly the actions cloud/aws uses: RunInstances (with
// ClientToken idempotency), DescribeInstances, TerminateInstances,
// CreateSecurityGroup, AuthorizeSecurityGroupIngress, DescribeSecurityGroups,
// DeleteSecurityGroup, DescribeSnapshots, CreateSnapshot, DeleteSnapshot,
// DescribeSubnets, DescribeVolumes and DeleteVolume. Any other action answers InvalidAction, and requests missing
// a required parameter or carrying an unknown filter fail the way EC2 fails
// them, so a provider that sends a wrong request fails its tests.
//
// The region of a request is the one in the SigV4 credential scope of its
// Authorization header; every region has a default VPC with a default subnet
// in each of its zones (<region>a, b, c, and any other letter on first use).
// Zones answer "pending" from RunInstances and "running" afterwards (see
// SetBootTime); terminated instances pass through "shutting-down" (see
// SetTerminateDelay) and stay visible as "terminated".
//
// Fault injection: SetNoCapacity, FailNext, FailAfter and Hook.
package ec2fake

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Namespace is the XML namespace of every EC2 answer.
const Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

// APIVersion is the only Version the server accepts.
const APIVersion = "2016-11-15"

// AccountID is the fake account's owner ID ("self").
const AccountID = "123456789012"

// MaxUserData is EC2's limit on user data before base64.
const MaxUserData = 16 << 10

// Server is a fake EC2 endpoint. All methods are safe for concurrent use.
type Server struct {
	srv *httptest.Server

	mu             sync.Mutex
	now            func() time.Time
	seq            int
	bootTime       time.Duration
	terminateDelay time.Duration
	snapshotTime   time.Duration
	regions        map[string]bool
	instances      []*instance
	groups         []*group
	snapshots      []*snapshot
	volumes        []*volume
	subnets        []*subnet
	tokens         map[string]*tokenEntry // region + "/" + client token
	noCapacity     map[string]bool
	failBefore     map[string][]fault
	failAfter      map[string][]fault
	hook           func(action string, form url.Values)
	calls          map[string]int
}

type fault struct {
	code   string
	status int
}

type tokenEntry struct {
	fingerprint string
	reservation string
	instances   []*instance
}

type instance struct {
	id, region, zone, reservation string
	imageID, instanceType         string
	subnet                        *subnet
	groups                        []*group
	tags                          map[string]string
	userData                      []byte
	spot                          bool
	spotType, interruption        string
	clientToken                   string
	launch                        time.Time
	terminatedAt                  time.Time
	privateIP, publicIP, eni      string
	devices                       []*device
	settled                       bool
}

type device struct {
	name                string
	vol                 *volume
	deleteOnTermination bool
}

type volume struct {
	id, region, zone, snapshotID, volumeType string
	size, initRate                           int
	created                                  time.Time
	tags                                     map[string]string
	attachedTo                               *instance
	device                                   string
	deleteOnTermination                      bool
	deleted                                  bool
}

type group struct {
	id, region, name, description, vpc string
	tags                               map[string]string
	ingress                            []Rule
	deleted                            bool
}

type snapshot struct {
	id, region, owner, state, volumeID string
	description, stateMessage          string
	size                               int
	start                              time.Time
	// completeAt: a pending snapshot made by CreateSnapshot completes then.
	completeAt time.Time
	tags       map[string]string
}

type subnet struct {
	id, region, zone, vpc, cidr string
	defaultForAz, mapPublicIP   bool
}

// New starts a fake EC2 endpoint on 127.0.0.1. Close it when done.
func New() *Server {
	s := &Server{
		now:        time.Now,
		regions:    map[string]bool{},
		tokens:     map[string]*tokenEntry{},
		noCapacity: map[string]bool{},
		failBefore: map[string][]fault{},
		failAfter:  map[string][]fault{},
		calls:      map[string]int{},
	}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serveHTTP))
	return s
}

// URL is the endpoint to give the SDK (ec2.Options.BaseEndpoint).
func (s *Server) URL() string { return s.srv.URL }

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// SetClock replaces the server's clock (time.Now by default).
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// SetBootTime sets how long a new instance stays "pending" (0 by default:
// RunInstances answers "pending", every later look "running").
func (s *Server) SetBootTime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bootTime = d
}

// SetTerminateDelay sets how long a terminated instance stays
// "shutting-down" (0 by default: TerminateInstances answers "shutting-down",
// every later look "terminated"). While shutting down, the instance still
// holds its security groups (DeleteSecurityGroup answers DependencyViolation).
func (s *Server) SetTerminateDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.terminateDelay = d
}

// SetSnapshotTime makes a snapshot taken by CreateSnapshot stay "pending"
// for d before it is "completed" (default 0: completed at the next look,
// though CreateSnapshot itself answers pending).
func (s *Server) SetSnapshotTime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snapshotTime = d
}

// SetSnapshotState sets a snapshot's state ("pending", "completed",
// "error"); a pending one stays pending until set again.
func (s *Server) SetSnapshotState(id, state string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sn := range s.snapshots {
		if sn.id == id {
			sn.state, sn.completeAt = state, time.Time{}
			if state == "error" {
				sn.stateMessage = "injected error"
			}
		}
	}
}

// Snapshots returns every snapshot (any owner, any region), oldest first.
func (s *Server) Snapshots() []Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	var out []Snapshot
	for _, sn := range s.snapshots {
		out = append(out, Snapshot{ID: sn.id, Region: sn.region, OwnerID: sn.owner, State: sn.state, VolumeID: sn.volumeID,
			SizeGB: sn.size, StartTime: sn.start, Tags: clone(sn.tags)})
	}
	return out
}

// SetNoCapacity makes RunInstances in zone fail with
// InsufficientInstanceCapacity (HTTP 500, as EC2 sends it) while on.
func (s *Server) SetNoCapacity(zone string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on {
		s.noCapacity[zone] = true
	} else {
		delete(s.noCapacity, zone)
	}
}

// FailNext makes the next times requests for action fail with the error code
// and HTTP status, without taking effect.
func (s *Server) FailNext(action, code string, status, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range times {
		s.failBefore[action] = append(s.failBefore[action], fault{code, status})
	}
}

// FailAfter makes the next times requests for action take effect and then
// answer the error code and HTTP status instead of the result: the answer is
// "lost" as on a dropped connection.
func (s *Server) FailAfter(action, code string, status, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range times {
		s.failAfter[action] = append(s.failAfter[action], fault{code, status})
	}
}

// Hook sets a function called with every request's action and form before
// the request is handled (nil removes it). It runs outside the server's lock
// and may block; the request is handled after it returns.
func (s *Server) Hook(fn func(action string, form url.Values)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = fn
}

// Calls is how many requests for action arrived, failed ones included.
func (s *Server) Calls(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[action]
}

// TotalCalls is how many requests arrived for any action.
func (s *Server) TotalCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		n += c
	}
	return n
}

// Instances is how many instances are alive (pending, running, stopping or
// stopped; not shutting-down or terminated), owned or not, in all regions.
func (s *Server) Instances() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	n := 0
	for _, in := range s.instances {
		if alive(s.state(in)) {
			n++
		}
	}
	return n
}

// AddUnownedInstance plants a running instance named name (tag Name only, no
// managed-by tag) in zone's default subnet, as an operator's own VM. It
// returns the instance ID.
func (s *Server) AddUnownedInstance(zone, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	region := RegionOf(zone)
	sn := s.defaultSubnet(region, zone)
	in := s.newInstance(region, zone, sn)
	in.imageID, in.instanceType = "ami-0000000000operator", "t3.micro"
	in.tags = map[string]string{"Name": name}
	in.reservation = s.id("r-")
	s.instances = append(s.instances, in)
	return in.id
}

// AddVolume plants an unattached volume in zone with tags and returns its ID.
func (s *Server) AddVolume(zone string, sizeGB int, tags map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	region := RegionOf(zone)
	s.ensureRegion(region)
	v := &volume{id: s.id("vol-"), region: region, zone: zone, volumeType: "gp3", size: sizeGB, created: s.now().UTC(), tags: clone(tags)}
	s.volumes = append(s.volumes, v)
	return v.id
}

// AddSecurityGroup plants a security group in region's default VPC and
// returns its ID.
func (s *Server) AddSecurityGroup(region, name string, tags map[string]string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensureRegion(region)
	g := &group{id: s.id("sg-"), region: region, name: name, description: name, vpc: defaultVPC(region), tags: clone(tags)}
	s.groups = append(s.groups, g)
	return g.id
}

// AddSubnet creates a non-default subnet in zone, in a VPC of its own, with
// public IPs on launch, and returns the subnet and VPC IDs.
func (s *Server) AddSubnet(zone string) (subnetID, vpcID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	region := RegionOf(zone)
	s.ensureRegion(region)
	sn := &subnet{id: s.id("subnet-"), region: region, zone: zone, vpc: s.id("vpc-"), cidr: "172.16.0.0/24", mapPublicIP: true}
	s.subnets = append(s.subnets, sn)
	return sn.id, sn.vpc
}

// Snapshot is an EBS snapshot for AddSnapshot (and as Snapshots reports it).
type Snapshot struct {
	ID        string // generated when empty
	Region    string // set by Snapshots; AddSnapshot takes the region apart
	VolumeID  string // generated when empty
	OwnerID   string // AccountID when empty
	State     string // "completed" when empty; or "pending", "error"
	SizeGB    int
	StartTime time.Time
	Tags      map[string]string
}

// AddSnapshot plants a snapshot in region and returns its ID.
func (s *Server) AddSnapshot(region string, sn Snapshot) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ensureRegion(region)
	if sn.ID == "" {
		sn.ID = s.id("snap-")
	}
	if sn.OwnerID == "" {
		sn.OwnerID = AccountID
	}
	if sn.State == "" {
		sn.State = "completed"
	}
	if sn.SizeGB == 0 {
		sn.SizeGB = 100
	}
	if sn.StartTime.IsZero() {
		sn.StartTime = s.now()
	}
	if sn.VolumeID == "" {
		sn.VolumeID = s.id("vol-")
	}
	s.snapshots = append(s.snapshots, &snapshot{id: sn.ID, region: region, owner: sn.OwnerID, state: sn.State, volumeID: sn.VolumeID, size: sn.SizeGB, start: sn.StartTime.UTC(), tags: clone(sn.Tags)})
	return sn.ID
}

// Instance is what the fake knows about one instance, for tests to inspect.
type Instance struct {
	ID, Region, Zone, Name, State string
	ImageID, InstanceType         string
	SubnetID, VpcID               string
	ClientToken                   string
	Tags                          map[string]string
	UserData                      []byte // decoded
	Spot                          bool
	SpotInstanceType              string
	InterruptionBehavior          string
	SecurityGroupIDs              []string
	BlockDevices                  []BlockDevice
	LaunchTime                    time.Time
}

// BlockDevice is one volume attached at launch.
type BlockDevice struct {
	DeviceName, VolumeID, SnapshotID, VolumeType string
	SizeGB, InitializationRate                   int
	DeleteOnTermination                          bool
	Tags                                         map[string]string
}

// InstancesNamed returns every instance (any state) whose Name tag is name,
// oldest first.
func (s *Server) InstancesNamed(name string) []Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	var out []Instance
	for _, in := range s.instances {
		if in.tags["Name"] != name {
			continue
		}
		x := Instance{
			ID: in.id, Region: in.region, Zone: in.zone, Name: name, State: s.state(in),
			ImageID: in.imageID, InstanceType: in.instanceType, SubnetID: in.subnet.id, VpcID: in.subnet.vpc,
			ClientToken: in.clientToken, Tags: clone(in.tags), UserData: slices.Clone(in.userData),
			Spot: in.spot, SpotInstanceType: in.spotType, InterruptionBehavior: in.interruption,
			LaunchTime: in.launch,
		}
		for _, g := range in.groups {
			x.SecurityGroupIDs = append(x.SecurityGroupIDs, g.id)
		}
		for _, d := range in.devices {
			x.BlockDevices = append(x.BlockDevices, BlockDevice{
				DeviceName: d.name, VolumeID: d.vol.id, SnapshotID: d.vol.snapshotID, VolumeType: d.vol.volumeType,
				SizeGB: d.vol.size, InitializationRate: d.vol.initRate, DeleteOnTermination: d.deleteOnTermination,
				Tags: clone(d.vol.tags),
			})
		}
		out = append(out, x)
	}
	return out
}

// SecurityGroup is what the fake knows about one security group.
type SecurityGroup struct {
	ID, Region, Name, Description, VpcID string
	Tags                                 map[string]string
	Ingress                              []Rule
}

// Rule is one ingress rule: a protocol, a port range and one IPv4 source.
type Rule struct {
	Protocol         string
	FromPort, ToPort int
	CIDR             string
	Description      string
}

// SecurityGroups returns the security groups (not deleted) named name in
// any region.
func (s *Server) SecurityGroups(name string) []SecurityGroup {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SecurityGroup
	for _, g := range s.groups {
		if g.deleted || g.name != name {
			continue
		}
		out = append(out, SecurityGroup{ID: g.id, Region: g.region, Name: g.name, Description: g.description, VpcID: g.vpc, Tags: clone(g.tags), Ingress: slices.Clone(g.ingress)})
	}
	return out
}

// Volumes is how many volumes exist (not deleted) in all regions.
func (s *Server) Volumes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	n := 0
	for _, v := range s.volumes {
		if !v.deleted {
			n++
		}
	}
	return n
}

var regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+`)

// RegionOf is the region of an availability zone ("eu-west-1a" →
// "eu-west-1"); a region maps to itself.
func RegionOf(zone string) string {
	if m := regionRE.FindString(zone); m != "" {
		return m
	}
	return zone
}

func defaultVPC(region string) string { return "vpc-" + hash(region)[:17] }

func hash(s string) string {
	h := sha1.Sum([]byte(s))
	return hex.EncodeToString(h[:])
}

func (s *Server) id(prefix string) string {
	s.seq++
	return prefix + hash(fmt.Sprintf("%s%d", prefix, s.seq))[:17]
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ensureRegion creates the default VPC's default subnets of a region (zones
// a, b and c) on first use.
func (s *Server) ensureRegion(region string) {
	if s.regions[region] {
		return
	}
	s.regions[region] = true
	for _, l := range "abc" {
		s.defaultSubnet(region, region+string(l))
	}
}

// defaultSubnet returns zone's default subnet, creating it if the zone is
// one of region's (the zone name starts with the region and ends in one
// letter); nil for a zone of another region.
func (s *Server) defaultSubnet(region, zone string) *subnet {
	if !validZone(region, zone) {
		return nil
	}
	s.ensureRegion(region)
	for _, sn := range s.subnets {
		if sn.zone == zone && sn.defaultForAz {
			return sn
		}
	}
	n := len(s.subnets) % 250
	sn := &subnet{id: "subnet-" + hash(zone)[:17], region: region, zone: zone, vpc: defaultVPC(region),
		cidr: fmt.Sprintf("172.31.%d.0/20", n*16%256), defaultForAz: true, mapPublicIP: true}
	s.subnets = append(s.subnets, sn)
	return sn
}

func validZone(region, zone string) bool {
	rest, ok := strings.CutPrefix(zone, region)
	return ok && len(rest) == 1 && rest[0] >= 'a' && rest[0] <= 'z'
}

func (s *Server) newInstance(region, zone string, sn *subnet) *instance {
	s.seq++
	n := s.seq
	in := &instance{
		id: s.id("i-"), region: region, zone: zone, subnet: sn, launch: s.now().UTC().Truncate(time.Millisecond),
		privateIP: fmt.Sprintf("10.0.%d.%d", n/250%250, n%250+2), eni: s.id("eni-"),
	}
	if sn.mapPublicIP {
		// Loopback, never a routable address: whatever dials a fake
		// standby (failoverd's agent client) must stay on this machine.
		in.publicIP = fmt.Sprintf("127.1.%d.%d", n/250%250, n%250+2)
	}
	root := &volume{id: s.id("vol-"), region: region, zone: zone, volumeType: "gp3", size: 8, created: in.launch, tags: map[string]string{}, attachedTo: in, device: "/dev/xvda", deleteOnTermination: true}
	s.volumes = append(s.volumes, root)
	in.devices = append(in.devices, &device{name: "/dev/xvda", vol: root, deleteOnTermination: true})
	return in
}

// state is the instance's state now.
func (s *Server) state(in *instance) string {
	now := s.now()
	if !in.terminatedAt.IsZero() {
		if now.Before(in.terminatedAt.Add(s.terminateDelay)) {
			return "shutting-down"
		}
		return "terminated"
	}
	if now.Before(in.launch.Add(s.bootTime)) {
		return "pending"
	}
	return "running"
}

func alive(state string) bool { return state != "shutting-down" && state != "terminated" }

var stateCodes = map[string]int{"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}

// settle applies what termination does once it completes: volumes deleted
// on termination go, the others are detached.
func (s *Server) settle() {
	now := s.now()
	for _, sn := range s.snapshots {
		if sn.state == "pending" && !sn.completeAt.IsZero() && !now.Before(sn.completeAt) {
			sn.state, sn.completeAt = "completed", time.Time{}
		}
	}
	for _, in := range s.instances {
		if in.settled || s.state(in) != "terminated" {
			continue
		}
		in.settled = true
		for _, d := range in.devices {
			d.vol.attachedTo = nil
			if d.deleteOnTermination {
				d.vol.deleted = true
			}
		}
	}
}

// apiError is an EC2 error answer.
type apiError struct {
	status        int
	code, message string
}

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func badRequest(code, format string, args ...any) *apiError {
	return errf(http.StatusBadRequest, code, format, args...)
}

func missing(param string) *apiError {
	return badRequest("MissingParameter", "The request must contain the parameter %s", param)
}

func invalid(format string, args ...any) *apiError {
	return badRequest("InvalidParameterValue", format, args...)
}

type handler func(s *Server, region string, f url.Values) (any, *apiError)

var handlers = map[string]handler{
	"RunInstances":                  (*Server).runInstances,
	"DescribeInstances":             (*Server).describeInstances,
	"TerminateInstances":            (*Server).terminateInstances,
	"CreateSecurityGroup":           (*Server).createSecurityGroup,
	"AuthorizeSecurityGroupIngress": (*Server).authorizeIngress,
	"DescribeSecurityGroups":        (*Server).describeSecurityGroups,
	"DeleteSecurityGroup":           (*Server).deleteSecurityGroup,
	"DescribeSnapshots":             (*Server).describeSnapshots,
	"CreateSnapshot":                (*Server).createSnapshot,
	"DeleteSnapshot":                (*Server).deleteSnapshot,
	"DescribeSubnets":               (*Server).describeSubnets,
	"DescribeVolumes":               (*Server).describeVolumes,
	"DeleteVolume":                  (*Server).deleteVolume,
}

var credentialRE = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([a-z0-9-]+)/ec2/aws4_request, ?SignedHeaders=[a-z0-9;-]+, ?Signature=[0-9a-f]{64}$`)

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	requestID := s.requestID()
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		writeError(w, requestID, badRequest("InvalidAction", "%s %s is not an EC2 Query API request", r.Method, r.URL.Path))
		return
	}
	m := credentialRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		writeError(w, requestID, errf(http.StatusUnauthorized, "AuthFailure", "AWS was not able to validate the provided access credentials (want a SigV4 Authorization header for service ec2)"))
		return
	}
	region := m[3]
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		writeError(w, requestID, badRequest("InvalidParameterValue", "Content-Type %q is not a form", ct))
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, requestID, badRequest("InvalidParameterValue", "malformed form body: %v", err))
		return
	}
	f := r.PostForm
	action := f.Get("Action")
	if action == "" {
		writeError(w, requestID, missing("Action"))
		return
	}
	if v := f.Get("Version"); v != APIVersion {
		writeError(w, requestID, badRequest("InvalidParameterValue", "Version %q is not %s", v, APIVersion))
		return
	}

	s.mu.Lock()
	s.calls[action]++
	hook := s.hook
	s.mu.Unlock()
	if hook != nil {
		hook(action, f)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if ft, ok := pop(s.failBefore, action); ok {
		writeError(w, requestID, errf(ft.status, ft.code, "injected %s before %s", ft.code, action))
		return
	}
	h, ok := handlers[action]
	if !ok {
		writeError(w, requestID, badRequest("InvalidAction", "The action %s is not valid for this web service.", action))
		return
	}
	s.ensureRegion(region)
	s.settle()
	out, aerr := h(s, region, f)
	if aerr != nil {
		writeError(w, requestID, aerr)
		return
	}
	if ft, ok := pop(s.failAfter, action); ok {
		writeError(w, requestID, errf(ft.status, ft.code, "injected %s after %s", ft.code, action))
		return
	}
	writeResult(w, action, requestID, out)
}

func (s *Server) requestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	h := hash(fmt.Sprint("req", s.seq))
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

func pop(q map[string][]fault, action string) (fault, bool) {
	l := q[action]
	if len(l) == 0 {
		return fault{}, false
	}
	if len(l) == 1 {
		delete(q, action)
	} else {
		q[action] = l[1:]
	}
	return l[0], true
}

func writeError(w http.ResponseWriter, requestID string, e *apiError) {
	type xmlErr struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	body := struct {
		XMLName   xml.Name `xml:"Response"`
		Errors    []xmlErr `xml:"Errors>Error"`
		RequestID string   `xml:"RequestID"`
	}{Errors: []xmlErr{{e.code, e.message}}, RequestID: requestID}
	b, _ := xml.Marshal(body)
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(e.status)
	w.Write([]byte(xml.Header))
	w.Write(b)
}

func writeResult(w http.ResponseWriter, action, requestID string, out any) {
	// The result's fields are the children of <ActionResponse>, after
	// <requestId>: marshal them inside a throwaway element and unwrap.
	var inner []byte
	if out != nil {
		b, err := xml.Marshal(struct {
			XMLName xml.Name `xml:"body"`
			Out     any
		}{Out: out})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		inner = b
	}
	var rid strings.Builder
	xml.EscapeText(&rid, []byte(requestID))
	body := xml.Header + "<" + action + "Response xmlns=\"" + Namespace + "\"><requestId>" + rid.String() + "</requestId>" +
		unwrap(string(inner)) + "</" + action + "Response>"
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(body))
}

// unwrap strips <body><Out>…</Out></body> down to the children of Out.
func unwrap(s string) string {
	if s == "" {
		return ""
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "<body>"), "</body>")
	// Out is a pointer to a struct: its element is named after the field.
	s = strings.TrimPrefix(s, "<Out>")
	s = strings.TrimSuffix(s, "</Out>")
	return s
}

// ---- form parsing ----

// members returns the prefixes "<prefix>.N" present in f, by N ascending.
func members(f url.Values, prefix string) []string {
	seen := map[int]bool{}
	for k := range f {
		rest, ok := strings.CutPrefix(k, prefix+".")
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ".")
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 {
			continue
		}
		seen[n] = true
	}
	idx := make([]int, 0, len(seen))
	for n := range seen {
		idx = append(idx, n)
	}
	sort.Ints(idx)
	out := make([]string, len(idx))
	for i, n := range idx {
		out[i] = prefix + "." + strconv.Itoa(n)
	}
	return out
}

// list returns the values of "<prefix>.N".
func list(f url.Values, prefix string) []string {
	var out []string
	for _, m := range members(f, prefix) {
		out = append(out, f.Get(m))
	}
	return out
}

func intParam(f url.Values, key string, required bool) (int, bool, *apiError) {
	v := f.Get(key)
	if v == "" {
		if required {
			return 0, false, missing(key)
		}
		return 0, false, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, false, invalid("Invalid value '%s' for %s", v, key)
	}
	return n, true, nil
}

// filter is one Filter.N: a name and its values (any of them matches).
type filter struct {
	name   string
	values []string
}

func filters(f url.Values, known ...string) ([]filter, *apiError) {
	var out []filter
	for _, m := range members(f, "Filter") {
		name := f.Get(m + ".Name")
		if name == "" {
			return nil, missing(m + ".Name")
		}
		ok := strings.HasPrefix(name, "tag:") && len(name) > 4
		for _, k := range known {
			ok = ok || k == name
		}
		if !ok {
			return nil, invalid("The filter '%s' is invalid", name)
		}
		vals := list(f, m+".Value")
		if len(vals) == 0 {
			return nil, missing(m + ".Value")
		}
		out = append(out, filter{name, vals})
	}
	return out, nil
}

// matchAll reports whether every filter matches; attr answers a filter name
// with the resource's values for it.
func matchAll(fs []filter, tags map[string]string, attr func(name string) []string) bool {
	for _, fl := range fs {
		var have []string
		switch {
		case strings.HasPrefix(fl.name, "tag:"):
			if v, ok := tags[fl.name[4:]]; ok {
				have = []string{v}
			}
		case fl.name == "tag-key":
			for k := range tags {
				have = append(have, k)
			}
		default:
			have = attr(fl.name)
		}
		hit := false
		for _, want := range fl.values {
			if slices.Contains(have, want) {
				hit = true
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

// tagSpecs parses TagSpecification.N into resource type → tags.
func tagSpecs(f url.Values, allowed ...string) (map[string]map[string]string, *apiError) {
	out := map[string]map[string]string{}
	for _, m := range members(f, "TagSpecification") {
		rt := f.Get(m + ".ResourceType")
		if rt == "" {
			return nil, missing(m + ".ResourceType")
		}
		if !slices.Contains(allowed, rt) {
			return nil, invalid("'%s' is not a valid taggable resource type for this operation.", rt)
		}
		if out[rt] != nil {
			return nil, invalid("The same resource type may not be specified more than once in tag specifications")
		}
		tags := map[string]string{}
		for _, t := range members(f, m+".Tag") {
			k := f.Get(t + ".Key")
			if k == "" {
				return nil, invalid("Tag key must not be empty")
			}
			if strings.HasPrefix(strings.ToLower(k), "aws:") {
				return nil, invalid("Tag keys starting with 'aws:' are reserved for internal use")
			}
			if len(k) > 128 || len(f.Get(t+".Value")) > 256 {
				return nil, invalid("Tag key or value too long")
			}
			if _, dup := tags[k]; dup {
				return nil, invalid("Duplicate tag key '%s'", k)
			}
			tags[k] = f.Get(t + ".Value")
		}
		out[rt] = tags
	}
	return out, nil
}

// fingerprint identifies a RunInstances request's parameters for
// ClientToken idempotency.
func fingerprint(f url.Values) string {
	var kv []string
	for k, vs := range f {
		if k == "Action" || k == "Version" || k == "ClientToken" {
			continue
		}
		for _, v := range vs {
			kv = append(kv, k+"="+v)
		}
	}
	sort.Strings(kv)
	return hash(strings.Join(kv, "&"))
}

var (
	amiRE          = regexp.MustCompile(`^ami-[0-9a-z]{8,32}$`)
	instanceTypeRE = regexp.MustCompile(`^[a-z][a-z0-9-]*\.[a-z0-9]+$`)
	instanceIDRE   = regexp.MustCompile(`^i-[0-9a-f]{8,17}$`)
)

// ---- RunInstances ----

func (s *Server) runInstances(region string, f url.Values) (any, *apiError) {
	token := f.Get("ClientToken")
	if len(token) > 64 {
		return nil, invalid("Value (%s) for parameter clientToken is invalid. Length exceeds 64 characters", token)
	}
	if token != "" {
		if e, ok := s.tokens[region+"/"+token]; ok {
			if e.fingerprint != fingerprint(f) {
				return nil, badRequest("IdempotentParameterMismatch", "Arguments on this idempotent request are inconsistent with arguments used in previous request(s).")
			}
			return s.reservation(e.reservation, e.instances), nil
		}
	}
	image := f.Get("ImageId")
	if image == "" {
		return nil, missing("ImageId")
	}
	if !amiRE.MatchString(image) {
		return nil, badRequest("InvalidAMIID.Malformed", "Invalid id: \"%s\" (expecting \"ami-...\")", image)
	}
	minCount, _, aerr := intParam(f, "MinCount", true)
	if aerr != nil {
		return nil, aerr
	}
	maxCount, _, aerr := intParam(f, "MaxCount", true)
	if aerr != nil {
		return nil, aerr
	}
	if minCount < 1 || maxCount < minCount {
		return nil, invalid("Invalid MinCount %d / MaxCount %d", minCount, maxCount)
	}
	itype := f.Get("InstanceType")
	if itype == "" {
		itype = "m1.small"
	}
	if !instanceTypeRE.MatchString(itype) {
		return nil, invalid("Invalid value '%s' for InstanceType.", itype)
	}

	// Where: subnet and/or zone.
	zone := f.Get("Placement.AvailabilityZone")
	var sn *subnet
	if id := f.Get("SubnetId"); id != "" {
		for _, x := range s.subnets {
			if x.id == id && x.region == region {
				sn = x
			}
		}
		if sn == nil {
			return nil, badRequest("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
		if zone != "" && zone != sn.zone {
			return nil, invalid("Subnet %s is in %s, not in the requested availability zone %s", id, sn.zone, zone)
		}
		zone = sn.zone
	} else {
		if zone == "" {
			zone = region + "a"
		}
		sn = s.defaultSubnet(region, zone)
		if sn == nil {
			return nil, invalid("Invalid availability zone: [%s]", zone)
		}
	}

	// Security groups must exist in the subnet's VPC.
	var groups []*group
	for _, id := range list(f, "SecurityGroupId") {
		g := s.group(region, id)
		if g == nil {
			return nil, badRequest("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
		}
		if g.vpc != sn.vpc {
			return nil, invalid("Security group %s and subnet %s belong to different networks.", id, sn.id)
		}
		groups = append(groups, g)
	}

	tags, aerr := tagSpecs(f, "instance", "volume", "network-interface", "spot-instances-request")
	if aerr != nil {
		return nil, aerr
	}

	var userData []byte
	if ud := f.Get("UserData"); ud != "" {
		b, err := base64.StdEncoding.DecodeString(ud)
		if err != nil {
			return nil, invalid("Invalid BASE64 encoding of user data.")
		}
		if len(b) > MaxUserData {
			return nil, invalid("User data is limited to %d bytes", MaxUserData)
		}
		userData = b
	}

	spot, spotType, interruption := false, "", ""
	if mt := f.Get("InstanceMarketOptions.MarketType"); mt != "" {
		if mt != "spot" && mt != "capacity-block" {
			return nil, invalid("Invalid value '%s' for InstanceMarketOptions.MarketType", mt)
		}
		spot = mt == "spot"
		spotType = f.Get("InstanceMarketOptions.SpotOptions.SpotInstanceType")
		interruption = f.Get("InstanceMarketOptions.SpotOptions.InstanceInterruptionBehavior")
		if spotType == "" {
			spotType = "one-time"
		}
		if interruption == "" {
			interruption = "terminate"
		}
		if spotType != "one-time" && spotType != "persistent" {
			return nil, invalid("Invalid value '%s' for SpotInstanceType", spotType)
		}
		if !slices.Contains([]string{"hibernate", "stop", "terminate"}, interruption) {
			return nil, invalid("Invalid value '%s' for InstanceInterruptionBehavior", interruption)
		}
		if spotType == "one-time" && interruption != "terminate" {
			return nil, badRequest("InvalidParameterCombination", "A one-time spot instance must terminate on interruption")
		}
	}

	type bdm struct {
		name, snap, vtype   string
		size, rate          int
		deleteOnTermination bool
	}
	var bdms []bdm
	for _, m := range members(f, "BlockDeviceMapping") {
		d := bdm{name: f.Get(m + ".DeviceName"), snap: f.Get(m + ".Ebs.SnapshotId"), vtype: f.Get(m + ".Ebs.VolumeType"), deleteOnTermination: true}
		if d.name == "" {
			return nil, missing(m + ".DeviceName")
		}
		if !strings.HasPrefix(d.name, "/dev/") {
			return nil, invalid("Invalid device name %s", d.name)
		}
		if d.vtype == "" {
			d.vtype = "gp2"
		}
		if !slices.Contains([]string{"gp2", "gp3", "io1", "io2", "st1", "sc1", "standard"}, d.vtype) {
			return nil, invalid("Invalid value '%s' for volume type", d.vtype)
		}
		size, hasSize, aerr := intParam(f, m+".Ebs.VolumeSize", false)
		if aerr != nil {
			return nil, aerr
		}
		rate, hasRate, aerr := intParam(f, m+".Ebs.VolumeInitializationRate", false)
		if aerr != nil {
			return nil, aerr
		}
		if v := f.Get(m + ".Ebs.DeleteOnTermination"); v == "false" {
			d.deleteOnTermination = false
		}
		if d.snap != "" {
			var sn *snapshot
			for _, x := range s.snapshots {
				if x.id == d.snap && x.region == region {
					sn = x
				}
			}
			if sn == nil {
				return nil, badRequest("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", d.snap)
			}
			if sn.state != "completed" {
				return nil, badRequest("IncorrectState", "Snapshot '%s' is not 'completed'", d.snap)
			}
			if !hasSize {
				size = sn.size
			}
			if size < sn.size {
				return nil, invalid("Volume of size %dGB is smaller than snapshot '%s', expect size >= %dGB", size, d.snap, sn.size)
			}
		} else if !hasSize {
			return nil, missing(m + ".Ebs.VolumeSize")
		}
		if size < 1 || size > 65536 {
			return nil, invalid("Invalid volume size %d", size)
		}
		if hasRate {
			if d.snap == "" {
				return nil, badRequest("InvalidParameterCombination", "VolumeInitializationRate is supported only for volumes created from snapshots")
			}
			if rate < 100 || rate > 300 {
				return nil, invalid("VolumeInitializationRate %d is outside 100-300 MiB/s", rate)
			}
		}
		d.size, d.rate = size, rate
		bdms = append(bdms, d)
	}

	if s.noCapacity[zone] {
		return nil, errf(http.StatusInternalServerError, "InsufficientInstanceCapacity",
			"We currently do not have sufficient %s capacity in the Availability Zone you requested (%s). Our system will be working on provisioning additional capacity.", itype, zone)
	}

	res := s.id("r-")
	var launched []*instance
	for range maxCount {
		in := s.newInstance(region, zone, sn)
		in.reservation, in.imageID, in.instanceType = res, image, itype
		in.groups, in.tags, in.userData = groups, clone(tags["instance"]), userData
		in.spot, in.spotType, in.interruption, in.clientToken = spot, spotType, interruption, token
		in.devices[0].vol.tags = clone(tags["volume"])
		for _, d := range bdms {
			v := &volume{id: s.id("vol-"), region: region, zone: zone, snapshotID: d.snap, volumeType: d.vtype, size: d.size, initRate: d.rate,
				created: in.launch, tags: clone(tags["volume"]), attachedTo: in, device: d.name, deleteOnTermination: d.deleteOnTermination}
			s.volumes = append(s.volumes, v)
			in.devices = append(in.devices, &device{name: d.name, vol: v, deleteOnTermination: d.deleteOnTermination})
		}
		s.instances = append(s.instances, in)
		launched = append(launched, in)
	}
	if token != "" {
		s.tokens[region+"/"+token] = &tokenEntry{fingerprint: fingerprint(f), reservation: res, instances: launched}
	}
	// EC2 answers RunInstances with the instances pending.
	out := s.reservation(res, launched)
	for i := range out.Instances {
		if alive(out.Instances[i].State.Name) {
			out.Instances[i].State = xState{Code: 0, Name: "pending"}
		}
	}
	return out, nil
}

func (s *Server) group(region, id string) *group {
	for _, g := range s.groups {
		if g.id == id && g.region == region && !g.deleted {
			return g
		}
	}
	return nil
}

func (s *Server) reservation(id string, ins []*instance) *xReservation {
	r := &xReservation{ReservationID: id, OwnerID: AccountID}
	for _, in := range ins {
		r.Instances = append(r.Instances, s.xInstance(in))
	}
	return r
}

// ---- DescribeInstances / TerminateInstances ----

func (s *Server) describeInstances(region string, f url.Values) (any, *apiError) {
	fs, aerr := filters(f, "instance-state-name", "instance-id", "availability-zone", "client-token", "vpc-id", "subnet-id", "instance-lifecycle", "instance.group-id")
	if aerr != nil {
		return nil, aerr
	}
	ids := list(f, "InstanceId")
	for _, id := range ids {
		if !instanceIDRE.MatchString(id) {
			return nil, badRequest("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
		}
		if s.instance(region, id) == nil {
			return nil, badRequest("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
	}
	out := &xDescribeInstances{}
	byRes := map[string]*xReservation{}
	for _, in := range s.instances {
		if in.region != region || (len(ids) > 0 && !slices.Contains(ids, in.id)) {
			continue
		}
		state := s.state(in)
		ok := matchAll(fs, in.tags, func(name string) []string {
			switch name {
			case "instance-state-name":
				return []string{state}
			case "instance-id":
				return []string{in.id}
			case "availability-zone":
				return []string{in.zone}
			case "client-token":
				return []string{in.clientToken}
			case "vpc-id":
				return []string{in.subnet.vpc}
			case "subnet-id":
				return []string{in.subnet.id}
			case "instance-lifecycle":
				if in.spot {
					return []string{"spot"}
				}
				return nil
			case "instance.group-id":
				var g []string
				for _, x := range in.groups {
					g = append(g, x.id)
				}
				return g
			}
			return nil
		})
		if !ok {
			continue
		}
		r := byRes[in.reservation]
		if r == nil {
			r = &xReservation{ReservationID: in.reservation, OwnerID: AccountID}
			byRes[in.reservation] = r
			out.Reservations = append(out.Reservations, r)
		}
		r.Instances = append(r.Instances, s.xInstance(in))
	}
	return out, nil
}

func (s *Server) instance(region, id string) *instance {
	for _, in := range s.instances {
		if in.id == id && in.region == region {
			return in
		}
	}
	return nil
}

func (s *Server) terminateInstances(region string, f url.Values) (any, *apiError) {
	ids := list(f, "InstanceId")
	if len(ids) == 0 {
		return nil, missing("InstanceId")
	}
	var ins []*instance
	for _, id := range ids {
		if !instanceIDRE.MatchString(id) {
			return nil, badRequest("InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
		}
		in := s.instance(region, id)
		if in == nil {
			return nil, badRequest("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
		}
		ins = append(ins, in)
	}
	out := &xTerminateInstances{}
	for _, in := range ins {
		prev := s.state(in)
		if in.terminatedAt.IsZero() {
			in.terminatedAt = s.now()
		}
		cur := s.state(in)
		if cur == "terminated" && prev != "terminated" {
			cur = "shutting-down" // the answer to the terminate call itself
		}
		out.Items = append(out.Items, xStateChange{InstanceID: in.id, Current: xState{stateCodes[cur], cur}, Previous: xState{stateCodes[prev], prev}})
	}
	return out, nil
}

// ---- security groups ----

func (s *Server) createSecurityGroup(region string, f url.Values) (any, *apiError) {
	name, desc := f.Get("GroupName"), f.Get("GroupDescription")
	if name == "" {
		return nil, missing("GroupName")
	}
	if desc == "" {
		return nil, missing("GroupDescription")
	}
	if strings.HasPrefix(name, "sg-") || len(name) > 255 {
		return nil, invalid("Invalid security group name '%s'", name)
	}
	for _, r := range desc {
		if r > 127 {
			return nil, invalid("Character sets beyond ASCII are not supported in GroupDescription")
		}
	}
	vpc := f.Get("VpcId")
	if vpc == "" {
		vpc = defaultVPC(region)
	}
	known := false
	for _, sn := range s.subnets {
		known = known || (sn.vpc == vpc && sn.region == region)
	}
	if !known {
		return nil, badRequest("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", vpc)
	}
	tags, aerr := tagSpecs(f, "security-group")
	if aerr != nil {
		return nil, aerr
	}
	for _, g := range s.groups {
		if !g.deleted && g.region == region && g.vpc == vpc && g.name == name {
			return nil, badRequest("InvalidGroup.Duplicate", "The security group '%s' already exists for VPC '%s'", name, vpc)
		}
	}
	g := &group{id: s.id("sg-"), region: region, name: name, description: desc, vpc: vpc, tags: clone(tags["security-group"])}
	s.groups = append(s.groups, g)
	return &xCreateSecurityGroup{GroupID: g.id, Tags: xTagsOf(g.tags)}, nil
}

func (s *Server) findGroup(region string, f url.Values) (*group, *apiError) {
	if id := f.Get("GroupId"); id != "" {
		if g := s.group(region, id); g != nil {
			return g, nil
		}
		return nil, badRequest("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
	}
	if name := f.Get("GroupName"); name != "" {
		for _, g := range s.groups {
			if !g.deleted && g.region == region && g.vpc == defaultVPC(region) && g.name == name {
				return g, nil
			}
		}
		return nil, badRequest("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC '%s'", name, defaultVPC(region))
	}
	return nil, missing("GroupId")
}

func (s *Server) authorizeIngress(region string, f url.Values) (any, *apiError) {
	g, aerr := s.findGroup(region, f)
	if aerr != nil {
		return nil, aerr
	}
	var add []Rule
	perms := members(f, "IpPermissions")
	if len(perms) == 0 {
		return nil, missing("IpPermissions")
	}
	for _, m := range perms {
		proto := f.Get(m + ".IpProtocol")
		if proto == "" {
			return nil, missing(m + ".IpProtocol")
		}
		switch proto {
		case "tcp", "udp", "icmp", "-1":
		default:
			return nil, invalid("Invalid value '%s' for IP protocol. Unknown protocol.", proto)
		}
		from, _, aerr := intParam(f, m+".FromPort", proto == "tcp" || proto == "udp")
		if aerr != nil {
			return nil, aerr
		}
		to, _, aerr := intParam(f, m+".ToPort", proto == "tcp" || proto == "udp")
		if aerr != nil {
			return nil, aerr
		}
		if (proto == "tcp" || proto == "udp") && (from < 0 || to > 65535 || from > to) {
			return nil, invalid("Invalid port range %d-%d", from, to)
		}
		ranges := members(f, m+".IpRanges")
		if len(ranges) == 0 {
			return nil, invalid("At least one source (IpRanges) is required by this fake")
		}
		for _, r := range ranges {
			cidr := f.Get(r + ".CidrIp")
			p, err := netip.ParsePrefix(cidr)
			if err != nil || !p.Addr().Is4() {
				return nil, invalid("CIDR block %s is malformed", cidr)
			}
			add = append(add, Rule{Protocol: proto, FromPort: from, ToPort: to, CIDR: cidr, Description: f.Get(r + ".Description")})
		}
	}
	for _, r := range add {
		for _, have := range g.ingress {
			if have.Protocol == r.Protocol && have.FromPort == r.FromPort && have.ToPort == r.ToPort && have.CIDR == r.CIDR {
				return nil, badRequest("InvalidPermission.Duplicate", "the specified rule \"peer: %s, %s, from port: %d, to port: %d, ALLOW\" already exists", r.CIDR, strings.ToUpper(r.Protocol), r.FromPort, r.ToPort)
			}
		}
	}
	out := &xAuthorizeIngress{Return: true}
	for _, r := range add {
		g.ingress = append(g.ingress, r)
		out.Rules = append(out.Rules, xGroupRule{ID: s.id("sgr-"), GroupID: g.id, OwnerID: AccountID, Egress: false, Protocol: r.Protocol, From: r.FromPort, To: r.ToPort, CIDR: r.CIDR, Description: r.Description})
	}
	return out, nil
}

func (s *Server) describeSecurityGroups(region string, f url.Values) (any, *apiError) {
	fs, aerr := filters(f, "group-name", "group-id", "vpc-id", "description")
	if aerr != nil {
		return nil, aerr
	}
	ids, names := list(f, "GroupId"), list(f, "GroupName")
	for _, id := range ids {
		if s.group(region, id) == nil {
			return nil, badRequest("InvalidGroup.NotFound", "The security group '%s' does not exist", id)
		}
	}
	for _, n := range names {
		found := false
		for _, g := range s.groups {
			found = found || (!g.deleted && g.region == region && g.vpc == defaultVPC(region) && g.name == n)
		}
		if !found {
			return nil, badRequest("InvalidGroup.NotFound", "The security group '%s' does not exist in default VPC '%s'", n, defaultVPC(region))
		}
	}
	out := &xDescribeSecurityGroups{}
	for _, g := range s.groups {
		if g.deleted || g.region != region {
			continue
		}
		if len(ids) > 0 && !slices.Contains(ids, g.id) {
			continue
		}
		if len(names) > 0 && !(slices.Contains(names, g.name) && g.vpc == defaultVPC(region)) {
			continue
		}
		if !matchAll(fs, g.tags, func(name string) []string {
			switch name {
			case "group-name":
				return []string{g.name}
			case "group-id":
				return []string{g.id}
			case "vpc-id":
				return []string{g.vpc}
			case "description":
				return []string{g.description}
			}
			return nil
		}) {
			continue
		}
		x := xSecurityGroup{OwnerID: AccountID, GroupID: g.id, GroupName: g.name, Description: g.description, VpcID: g.vpc, Tags: xTagsOf(g.tags),
			Egress: []xPermission{{Protocol: "-1", Ranges: []xRange{{CIDR: "0.0.0.0/0"}}}}}
		for _, r := range g.ingress {
			from, to := r.FromPort, r.ToPort
			x.Ingress = append(x.Ingress, xPermission{Protocol: r.Protocol, From: &from, To: &to, Ranges: []xRange{{CIDR: r.CIDR, Description: r.Description}}})
		}
		out.Groups = append(out.Groups, x)
	}
	return out, nil
}

func (s *Server) deleteSecurityGroup(region string, f url.Values) (any, *apiError) {
	g, aerr := s.findGroup(region, f)
	if aerr != nil {
		return nil, aerr
	}
	for _, in := range s.instances {
		if in.region == region && s.state(in) != "terminated" && slices.Contains(in.groups, g) {
			return nil, badRequest("DependencyViolation", "resource %s has a dependent object", g.id)
		}
	}
	g.deleted = true
	return &xDeleteSecurityGroup{Return: true, GroupID: g.id}, nil
}

// ---- snapshots, subnets, volumes ----

func (s *Server) describeSnapshots(region string, f url.Values) (any, *apiError) {
	fs, aerr := filters(f, "status", "owner-id", "snapshot-id", "volume-id", "volume-size", "description", "tag-key")
	if aerr != nil {
		return nil, aerr
	}
	owners := list(f, "Owner")
	for i, o := range owners {
		if o == "self" {
			owners[i] = AccountID
		}
	}
	ids := list(f, "SnapshotId")
	for _, id := range ids {
		found := false
		for _, sn := range s.snapshots {
			found = found || (sn.id == id && sn.region == region)
		}
		if !found {
			return nil, badRequest("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
		}
	}
	out := &xDescribeSnapshots{}
	for _, sn := range s.snapshots {
		if sn.region != region || (len(owners) > 0 && !slices.Contains(owners, sn.owner)) || (len(ids) > 0 && !slices.Contains(ids, sn.id)) {
			continue
		}
		if !matchAll(fs, sn.tags, func(name string) []string {
			switch name {
			case "status":
				return []string{sn.state}
			case "owner-id":
				return []string{sn.owner}
			case "snapshot-id":
				return []string{sn.id}
			case "volume-id":
				return []string{sn.volumeID}
			case "volume-size":
				return []string{strconv.Itoa(sn.size)}
			case "description":
				return []string{sn.description}
			}
			return nil
		}) {
			continue
		}
		progress := "100%"
		if sn.state != "completed" {
			progress = "42%"
		}
		out.Snapshots = append(out.Snapshots, xSnapshot{ID: sn.id, VolumeID: sn.volumeID, State: sn.state, StateMessage: sn.stateMessage, StartTime: iso(sn.start), Progress: progress,
			OwnerID: sn.owner, Description: sn.description, Size: sn.size, Encrypted: false, StorageTier: "standard", Tags: xTagsOf(sn.tags)})
	}
	return out, nil
}

var (
	volumeIDRE   = regexp.MustCompile(`^vol-[0-9a-f]{8,17}$`)
	snapshotIDRE = regexp.MustCompile(`^snap-[0-9a-f]{8,17}$`)
)

// createSnapshot takes a snapshot of an existing volume; it answers
// "pending", as EC2 does, and completes after SetSnapshotTime.
func (s *Server) createSnapshot(region string, f url.Values) (any, *apiError) {
	id := f.Get("VolumeId")
	if id == "" {
		return nil, missing("VolumeId")
	}
	if !volumeIDRE.MatchString(id) {
		return nil, badRequest("InvalidVolumeID.Malformed", "Invalid id: \"%s\" (expecting \"vol-...\")", id)
	}
	desc := f.Get("Description")
	if len(desc) > 255 {
		return nil, invalid("Value for parameter Description is too long (max 255 characters)")
	}
	if loc := f.Get("Location"); loc != "" && loc != "regional" && loc != "local" {
		return nil, invalid("Invalid value '%s' for Location", loc)
	}
	if f.Get("OutpostArn") != "" {
		return nil, badRequest("UnsupportedOperation", "ec2fake has no Outposts")
	}
	tags, aerr := tagSpecs(f, "snapshot")
	if aerr != nil {
		return nil, aerr
	}
	v := s.volume(region, id)
	if v == nil {
		return nil, badRequest("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
	}
	sn := &snapshot{id: s.id("snap-"), region: region, owner: AccountID, state: "pending", volumeID: v.id, description: desc,
		size: v.size, start: s.now().UTC().Truncate(time.Millisecond), tags: clone(tags["snapshot"])}
	sn.completeAt = sn.start.Add(s.snapshotTime)
	s.snapshots = append(s.snapshots, sn)
	return &xCreateSnapshot{ID: sn.id, VolumeID: sn.volumeID, State: "pending", StartTime: iso(sn.start), Progress: "", OwnerID: sn.owner,
		Description: desc, Size: sn.size, Encrypted: false, StorageTier: "standard", Tags: xTagsOf(sn.tags)}, nil
}

func (s *Server) deleteSnapshot(region string, f url.Values) (any, *apiError) {
	id := f.Get("SnapshotId")
	if id == "" {
		return nil, missing("SnapshotId")
	}
	if !snapshotIDRE.MatchString(id) {
		return nil, badRequest("InvalidSnapshotID.Malformed", "Invalid id: \"%s\" (expecting \"snap-...\")", id)
	}
	for i, sn := range s.snapshots {
		if sn.id != id || sn.region != region {
			continue
		}
		if sn.owner != AccountID {
			return nil, badRequest("UnauthorizedOperation", "You are not authorized to perform this operation on snapshot %s", id)
		}
		for _, v := range s.volumes {
			if !v.deleted && v.snapshotID == id && v.attachedTo != nil && s.state(v.attachedTo) == "pending" {
				return nil, badRequest("InvalidSnapshot.InUse", "The snapshot %s is currently in use by %s", id, v.id)
			}
		}
		s.snapshots = slices.Delete(s.snapshots, i, i+1)
		return &xReturn{Return: true}, nil
	}
	return nil, badRequest("InvalidSnapshot.NotFound", "The snapshot '%s' does not exist.", id)
}

func (s *Server) describeSubnets(region string, f url.Values) (any, *apiError) {
	fs, aerr := filters(f, "availability-zone", "default-for-az", "subnet-id", "vpc-id")
	if aerr != nil {
		return nil, aerr
	}
	// Zones of the region named in a filter get their default subnet.
	for _, fl := range fs {
		if fl.name == "availability-zone" {
			for _, z := range fl.values {
				s.defaultSubnet(region, z)
			}
		}
	}
	ids := list(f, "SubnetId")
	for _, id := range ids {
		found := false
		for _, sn := range s.subnets {
			found = found || (sn.id == id && sn.region == region)
		}
		if !found {
			return nil, badRequest("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
		}
	}
	out := &xDescribeSubnets{}
	for _, sn := range s.subnets {
		if sn.region != region || (len(ids) > 0 && !slices.Contains(ids, sn.id)) {
			continue
		}
		if !matchAll(fs, nil, func(name string) []string {
			switch name {
			case "availability-zone":
				return []string{sn.zone}
			case "default-for-az":
				return []string{strconv.FormatBool(sn.defaultForAz)}
			case "subnet-id":
				return []string{sn.id}
			case "vpc-id":
				return []string{sn.vpc}
			}
			return nil
		}) {
			continue
		}
		out.Subnets = append(out.Subnets, xSubnet{ID: sn.id, State: "available", VpcID: sn.vpc, CIDR: sn.cidr, Zone: sn.zone, DefaultForAz: sn.defaultForAz, MapPublicIP: sn.mapPublicIP, OwnerID: AccountID, Available: 4000})
	}
	return out, nil
}

func (s *Server) volume(region, id string) *volume {
	for _, v := range s.volumes {
		if v.id == id && v.region == region && !v.deleted {
			return v
		}
	}
	return nil
}

func (s *Server) describeVolumes(region string, f url.Values) (any, *apiError) {
	fs, aerr := filters(f, "status", "availability-zone", "attachment.instance-id", "volume-id", "snapshot-id")
	if aerr != nil {
		return nil, aerr
	}
	ids := list(f, "VolumeId")
	for _, id := range ids {
		if s.volume(region, id) == nil {
			return nil, badRequest("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
		}
	}
	out := &xDescribeVolumes{}
	for _, v := range s.volumes {
		if v.deleted || v.region != region || (len(ids) > 0 && !slices.Contains(ids, v.id)) {
			continue
		}
		status := "available"
		if v.attachedTo != nil {
			status = "in-use"
		}
		if !matchAll(fs, v.tags, func(name string) []string {
			switch name {
			case "status":
				return []string{status}
			case "availability-zone":
				return []string{v.zone}
			case "attachment.instance-id":
				if v.attachedTo != nil {
					return []string{v.attachedTo.id}
				}
			case "volume-id":
				return []string{v.id}
			case "snapshot-id":
				return []string{v.snapshotID}
			}
			return nil
		}) {
			continue
		}
		x := xVolume{ID: v.id, Size: v.size, SnapshotID: v.snapshotID, Zone: v.zone, Status: status, CreateTime: iso(v.created), VolumeType: v.volumeType, Tags: xTagsOf(v.tags)}
		if v.initRate > 0 {
			x.InitRate = v.initRate
		}
		if v.attachedTo != nil {
			x.Attachments = []xAttachment{{VolumeID: v.id, InstanceID: v.attachedTo.id, Device: v.device, Status: "attached", AttachTime: iso(v.attachedTo.launch), DeleteOnTermination: v.deleteOnTermination}}
		}
		out.Volumes = append(out.Volumes, x)
	}
	return out, nil
}

func (s *Server) deleteVolume(region string, f url.Values) (any, *apiError) {
	id := f.Get("VolumeId")
	if id == "" {
		return nil, missing("VolumeId")
	}
	v := s.volume(region, id)
	if v == nil {
		return nil, badRequest("InvalidVolume.NotFound", "The volume '%s' does not exist.", id)
	}
	if v.attachedTo != nil {
		return nil, badRequest("VolumeInUse", "Volume %s is currently attached to %s", id, v.attachedTo.id)
	}
	v.deleted = true
	return &xReturn{Return: true}, nil
}
