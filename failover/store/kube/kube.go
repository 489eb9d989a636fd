// Package kube is failoverd's store in the Kubernetes API: four namespaced
// custom resources of the group failoverd.io/v1alpha1, so that the state
// survives any one node and two replicas share it. The CRDs are
// charts/failoverd/crds (helm installs them before the chart).
//
// Layout. One object per record:
//
//	record           kind             plural (short name)  key
//	Incident         Incident         incidents (inc)      ID
//	ValidatorRecord  ValidatorState   validatorstates      Name
//	SiteRecord       SiteState        sitestates           Name
//	SnapshotRun      SnapshotRun      snapshotruns         ID
//
// The whole record, as its own JSON encoding writes it but without Version,
// is the object's .spec; times are RFC 3339 strings with nanoseconds (not
// metav1.Time, which keeps seconds). Nothing of the record lives anywhere
// else, so one write is one compare-and-swap and a reader never sees half a
// record. Incident has a status subresource (left for conditions other tools
// may add, and separately grantable in RBAC), but the store never writes
// .status: with the subresource enabled a create drops .status and a write
// to the main resource ignores it, so a record split between the two would
// take two writes and could be seen half-written. The printer columns read
// .spec.
//
// Names. A record's key becomes metadata.name unchanged when it is a DNS-1123
// subdomain (incident IDs like eth-1-3, most validator names) and does not
// end like an encoded name; any other key (an empty one is refused) is
// encoded as a readable slug, "--" and 32 hex digits of the key's SHA-256:
// "Basement Site" is basement-site--<hash>. The mapping is a function, so a
// key has exactly one object and a create of an existing key conflicts, and
// it is injective (verbatim names never end like encoded ones), so two keys
// never share an object short of a SHA-256 collision. The key itself is in
// the record (.spec.id or .spec.name); reads check it against the key asked
// for.
//
// Compare-and-swap. Version is metadata.resourceVersion. A write with an
// empty Version is a create (POST; AlreadyExists is ErrConflict); any other
// is an update (PUT of the whole object with that resourceVersion: the
// apiserver's Conflict is ErrConflict, NotFound is ErrNotFound). Updates
// replace the object, never merge or patch, so a field the caller cleared is
// gone. The store owns its objects whole: labels, annotations or finalizers
// added by hand are dropped by the next write.
//
// Labels, set on every write, narrow lists on the server:
// failoverd.io/open ("true"/"false") on incidents, for
// ListIncidents{OpenOnly}; failoverd.io/validator on incidents and snapshot
// runs (the validator's name when it is a valid label value, else a hash).
// Lists then filter with ListOptions.Match as well, so a label can narrow a
// list but never decides it.
//
// Permissions: get, list, create and update on incidents, validatorstates,
// sitestates and snapshotruns in the store's namespace. Nothing else: no
// watch, patch or delete.
package kube

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"

	"github.com/failoverd/failoverd/failover"
)

// The API of the custom resources.
const (
	Group   = "failoverd.io"
	Version = "v1alpha1"
)

// GroupVersion is Group/Version.
var GroupVersion = schema.GroupVersion{Group: Group, Version: Version}

// Labels the store maintains on its objects.
const (
	// LabelOpen is "true" on an incident whose state is Open(), else "false".
	LabelOpen = Group + "/open"
	// LabelValidator names an incident's or snapshot run's validator (see
	// labelValue).
	LabelValidator = Group + "/validator"
	labelManagedBy = "app.kubernetes.io/managed-by"
	managedBy      = "failoverd"
)

// Resources are the plurals of the four kinds, for RBAC rules.
var Resources = []string{incidents.plural, validatorStates.plural, siteStates.plural, snapshotRuns.plural}

// resource is one kind as the store uses it.
type resource struct {
	plural string // URL path segment
	kind   string
	noun   string // in error messages
}

var (
	incidents       = resource{plural: "incidents", kind: "Incident", noun: "incident"}
	validatorStates = resource{plural: "validatorstates", kind: "ValidatorState", noun: "validator"}
	siteStates      = resource{plural: "sitestates", kind: "SiteState", noun: "site"}
	snapshotRuns    = resource{plural: "snapshotruns", kind: "SnapshotRun", noun: "snapshot run"}
)

// listPageSize bounds one page of a list; lists follow continue tokens.
const listPageSize = 500

// saNamespaceFile is where a pod finds its own namespace.
const saNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Options configures New.
type Options struct {
	// Namespace holds the objects. Empty means the pod's own namespace (from
	// its ServiceAccount mount); outside a pod it must be set.
	Namespace string
}

// Store is a failover.Store in the Kubernetes API.
type Store struct {
	client rest.Interface
	ns     string
}

var _ failover.Store = (*Store)(nil)

// New makes a store that talks to the API server of cfg. It makes no
// request: a missing CRD or permission shows on the first call. cfg is
// copied; when its QPS is 0 (client-go's default of 5/s would throttle the
// reconcile loop) the copy allows 50/s with bursts of 100.
func New(cfg *rest.Config, o Options) (*Store, error) {
	if cfg == nil {
		return nil, errors.New("kube store: no client configuration")
	}
	ns := o.Namespace
	if ns == "" {
		b, err := os.ReadFile(saNamespaceFile)
		if err != nil {
			return nil, errors.New("kube store: no namespace given, and not running in a pod (no " + saNamespaceFile + ")")
		}
		ns = strings.TrimSpace(string(b))
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return nil, fmt.Errorf("kube store: namespace %q: %s", ns, strings.Join(errs, "; "))
	}

	c := rest.CopyConfig(cfg)
	gv := GroupVersion
	c.GroupVersion = &gv
	c.APIPath = "/apis"
	c.ContentType = runtime.ContentTypeJSON
	c.AcceptContentTypes = runtime.ContentTypeJSON
	c.NegotiatedSerializer = codecs.WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent() + " failoverd-store"
	}
	if c.QPS == 0 {
		c.QPS, c.Burst = 50, 100
	}
	client, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("kube store: %w", err)
	}
	return &Store{client: client, ns: ns}, nil
}

// codecs decode the apiserver's Status responses into errors; records are
// plain JSON and never pass through a scheme.
var codecs = func() serializer.CodecFactory {
	s := runtime.NewScheme()
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	return serializer.NewCodecFactory(s)
}()

// Namespace is where the store keeps its objects.
func (s *Store) Namespace() string { return s.ns }

// Close implements failover.Store; there is nothing to release.
func (s *Store) Close() error { return nil }

// GetIncident implements failover.Store.
func (s *Store) GetIncident(ctx context.Context, id string) (failover.Incident, error) {
	return get(ctx, s, incidents, id, incidentKey, incidentVersion)
}

// PutIncident implements failover.Store.
func (s *Store) PutIncident(ctx context.Context, inc *failover.Incident) error {
	labels := map[string]string{
		LabelOpen:      fmt.Sprint(inc.State.Open()),
		LabelValidator: labelValue(inc.Validator),
	}
	return put(ctx, s, incidents, inc, labels, incidentKey, incidentVersion)
}

// ListIncidents implements failover.Store.
func (s *Store) ListIncidents(ctx context.Context, opts failover.ListOptions) ([]failover.Incident, error) {
	var sel []string
	if opts.OpenOnly {
		sel = append(sel, LabelOpen+"=true")
	}
	if opts.Validator != "" {
		sel = append(sel, LabelValidator+"="+labelValue(opts.Validator))
	}
	all, err := list(ctx, s, incidents, strings.Join(sel, ","), incidentKey, incidentVersion)
	if err != nil {
		return nil, err
	}
	out := slices.DeleteFunc(all, func(inc failover.Incident) bool { return !opts.Match(inc) })
	slices.SortFunc(out, func(a, b failover.Incident) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// GetValidator implements failover.Store.
func (s *Store) GetValidator(ctx context.Context, name string) (failover.ValidatorRecord, error) {
	return get(ctx, s, validatorStates, name, validatorKey, validatorVersion)
}

// PutValidator implements failover.Store.
func (s *Store) PutValidator(ctx context.Context, v *failover.ValidatorRecord) error {
	return put(ctx, s, validatorStates, v, nil, validatorKey, validatorVersion)
}

// ListValidators implements failover.Store; records come in name order.
func (s *Store) ListValidators(ctx context.Context) ([]failover.ValidatorRecord, error) {
	out, err := list(ctx, s, validatorStates, "", validatorKey, validatorVersion)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b failover.ValidatorRecord) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// GetSite implements failover.Store.
func (s *Store) GetSite(ctx context.Context, name string) (failover.SiteRecord, error) {
	return get(ctx, s, siteStates, name, siteKey, siteVersion)
}

// PutSite implements failover.Store.
func (s *Store) PutSite(ctx context.Context, r *failover.SiteRecord) error {
	return put(ctx, s, siteStates, r, nil, siteKey, siteVersion)
}

// ListSites implements failover.Store; records come in name order.
func (s *Store) ListSites(ctx context.Context) ([]failover.SiteRecord, error) {
	out, err := list(ctx, s, siteStates, "", siteKey, siteVersion)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b failover.SiteRecord) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// GetSnapshotRun implements failover.Store.
func (s *Store) GetSnapshotRun(ctx context.Context, id string) (failover.SnapshotRun, error) {
	return get(ctx, s, snapshotRuns, id, runKey, runVersion)
}

// PutSnapshotRun implements failover.Store.
func (s *Store) PutSnapshotRun(ctx context.Context, r *failover.SnapshotRun) error {
	labels := map[string]string{LabelValidator: labelValue(r.Validator)}
	return put(ctx, s, snapshotRuns, r, labels, runKey, runVersion)
}

// ListSnapshotRuns implements failover.Store.
func (s *Store) ListSnapshotRuns(ctx context.Context, validator string) ([]failover.SnapshotRun, error) {
	sel := ""
	if validator != "" {
		sel = LabelValidator + "=" + labelValue(validator)
	}
	all, err := list(ctx, s, snapshotRuns, sel, runKey, runVersion)
	if err != nil {
		return nil, err
	}
	out := slices.DeleteFunc(all, func(r failover.SnapshotRun) bool {
		return validator != "" && r.Validator != validator
	})
	slices.SortFunc(out, func(a, b failover.SnapshotRun) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

func incidentKey(i *failover.Incident) string         { return i.ID }
func incidentVersion(i *failover.Incident) *string    { return &i.Version }
func validatorKey(v *failover.ValidatorRecord) string { return v.Name }
func validatorVersion(v *failover.ValidatorRecord) *string {
	return &v.Version
}
func siteKey(r *failover.SiteRecord) string      { return r.Name }
func siteVersion(r *failover.SiteRecord) *string { return &r.Version }
func runKey(r *failover.SnapshotRun) string      { return r.ID }
func runVersion(r *failover.SnapshotRun) *string { return &r.Version }

// object is a custom resource as the store writes and reads it. Spec stays
// raw: the record's own JSON goes in and comes out untouched.
type object struct {
	APIVersion string          `json:"apiVersion,omitempty"`
	Kind       string          `json:"kind,omitempty"`
	Metadata   objectMeta      `json:"metadata"`
	Spec       json.RawMessage `json:"spec"`
}

type objectMeta struct {
	Name            string            `json:"name"`
	Namespace       string            `json:"namespace,omitempty"`
	ResourceVersion string            `json:"resourceVersion,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
}

type objectList struct {
	Metadata struct {
		Continue string `json:"continue,omitempty"`
	} `json:"metadata"`
	Items []object `json:"items"`
}

func get[T any](ctx context.Context, s *Store, res resource, key string, keyOf func(*T) string, version func(*T) *string) (T, error) {
	var zero T
	fail := func(err error) (T, error) { return zero, fmt.Errorf("get %s %s: %w", res.noun, key, err) }
	name, err := ObjectName(key)
	if err != nil {
		return fail(err)
	}
	body, err := s.do(ctx, s.client.Get().Namespace(s.ns).Resource(res.plural).Name(name))
	if err != nil {
		if objectNotFound(err, res, name) {
			return fail(fmt.Errorf("%w (%w)", failover.ErrNotFound, err))
		}
		return fail(s.explain(res, err))
	}
	var obj object
	if err := json.Unmarshal(body, &obj); err != nil {
		return fail(fmt.Errorf("decode %s: %w", name, err))
	}
	rec, err := decode(obj, keyOf, version)
	if err != nil {
		return fail(err)
	}
	if k := keyOf(&rec); k != key {
		return fail(fmt.Errorf("object %s holds %s %q, not %q", name, res.noun, k, key))
	}
	return rec, nil
}

// put creates (Version "") or updates the record at its key, replacing the
// whole object, and sets the new Version on rec. rec is not touched when the
// write fails.
func put[T any](ctx context.Context, s *Store, res resource, rec *T, labels map[string]string, keyOf func(*T) string, version func(*T) *string) error {
	key := keyOf(rec)
	fail := func(err error) error { return fmt.Errorf("put %s %s: %w", res.noun, key, err) }
	if key == "" {
		return fail(errors.New("empty key"))
	}
	name, err := ObjectName(key)
	if err != nil {
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	// The version is the object's, not part of the record.
	cp := *rec
	rv := *version(&cp)
	*version(&cp) = ""
	spec, err := json.Marshal(&cp)
	if err != nil {
		return fail(fmt.Errorf("encode: %w", err))
	}
	l := map[string]string{labelManagedBy: managedBy}
	for k, v := range labels {
		l[k] = v
	}
	obj := object{
		APIVersion: GroupVersion.String(),
		Kind:       res.kind,
		Metadata:   objectMeta{Name: name, Namespace: s.ns, ResourceVersion: rv, Labels: l},
		Spec:       spec,
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return fail(fmt.Errorf("encode: %w", err))
	}

	var req *rest.Request
	if rv == "" {
		req = s.client.Post().Namespace(s.ns).Resource(res.plural)
	} else {
		req = s.client.Put().Namespace(s.ns).Resource(res.plural).Name(name)
	}
	body, err := s.do(ctx, req.Body(data))
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return fail(err)
	case rv == "" && (apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err)):
		return fail(fmt.Errorf("already exists: %w (%w)", failover.ErrConflict, err))
	case rv != "" && apierrors.IsConflict(err):
		return fail(fmt.Errorf("stored version is not %s: %w (%w)", rv, failover.ErrConflict, err))
	case rv != "" && objectNotFound(err, res, name):
		return fail(fmt.Errorf("%w (%w)", failover.ErrNotFound, err))
	default:
		return fail(s.explain(res, err))
	}
	var out struct {
		Metadata objectMeta `json:"metadata"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.Metadata.ResourceVersion == "" {
		// Written, but the new version is unknown: the next write with the
		// old one conflicts, and a re-read repairs it.
		return fail(fmt.Errorf("written, but the response has no resourceVersion (%v)", err))
	}
	*version(rec) = out.Metadata.ResourceVersion
	return nil
}

func list[T any](ctx context.Context, s *Store, res resource, selector string, keyOf func(*T) string, version func(*T) *string) ([]T, error) {
	fail := func(err error) ([]T, error) { return nil, fmt.Errorf("list %ss: %w", res.noun, err) }
	var out []T
	cont := ""
	for {
		req := s.client.Get().Namespace(s.ns).Resource(res.plural).
			Param("limit", fmt.Sprint(listPageSize))
		if selector != "" {
			req = req.Param("labelSelector", selector)
		}
		if cont != "" {
			req = req.Param("continue", cont)
		}
		body, err := s.do(ctx, req)
		if err != nil {
			return fail(s.explain(res, err))
		}
		var page objectList
		if err := json.Unmarshal(body, &page); err != nil {
			return fail(fmt.Errorf("decode: %w", err))
		}
		for _, obj := range page.Items {
			rec, err := decode(obj, keyOf, version)
			if err != nil {
				return fail(err)
			}
			out = append(out, rec)
		}
		if cont = page.Metadata.Continue; cont == "" {
			return out, nil
		}
	}
}

func decode[T any](obj object, keyOf func(*T) string, version func(*T) *string) (T, error) {
	var rec T
	if len(obj.Spec) == 0 || bytes.Equal(obj.Spec, []byte("null")) {
		return rec, fmt.Errorf("object %s has no spec", obj.Metadata.Name)
	}
	if err := json.Unmarshal(obj.Spec, &rec); err != nil {
		return rec, fmt.Errorf("decode %s: %w", obj.Metadata.Name, err)
	}
	if keyOf(&rec) == "" {
		return rec, fmt.Errorf("object %s: record has no key", obj.Metadata.Name)
	}
	*version(&rec) = obj.Metadata.ResourceVersion
	return rec, nil
}

// do sends req and returns the response body. Its errors wrap ctx's when
// ctx ended, so callers tell shutdown from failure with errors.Is, and are
// apierrors (with the server's Status) otherwise.
func (s *Store) do(ctx context.Context, req *rest.Request) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := req.Do(ctx)
	body, err := res.Raw()
	if err == nil {
		return body, nil
	}
	if cerr := ctx.Err(); cerr != nil {
		return nil, fmt.Errorf("%w (%v)", cerr, err)
	}
	// Raw's error is built from the status code alone; the server's Status
	// says which object was not found and why a request was refused.
	if serr := res.Error(); serr != nil {
		err = serr
	}
	return nil, err
}

// objectNotFound tells "no such object" from "no such resource": a 404 for
// a missing CRD (or a URL the server does not serve) must not read as a
// missing record, or failoverd would think it has no state.
//
// Only the server's own Status names the object, its group and its kind.
// client-go makes up a Status with the requested name for a 404 without one
// (a resource that is not served answers "404 page not found" in plain
// text), marked as an unexpected server response.
func objectNotFound(err error, res resource, name string) bool {
	var st apierrors.APIStatus
	if !apierrors.IsNotFound(err) || apierrors.IsUnexpectedServerError(err) || !errors.As(err, &st) {
		return false
	}
	d := st.Status().Details
	return d != nil && d.Name == name && d.Group == Group && d.Kind == res.plural
}

// explain adds what to do to the errors an operator can fix.
func (s *Store) explain(res resource, err error) error {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("%w (failoverd needs get, list, create and update on %s.%s in namespace %s)", err, res.plural, Group, s.ns)
	case apierrors.IsNotFound(err):
		var st apierrors.APIStatus
		if errors.As(err, &st) {
			if d := st.Status().Details; d != nil && d.Kind == "namespaces" {
				return fmt.Errorf("%w (the store's namespace %s does not exist)", err, s.ns)
			}
		}
		return fmt.Errorf("%w (is the %s.%s CRD, version %s, installed? see charts/failoverd/crds)", err, res.plural, Group, Version)
	}
	return err
}

// encodedSuffix is how every encoded name ends, and no verbatim one.
var encodedSuffix = regexp.MustCompile(`--[0-9a-f]{32}$`)

// maxSlug bounds the readable part of an encoded name.
const maxSlug = 40

// ObjectName is the metadata.name of the record with key key: the key when it
// is a DNS-1123 subdomain not ending like an encoded name, else a slug of
// the key, "--" and 32 hex digits of its SHA-256. It fails only for an empty
// key.
func ObjectName(key string) (string, error) {
	if key == "" {
		return "", errors.New("empty key")
	}
	if len(validation.IsDNS1123Subdomain(key)) == 0 && !encodedSuffix.MatchString(key) {
		return key, nil
	}
	sum := sha256.Sum256([]byte(key))
	return slug(key) + "--" + hex.EncodeToString(sum[:16]), nil
}

// slug is the readable part of an encoded name: lower-case letters and
// digits of the key, other runs as one "-", at most maxSlug long, never
// empty.
func slug(key string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(key) {
		if b.Len() >= maxSlug {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimRight(b.String(), "-")
	if out == "" {
		return "key"
	}
	return out
}

// labelValue is the failoverd.io/validator label of a validator name: the
// name when it is a valid label value, else "h-" and hex of its SHA-256.
// Lists filter on the record as well, so a collision could only widen a
// server-side selection, never change a result.
func labelValue(name string) string {
	if len(validation.IsValidLabelValue(name)) == 0 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return "h-" + hex.EncodeToString(sum[:24])
}
