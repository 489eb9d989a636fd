// Package release mirrors a validator's home helm release onto the standby:
// it reads the release's values with the helm SDK (what `helm get values
// --all` prints for the deployed revision: the operator's overrides merged
// over the chart's defaults) and picks out the client images, versions,
// network and the flags worth carrying over.
//
// # Access this needs
//
// Helm keeps each release revision in the release's namespace, in a Secret of
// type helm.sh/release.v1 with the default "secret" storage driver (or a
// ConfigMap with the "configmap" driver). Reading a release therefore needs
// `list` on Secrets (or ConfigMaps) in that namespace. That collides with the
// design rule that failoverd's own identity can never read Secrets: the
// validator's keystores are Secrets in the same namespace, and RBAC cannot
// narrow `list` to helm's Secrets. So the daemon must not be given that
// access; mirroring is meant to run with the operator's own kubeconfig (e.g.
// `failoverd bootstrap render --from-release` on the operator's machine, which
// writes the clients into the config), or against a release stored with the
// configmap driver (HELM_DRIVER=configmap), where ConfigMap read access is
// enough. A Forbidden answer comes back as ErrForbidden, saying so.
package release

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	helmrelease "helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/rest"
)

// Errors ReadValues returns, checked with errors.Is.
var (
	// ErrNotFound: no release of that name in that namespace.
	ErrNotFound = errors.New("helm release not found")
	// ErrNotDeployed: the release exists but no revision is deployed
	// (a failed install, an upgrade still pending, an uninstall kept in history).
	ErrNotDeployed = errors.New("helm release has no deployed revision")
	// ErrForbidden: the identity may not read the release's storage.
	ErrForbidden = errors.New("not allowed to read the helm release")
)

// Storage drivers (helm's HELM_DRIVER).
const (
	DriverSecret    = "secret"
	DriverConfigMap = "configmap"
)

// ChartInfo says which chart and revision the values came from.
type ChartInfo struct {
	Release    string `json:"release"`
	Namespace  string `json:"namespace"`
	Revision   int    `json:"revision"`
	Chart      string `json:"chart"`
	Version    string `json:"version"`
	AppVersion string `json:"appVersion,omitempty"`
}

// Source names a release and how to reach it.
type Source struct {
	// Kubeconfig is the kubeconfig file; empty: $KUBECONFIG or ~/.kube/config.
	Kubeconfig string
	// Context in the kubeconfig; empty: its current context.
	Context string
	// Namespace of the release; empty: the context's namespace.
	Namespace string
	// Release is the helm release name.
	Release string
	// Driver is helm's storage driver: DriverSecret (helm's default, used
	// when empty) or DriverConfigMap.
	Driver string
}

// ReadValues reads the deployed revision of a helm release stored with
// helm's default "secret" driver: all values (chart defaults coalesced with
// the operator's overrides, as `helm get values --all`) and the chart.
func ReadValues(ctx context.Context, kubeconfig, kubeContext, namespace, release string) (map[string]any, *ChartInfo, error) {
	return Read(ctx, Source{Kubeconfig: kubeconfig, Context: kubeContext, Namespace: namespace, Release: release})
}

// Read is ReadValues with every option.
func Read(ctx context.Context, src Source) (map[string]any, *ChartInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	if src.Release == "" {
		return nil, nil, errors.New("helm release: no release name")
	}
	drv := src.Driver
	if drv == "" {
		drv = DriverSecret
	}
	if drv != DriverSecret && drv != DriverConfigMap {
		return nil, nil, fmt.Errorf("helm release: storage driver %q: want %q or %q", drv, DriverSecret, DriverConfigMap)
	}

	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig = &src.Kubeconfig
	flags.Context = &src.Context
	ns := src.Namespace
	if ns == "" {
		var err error
		if ns, _, err = flags.ToRawKubeConfigLoader().Namespace(); err != nil {
			return nil, nil, fmt.Errorf("helm release %s: namespace from kubeconfig: %w", src.Release, err)
		}
	}
	flags.Namespace = &ns
	// Helm's storage calls take no context: carry ctx on every request.
	flags.WrapConfigFn = func(c *rest.Config) *rest.Config {
		c.Wrap(func(rt http.RoundTripper) http.RoundTripper { return ctxTransport{ctx: ctx, next: rt} })
		return c
	}

	cfg := new(action.Configuration)
	if err := cfg.Init(flags, ns, drv, func(string, ...any) {}); err != nil {
		return nil, nil, fmt.Errorf("helm release %s/%s: %w", ns, src.Release, err)
	}
	where := fmt.Sprintf("helm release %q in namespace %q", src.Release, ns)

	// The deployed revision is what runs at home; a newer pending or failed
	// one is not. This reads exactly what `helm get values --all` reads for
	// that revision, in one list call.
	rel, err := cfg.Releases.Deployed(src.Release)
	if err != nil {
		return nil, nil, explain(ctx, cfg, where, drv, src.Release, err)
	}
	if rel.Chart == nil || rel.Chart.Metadata == nil {
		return nil, nil, fmt.Errorf("%s revision %d: no chart stored with it", where, rel.Version)
	}
	values, err := chartutil.CoalesceValues(rel.Chart, rel.Config)
	if err != nil {
		return nil, nil, fmt.Errorf("%s revision %d: values: %w", where, rel.Version, err)
	}
	md := rel.Chart.Metadata
	return values, &ChartInfo{
		Release:    rel.Name,
		Namespace:  rel.Namespace,
		Revision:   rel.Version,
		Chart:      md.Name,
		Version:    md.Version,
		AppVersion: md.AppVersion,
	}, nil
}

// explain turns helm's storage errors into ours.
func explain(ctx context.Context, cfg *action.Configuration, where, drv, name string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%s: %w (%v)", where, ctxErr, err)
	}
	if apierrors.IsForbidden(err) {
		kind := "Secrets"
		if drv == DriverConfigMap {
			kind = "ConfigMaps"
		}
		hint := ""
		if drv == DriverSecret {
			hint = "; failoverd's own identity must not read Secrets: mirror with the operator's kubeconfig, or keep the release with HELM_DRIVER=configmap"
		}
		return fmt.Errorf("%s: %w: helm's %q storage driver keeps releases in %s, so reading one needs `list` on %s in that namespace%s (%v)",
			where, ErrForbidden, drv, kind, kind, hint, err)
	}
	if !errors.Is(err, driver.ErrNoDeployedReleases) {
		return fmt.Errorf("%s: %w", where, err)
	}
	// No deployed revision: none at all, or only failed/pending ones?
	hist, herr := cfg.Releases.History(name)
	if errors.Is(herr, driver.ErrReleaseNotFound) || (herr == nil && len(hist) == 0) {
		return fmt.Errorf("%s: %w (storage driver %q)", where, ErrNotFound, drv)
	}
	if herr != nil {
		return fmt.Errorf("%s: %w", where, herr)
	}
	last := hist[0]
	for _, r := range hist {
		if r.Version > last.Version {
			last = r
		}
	}
	status := helmrelease.Status("unknown")
	if last.Info != nil {
		status = last.Info.Status
	}
	return fmt.Errorf("%s: %w (latest revision %d is %s)", where, ErrNotDeployed, last.Version, status)
}

// ctxTransport makes every request end with ctx.
type ctxTransport struct {
	ctx  context.Context
	next http.RoundTripper
}

func (t ctxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	// Helm's storage and client-go's clientset pass context.Background(),
	// which is never done; a request that already has its own deadline keeps it.
	if req.Context().Done() == nil {
		req = req.WithContext(t.ctx)
	}
	return t.next.RoundTrip(req)
}
