// Package gcpfake is a local HTTP server that speaks the Compute Engine v1
// JSON REST protocol for the calls failoverd's GCP provider makes, so tests
// drive the real cloud.google.com/go/compute REST clients against it.
//
// It keeps instances, disks, snapshots and firewall rules in memory (one
// store for every project), runs long-running Operations (PENDING when
// returned by an insert/delete, DONE after SetOperationDelay, immediately by
// default), deduplicates requestId like GCP does, and answers with GCP's
// error shapes (409 alreadyExists, 404 notFound, 403 quotaExceeded, an
// operation failing with ZONE_RESOURCE_POOL_EXHAUSTED). It validates what
// the client sends — names, URLs, labels, required fields, unknown JSON
// fields — and answers 400 to anything GCP would refuse, so a wrong request
// fails a test instead of passing silently. It is stricter than GCP in one
// way: every mutating call must carry a requestId.
//
// Request bodies and responses use the SDK's own computepb messages and
// protojson, the same mapping the REST clients use.
package gcpfake

import (
	"bytes"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/compute/apiv1/computepb"
	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// DefaultZones are the zones a new Server knows.
var DefaultZones = []string{"us-central1-a", "us-central1-b", "us-central1-c", "europe-west4-a", "europe-west4-b"}

const apiBase = "https://www.googleapis.com/compute/v1/"

// Server is the fake Compute Engine API.
type Server struct {
	srv *httptest.Server

	mu      sync.Mutex
	opDelay time.Duration
	// externalIP, when set, is every new instance's external address.
	externalIP string
	waitMax    time.Duration
	zones      map[string]bool
	instances  map[string]*computepb.Instance // zone/name
	disks      map[string]*computepb.Disk     // zone/name
	firewalls  map[string]*computepb.Firewall
	snapshots  map[string]*computepb.Snapshot
	// snapReady: when an UPLOADING snapshot becomes READY.
	snapReady  map[string]time.Time
	uploadTime time.Duration
	ops        map[string]*operation // by name
	byReqID    map[string]*operation
	exhausted  map[string]bool
	failures   []*failure
	opFails    []*opFailure
	hook       func(*http.Request)
	requests   []string
	nextID     uint64
	created    map[string]int // kind → count of resources ever created
}

type operation struct {
	pb       *computepb.Operation
	doneAt   time.Time
	finish   func() // applied once, under mu, when the operation completes
	finished bool
}

type failure struct {
	method, path string
	status       int
	reason       string
	after        bool
	times        int
}

type opFailure struct {
	path, code, message string
	status              int
	times               int
}

// New starts a server on 127.0.0.1.
func New() *Server {
	s := &Server{
		waitMax:   2 * time.Minute,
		zones:     map[string]bool{},
		instances: map[string]*computepb.Instance{},
		disks:     map[string]*computepb.Disk{},
		firewalls: map[string]*computepb.Firewall{},
		snapshots: map[string]*computepb.Snapshot{},
		snapReady: map[string]time.Time{},
		ops:       map[string]*operation{},
		byReqID:   map[string]*operation{},
		exhausted: map[string]bool{},
		created:   map[string]int{},
		nextID:    4_000_000_000_000_000_000,
	}
	for _, z := range DefaultZones {
		s.zones[z] = true
	}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("gcpfake: listen: %v", err))
	}
	s.srv.Listener = l
	s.srv.Start()
	return s
}

// URL is the endpoint to hand the SDK (option.WithEndpoint).
func (s *Server) URL() string { return s.srv.URL }

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// AddZone makes zone known (DefaultZones are known from the start).
func (s *Server) AddZone(zone string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zones[zone] = true
}

// SetExternalIP makes every instance created from now on report ip as its
// external address: "127.0.0.1" lets a test run the standby's agent on
// loopback where failoverd will look for it.
func (s *Server) SetExternalIP(ip string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.externalIP = ip
}

// SetOperationDelay makes operations take d to reach DONE (default 0: DONE
// at the next look, though the insert's own answer still says PENDING).
func (s *Server) SetOperationDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opDelay = d
}

// SetSnapshotUploadTime makes a snapshot taken by snapshots.insert stay
// UPLOADING for d after its operation is DONE, then READY (default 0:
// READY when the operation completes). Status goes CREATING (insert
// answered) → UPLOADING → READY; a delete sets DELETING until its
// operation completes.
func (s *Server) SetSnapshotUploadTime(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uploadTime = d
}

// Snapshot returns a copy of the snapshot, or nil.
func (s *Server) Snapshot(name string) *computepb.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	if sn := s.snapshots[name]; sn != nil {
		return proto.CloneOf(sn)
	}
	return nil
}

// Snapshots is how many snapshots exist now.
func (s *Server) Snapshots() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	return len(s.snapshots)
}

// SetWaitMax bounds how long operations.wait blocks (GCP: about 2 minutes).
func (s *Server) SetWaitMax(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.waitMax = d
}

// ExhaustZone makes every instance insert in zone fail, as a stockout does:
// the operation ends DONE with ZONE_RESOURCE_POOL_EXHAUSTED. RestoreZone
// ends it.
func (s *Server) ExhaustZone(zone string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exhausted[zone] = true
}

// RestoreZone ends ExhaustZone.
func (s *Server) RestoreZone(zone string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.exhausted, zone)
}

// FailNext makes the next times requests whose method matches (""= any)
// and whose path contains pathSubstr fail with status and reason, without
// taking effect.
func (s *Server) FailNext(method, pathSubstr string, status int, reason string, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, &failure{method: method, path: pathSubstr, status: status, reason: reason, times: times})
}

// FailAfter is FailNext for a request that takes effect and whose answer is
// then lost: the client sees the error, the resource exists.
func (s *Server) FailAfter(method, pathSubstr string, status int, reason string, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, &failure{method: method, path: pathSubstr, status: status, reason: reason, after: true, times: times})
}

// FailOperation makes the next times insert operations whose request path
// contains pathSubstr end DONE with the error code (e.g. QUOTA_EXCEEDED)
// and httpStatus, creating nothing.
func (s *Server) FailOperation(pathSubstr, code, message string, httpStatus, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opFails = append(s.opFails, &opFailure{path: pathSubstr, code: code, message: message, status: httpStatus, times: times})
}

// Hook sets a function called with every request before it is handled
// (crash tests stop the client when the insert arrives). nil removes it.
func (s *Server) Hook(f func(r *http.Request)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hook = f
}

// Instances is how many instances exist now (owned or not).
func (s *Server) Instances() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	return len(s.instances)
}

// Disks is how many disks exist now.
func (s *Server) Disks() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	return len(s.disks)
}

// Firewalls is how many firewall rules exist now.
func (s *Server) Firewalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	return len(s.firewalls)
}

// Created is how many resources of kind ("instance", "disk", "firewall", "snapshot")
// were ever created.
func (s *Server) Created(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created[kind]
}

// Requests counts the requests so far whose "METHOD /path" starts with
// methodPathPrefix ("" counts all), e.g. "POST /compute/v1/projects/p/zones/".
func (s *Server) Requests(methodPathPrefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.requests {
		if strings.HasPrefix(r, methodPathPrefix) {
			n++
		}
	}
	return n
}

// Instance returns a copy of the instance, or nil.
func (s *Server) Instance(zone, name string) *computepb.Instance {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	if in := s.instances[zone+"/"+name]; in != nil {
		return proto.CloneOf(in)
	}
	return nil
}

// Disk returns a copy of the disk, or nil.
func (s *Server) Disk(zone, name string) *computepb.Disk {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	if d := s.disks[zone+"/"+name]; d != nil {
		return proto.CloneOf(d)
	}
	return nil
}

// Firewall returns a copy of the firewall rule, or nil.
func (s *Server) Firewall(name string) *computepb.Firewall {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.settle()
	if f := s.firewalls[name]; f != nil {
		return proto.CloneOf(f)
	}
	return nil
}

// AddUnownedInstance plants a running instance without failoverd's labels,
// as an operator's own VM.
func (s *Server) AddUnownedInstance(zone, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zones[zone] = true
	id := s.id()
	s.instances[zone+"/"+name] = &computepb.Instance{
		Kind:              proto.String("compute#instance"),
		Id:                proto.Uint64(id),
		Name:              proto.String(name),
		Zone:              proto.String(apiBase + "projects/operator/zones/" + zone),
		Status:            proto.String("RUNNING"),
		Labels:            map[string]string{"owner": "operator"},
		CreationTimestamp: proto.String(timestamp(time.Now())),
		MachineType:       proto.String(apiBase + "projects/operator/zones/" + zone + "/machineTypes/e2-small"),
		SelfLink:          proto.String(apiBase + "projects/operator/zones/" + zone + "/instances/" + name),
	}
}

// AddSnapshot adds a READY snapshot; SetSnapshotStatus changes its status.
func (s *Server) AddSnapshot(name string, labels map[string]string, created time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snapshots[name] = &computepb.Snapshot{
		Kind:              proto.String("compute#snapshot"),
		Id:                proto.Uint64(s.id()),
		Name:              proto.String(name),
		Status:            proto.String("READY"),
		Labels:            maps.Clone(labels),
		CreationTimestamp: proto.String(timestamp(created)),
		DiskSizeGb:        proto.Int64(100),
		SelfLink:          proto.String(apiBase + "projects/fake/global/snapshots/" + name),
	}
}

// SetSnapshotStatus sets a snapshot's status (CREATING, READY, FAILED, …).
func (s *Server) SetSnapshotStatus(name, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sn := s.snapshots[name]; sn != nil {
		sn.Status = proto.String(status)
	}
}

func (s *Server) id() uint64 {
	s.nextID += 7919
	return s.nextID
}

func timestamp(t time.Time) string { return t.Format("2006-01-02T15:04:05.000-07:00") }

// ---- HTTP plumbing ----

// apiError is GCP's error body.
type apiError struct {
	code    int
	reason  string
	message string
}

func (e *apiError) write(w http.ResponseWriter) {
	domain := "global"
	switch e.reason {
	case "quotaExceeded", "rateLimitExceeded", "userRateLimitExceeded":
		domain = "usageLimits"
	}
	msg := strings.ReplaceAll(e.message, `"`, `'`)
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(e.code)
	fmt.Fprintf(w, `{"error":{"code":%d,"message":%q,"errors":[{"message":%q,"domain":%q,"reason":%q}]}}`,
		e.code, msg, msg, domain, e.reason)
}

func errf(code int, reason, format string, args ...any) *apiError {
	return &apiError{code: code, reason: reason, message: fmt.Sprintf(format, args...)}
}

func badRequest(format string, args ...any) *apiError {
	return errf(http.StatusBadRequest, "invalid", format, args...)
}

func notFound(what string) *apiError {
	return errf(http.StatusNotFound, "notFound", "The resource '%s' was not found", what)
}

func defaultMessage(status int, reason string) string {
	switch reason {
	case "quotaExceeded":
		return "Quota 'CPUS' exceeded.  Limit: 24.0 in region us-central1."
	case "rateLimitExceeded":
		return "Rate Limit Exceeded"
	case "forbidden":
		return "Required 'compute.instances.create' permission for 'projects/fake'"
	}
	return fmt.Sprintf("gcpfake injected %d %s", status, reason)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	hook := s.hook
	s.requests = append(s.requests, r.Method+" "+r.URL.Path)
	s.mu.Unlock()
	if hook != nil {
		hook(r)
	}

	s.mu.Lock()
	f := s.takeFailure(r)
	s.mu.Unlock()
	if f != nil && !f.after {
		(&apiError{f.status, f.reason, defaultMessage(f.status, f.reason)}).write(w)
		return
	}
	rec := httptest.NewRecorder()
	s.route(rec, r)
	if f != nil {
		(&apiError{f.status, f.reason, defaultMessage(f.status, f.reason)}).write(w)
		return
	}
	maps.Copy(w.Header(), rec.Header())
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

func (s *Server) takeFailure(r *http.Request) *failure {
	for i, f := range s.failures {
		if (f.method == "" || f.method == r.Method) && strings.Contains(r.URL.Path, f.path) {
			f.times--
			if f.times <= 0 {
				s.failures = slices.Delete(s.failures, i, i+1)
			}
			return f
		}
	}
	return nil
}

var (
	rfc1035     = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$`)
	projectRE   = regexp.MustCompile(`^[a-z][-a-z0-9]{4,28}[a-z0-9]$|^[a-z][-a-z0-9.:]{0,62}$`)
	labelKeyRE  = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	labelValRE  = regexp.MustCompile(`^[a-z0-9_-]{0,63}$`)
	zoneRE      = regexp.MustCompile(`^[a-z]+-[a-z]+[0-9]+-[a-z]$`)
	metaKeyRE   = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,128}$`)
	mutatingOps = map[string]bool{http.MethodPost: true, http.MethodDelete: true, http.MethodPatch: true, http.MethodPut: true}
)

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	const prefix = "/compute/v1/projects/"
	path := r.URL.Path
	if !strings.HasPrefix(path, prefix) {
		badRequest("gcpfake: unsupported path %s", path).write(w)
		return
	}
	seg := strings.Split(strings.TrimPrefix(path, prefix), "/")
	project := seg[0]
	if !projectRE.MatchString(project) {
		badRequest("Invalid value for project: %s", project).write(w)
		return
	}
	seg = seg[1:]
	if mutatingOps[r.Method] && !(len(seg) >= 4 && seg[len(seg)-1] == "wait") {
		rid := r.URL.Query().Get("requestId")
		if rid == "" {
			badRequest("gcpfake: mutating call %s %s without requestId", r.Method, path).write(w)
			return
		}
		if u, err := uuid.Parse(rid); err != nil || u == uuid.Nil {
			badRequest("Invalid value for field 'requestId': '%s'. The request ID must be a valid UUID", rid).write(w)
			return
		}
	}
	c := &call{s: s, w: w, r: r, project: project}
	switch {
	case len(seg) == 3 && seg[0] == "zones" && seg[2] == "instances" && r.Method == http.MethodPost:
		c.zoned(seg[1], c.insertInstance)
	case len(seg) == 3 && seg[0] == "zones" && seg[2] == "instances" && r.Method == http.MethodGet:
		c.zoned(seg[1], c.listInstances)
	case len(seg) == 4 && seg[0] == "zones" && seg[2] == "instances" && r.Method == http.MethodGet:
		c.zoned(seg[1], func(z string) { c.getInstance(z, seg[3]) })
	case len(seg) == 4 && seg[0] == "zones" && seg[2] == "instances" && r.Method == http.MethodDelete:
		c.zoned(seg[1], func(z string) { c.deleteInstance(z, seg[3]) })
	case len(seg) == 2 && seg[0] == "aggregated" && seg[1] == "instances" && r.Method == http.MethodGet:
		c.aggregatedInstances()
	case len(seg) == 3 && seg[0] == "zones" && seg[2] == "disks" && r.Method == http.MethodPost:
		c.zoned(seg[1], c.insertDisk)
	case len(seg) == 3 && seg[0] == "zones" && seg[2] == "disks" && r.Method == http.MethodGet:
		c.zoned(seg[1], c.listDisks)
	case len(seg) == 4 && seg[0] == "zones" && seg[2] == "disks" && r.Method == http.MethodGet:
		c.zoned(seg[1], func(z string) { c.getDisk(z, seg[3]) })
	case len(seg) == 4 && seg[0] == "zones" && seg[2] == "disks" && r.Method == http.MethodDelete:
		c.zoned(seg[1], func(z string) { c.deleteDisk(z, seg[3]) })
	case len(seg) == 2 && seg[0] == "aggregated" && seg[1] == "disks" && r.Method == http.MethodGet:
		c.aggregatedDisks()
	case len(seg) == 2 && seg[0] == "global" && seg[1] == "snapshots" && r.Method == http.MethodGet:
		c.listSnapshots()
	case len(seg) == 2 && seg[0] == "global" && seg[1] == "snapshots" && r.Method == http.MethodPost:
		c.insertSnapshot()
	case len(seg) == 3 && seg[0] == "global" && seg[1] == "snapshots" && r.Method == http.MethodGet:
		c.getSnapshot(seg[2])
	case len(seg) == 3 && seg[0] == "global" && seg[1] == "snapshots" && r.Method == http.MethodDelete:
		c.deleteSnapshot(seg[2])
	case len(seg) == 2 && seg[0] == "global" && seg[1] == "firewalls" && r.Method == http.MethodPost:
		c.insertFirewall()
	case len(seg) == 2 && seg[0] == "global" && seg[1] == "firewalls" && r.Method == http.MethodGet:
		c.listFirewalls()
	case len(seg) == 3 && seg[0] == "global" && seg[1] == "firewalls" && r.Method == http.MethodGet:
		c.getFirewall(seg[2])
	case len(seg) == 3 && seg[0] == "global" && seg[1] == "firewalls" && r.Method == http.MethodDelete:
		c.deleteFirewall(seg[2])
	case len(seg) == 4 && seg[0] == "zones" && seg[2] == "operations" && r.Method == http.MethodGet:
		c.zoned(seg[1], func(z string) { c.getOperation(seg[3], z, false) })
	case len(seg) == 5 && seg[0] == "zones" && seg[2] == "operations" && seg[4] == "wait" && r.Method == http.MethodPost:
		c.zoned(seg[1], func(z string) { c.getOperation(seg[3], z, true) })
	case len(seg) == 3 && seg[0] == "global" && seg[1] == "operations" && r.Method == http.MethodGet:
		c.getOperation(seg[2], "", false)
	case len(seg) == 4 && seg[0] == "global" && seg[1] == "operations" && seg[3] == "wait" && r.Method == http.MethodPost:
		c.getOperation(seg[2], "", true)
	default:
		badRequest("gcpfake: unsupported method %s %s", r.Method, path).write(w)
	}
}

// call is one request being handled.
type call struct {
	s       *Server
	w       http.ResponseWriter
	r       *http.Request
	project string
}

func (c *call) zoned(zone string, f func(zone string)) {
	c.s.mu.Lock()
	known := c.s.zones[zone]
	c.s.mu.Unlock()
	if !known {
		notFound("projects/" + c.project + "/zones/" + zone).write(c.w)
		return
	}
	f(zone)
}

func (c *call) reply(m proto.Message) {
	b, err := protojson.Marshal(m)
	if err != nil {
		errf(500, "backendError", "gcpfake: marshal: %v", err).write(c.w)
		return
	}
	c.w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	c.w.WriteHeader(http.StatusOK)
	c.w.Write(b)
}

// decode reads the JSON body strictly: unknown fields are a 400.
func (c *call) decode(m proto.Message) bool {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(c.r.Body); err != nil {
		badRequest("read body: %v", err).write(c.w)
		return false
	}
	if ct := c.r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		badRequest("Content-Type %q, want application/json", ct).write(c.w)
		return false
	}
	if err := protojson.Unmarshal(buf.Bytes(), m); err != nil {
		badRequest("Invalid JSON payload received. %v", err).write(c.w)
		return false
	}
	return true
}

func (c *call) url(parts ...string) string {
	return apiBase + "projects/" + c.project + "/" + strings.Join(parts, "/")
}

// ---- operations ----

// newOp records an operation. finish runs when it completes; opErr, when
// set, is the error it completes with. The caller holds mu.
func (c *call) newOp(zone, opType, target string, finish func(), opErr *computepb.Operation) *operation {
	s := c.s
	now := time.Now()
	id := s.id()
	name := fmt.Sprintf("operation-%d-%x", now.UnixMilli(), id)
	pb := &computepb.Operation{
		Kind:          proto.String("compute#operation"),
		Id:            proto.Uint64(id),
		Name:          proto.String(name),
		OperationType: proto.String(opType),
		TargetLink:    proto.String(target),
		TargetId:      proto.Uint64(s.id()),
		Status:        computepb.Operation_PENDING.Enum(),
		Progress:      proto.Int32(0),
		InsertTime:    proto.String(timestamp(now)),
		User:          proto.String("failoverd@fake.iam.gserviceaccount.com"),
	}
	if zone != "" {
		pb.Zone = proto.String(c.url("zones", zone))
		pb.SelfLink = proto.String(c.url("zones", zone, "operations", name))
	} else {
		pb.SelfLink = proto.String(c.url("global", "operations", name))
	}
	if opErr != nil {
		pb.Error = opErr.Error
		pb.HttpErrorStatusCode = opErr.HttpErrorStatusCode
		pb.HttpErrorMessage = opErr.HttpErrorMessage
	}
	op := &operation{pb: pb, doneAt: now.Add(s.opDelay), finish: finish}
	s.ops[name] = op
	if rid := c.r.URL.Query().Get("requestId"); rid != "" {
		s.byReqID[rid] = op
	}
	return op
}

// settle completes every operation whose time has come. Caller holds mu.
func (s *Server) settle() {
	now := time.Now()
	for _, op := range s.ops {
		if op.finished || now.Before(op.doneAt) {
			continue
		}
		op.finished = true
		op.pb.Status = computepb.Operation_DONE.Enum()
		op.pb.Progress = proto.Int32(100)
		op.pb.StartTime = op.pb.InsertTime
		op.pb.EndTime = proto.String(timestamp(now))
		if op.finish != nil && op.pb.Error == nil {
			op.finish()
		}
	}
	for name, at := range s.snapReady {
		sn := s.snapshots[name]
		if sn == nil || sn.GetStatus() != "UPLOADING" {
			delete(s.snapReady, name)
			continue
		}
		if !now.Before(at) {
			sn.Status = proto.String("READY")
			delete(s.snapReady, name)
		}
	}
}

// replay answers a repeated requestId with the first request's operation,
// as GCP does; it reports whether it answered. Caller holds mu.
func (c *call) replay() bool {
	rid := c.r.URL.Query().Get("requestId")
	if rid == "" {
		return false
	}
	op, ok := c.s.byReqID[rid]
	if !ok {
		return false
	}
	c.s.settle()
	c.reply(proto.CloneOf(op.pb))
	return true
}

// started answers a fresh operation: PENDING, as GCP answers an insert.
func (c *call) started(op *operation) {
	pb := proto.CloneOf(op.pb)
	c.reply(pb)
}

func (c *call) getOperation(name, zone string, wait bool) {
	s := c.s
	deadline := time.Now().Add(s.waitMax)
	for {
		s.mu.Lock()
		s.settle()
		op, ok := s.ops[name]
		if !ok || zone != zoneOfURL(op.pb.GetZone()) {
			s.mu.Unlock()
			where := "global/operations/" + name
			if zone != "" {
				where = "zones/" + zone + "/operations/" + name
			}
			notFound("projects/" + c.project + "/" + where).write(c.w)
			return
		}
		if !wait || op.finished || !time.Now().Before(deadline) {
			pb := proto.CloneOf(op.pb)
			if !op.finished {
				pb.Status = computepb.Operation_RUNNING.Enum()
			}
			s.mu.Unlock()
			c.reply(pb)
			return
		}
		s.mu.Unlock()
		select {
		case <-c.r.Context().Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func zoneOfURL(u string) string {
	if u == "" {
		return ""
	}
	return u[strings.LastIndexByte(u, '/')+1:]
}

// takeOpFailure pops an injected operation failure matching path.
func (s *Server) takeOpFailure(path string) *opFailure {
	for i, f := range s.opFails {
		if strings.Contains(path, f.path) {
			f.times--
			if f.times <= 0 {
				s.opFails = slices.Delete(s.opFails, i, i+1)
			}
			return f
		}
	}
	return nil
}

func failedOp(code, message string, status int, statusMessage string) *computepb.Operation {
	return &computepb.Operation{
		Error: &computepb.Error{Errors: []*computepb.Errors{{
			Code: proto.String(code), Message: proto.String(message),
		}}},
		HttpErrorStatusCode: proto.Int32(int32(status)),
		HttpErrorMessage:    proto.String(statusMessage),
	}
}
