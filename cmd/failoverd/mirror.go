package main

// `failoverd bootstrap render --from-release`: mirror the validator's home
// helm release(s) onto the standby. This runs on the operator's machine with
// the operator's kubeconfig: helm keeps releases in Secrets, and failoverd's
// daemon never reads Secrets (see failover/kube/release).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/failoverd/failoverd/failover/bootstrap"
	"github.com/failoverd/failoverd/failover/config"
	"github.com/failoverd/failoverd/failover/kube/release"
)

// mirrorTimeout bounds reading the home release(s).
const mirrorTimeout = 60 * time.Second

// releaseRef is one helm release named by --from-release.
type releaseRef struct{ namespace, name string }

func (r releaseRef) String() string {
	if r.namespace == "" {
		return r.name
	}
	return r.namespace + "/" + r.name
}

// parseReleases reads NAMESPACE/RELEASE[,RELEASE2]: the namespace applies
// to every release that names none of its own (RELEASE2 may be NS2/RELEASE2);
// without any, the kubeconfig context's namespace.
func parseReleases(s string) ([]releaseRef, error) {
	const want = "want NAMESPACE/RELEASE or NAMESPACE/RELEASE,RELEASE2 (e.g. ethereum/home-geth,home-beacon)"
	var refs []releaseRef
	ns := ""
	for i, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		r := releaseRef{namespace: ns, name: item}
		if n, name, ok := strings.Cut(item, "/"); ok {
			r = releaseRef{namespace: n, name: name}
			if i == 0 {
				ns = n
			}
			if n == "" {
				return nil, fmt.Errorf("--from-release %q: empty namespace before %q; %s", s, name, want)
			}
		}
		if r.name == "" || strings.Contains(r.name, "/") {
			return nil, fmt.Errorf("--from-release %q: %s", s, want)
		}
		refs = append(refs, r)
	}
	if len(refs) > 2 {
		return nil, fmt.Errorf("--from-release %q: at most two releases (one with the execution client, one with the consensus client, or one with both)", s)
	}
	if len(refs) == 2 && refs[0] == refs[1] {
		return nil, fmt.Errorf("--from-release %q: the same release twice", s)
	}
	return refs, nil
}

// homeRelease is what the home release(s) say.
type homeRelease struct {
	clients release.Clients
	infos   []*release.ChartInfo
}

// from names the releases for review: `ns/home-geth (chart geth 1.2.3,
// revision 2)`.
func (h homeRelease) from() string {
	parts := make([]string, 0, len(h.infos))
	for _, i := range h.infos {
		parts = append(parts, fmt.Sprintf("%s/%s (chart %s %s, revision %d)", i.Namespace, i.Release, i.Chart, i.Version, i.Revision))
	}
	return strings.Join(parts, " and ")
}

// readHome reads and mirrors each release, and merges them.
func readHome(ctx context.Context, f bootstrapRenderFlags, refs []releaseRef) (homeRelease, error) {
	ctx, cancel := context.WithTimeout(ctx, mirrorTimeout)
	defer cancel()
	var h homeRelease
	for i, r := range refs {
		values, info, err := release.Read(ctx, release.Source{
			Kubeconfig: f.kubeconfig, Context: f.kubeContext,
			Namespace: r.namespace, Release: r.name, Driver: f.helmDriver,
		})
		switch {
		case errors.Is(err, release.ErrForbidden):
			return h, fmt.Errorf("--from-release: %w\n  run this on your own machine with the kubeconfig you run helm with (--kubeconfig, --kube-context), not with failoverd's identity", err)
		case errors.Is(err, release.ErrNotFound):
			return h, fmt.Errorf("--from-release: %w\n  check the name and namespace with `helm list -n NAMESPACE` (and --helm-driver if the release is kept with HELM_DRIVER=configmap)", err)
		case err != nil:
			return h, fmt.Errorf("--from-release: %w", err)
		}
		m, err := release.MappingFor(info.Chart, values)
		if err != nil {
			return h, fmt.Errorf("--from-release %s: %w", r, err)
		}
		c, err := release.Mirror(values, m)
		if err != nil {
			return h, fmt.Errorf("--from-release %s (chart %s %s): %w", r, info.Chart, info.Version, err)
		}
		if i == 0 {
			h.clients = c
		} else if h.clients, err = release.Merge(h.clients, c); err != nil {
			return h, fmt.Errorf("--from-release %s and %s: %w", refs[0], r, err)
		}
		h.infos = append(h.infos, info)
	}
	return h, nil
}

// mirrorPlan is the fleet entry as the home release has it, with what the
// config has no room for.
type mirrorPlan struct {
	v config.Validator
	// execArgs, consArgs: the home flags the standby carries.
	execArgs, consArgs []string
	// checkpointSyncURL from the home beacon node's --checkpoint-sync-url
	// (the bootstrap sets that flag itself).
	checkpointSyncURL string
}

// applyHome replaces v's network and clients with the home release's,
// warning on w where the config disagrees. A different network is an error.
func applyHome(w io.Writer, file string, v config.Validator, h homeRelease) (mirrorPlan, error) {
	c := h.clients
	if c.Network != v.Network {
		return mirrorPlan{}, fmt.Errorf("validator %s: the home release runs network %q (%s) but the fleet entry in %s says network %q: a standby on the wrong network is useless; check that --from-release names this validator's release, or fix fleet[].network",
			v.Name, c.Network, c.NetworkFrom, file, v.Network)
	}
	warn := func(format string, args ...any) {
		fmt.Fprintf(w, "failoverd: warning: %s: "+format+"\n", append([]any{v.Name}, args...)...)
	}
	for _, s := range c.Warnings {
		warn("%s", s)
	}
	p := mirrorPlan{v: v}
	layer := func(kind string, cfg *config.Client, home release.Client) []string {
		if home.Empty() {
			fmt.Fprintf(w, "failoverd: %s: no %s client in the home release; keeping the config's %s %s\n", v.Name, kind, cfg.Name, cfg.Version)
			return nil
		}
		if cfg.Name != "" && cfg.Name != home.Name {
			warn("%s client: the config says %s, the home release runs %s; rendering %s", kind, cfg.Name, home.Name, home.Name)
		}
		if cfg.Version != "" && cfg.Version != home.Version {
			warn("%s version: the config says %s, the home release runs %s; rendering %s", kind, cfg.Version, home.Version, home.Version)
		}
		if cfg.Image != "" && cfg.Image != home.Image && cfg.Image != imageRef(home.Image, home.Version) {
			warn("%s image: the config says %s, the home release runs %s; rendering %s", kind, cfg.Image, home.Image, home.Image)
		}
		for _, s := range home.Skipped {
			fmt.Fprintf(w, "failoverd: %s: %s flag left behind: %s (%s)\n", v.Name, home.Name, s.Flag, s.Reason)
		}
		*cfg = config.Client{Name: home.Name, Version: home.Version, Image: home.Image}
		var args []string
		for _, f := range home.Flags {
			if u, ok := strings.CutPrefix(f, "--checkpoint-sync-url="); ok && kind == "consensus" {
				p.checkpointSyncURL = u
				continue
			}
			args = append(args, f)
		}
		return args
	}
	p.execArgs = layer("execution", &p.v.Clients.Execution, c.Execution)
	p.consArgs = layer("consensus", &p.v.Clients.Consensus, c.Consensus)
	fmt.Fprintf(w, "failoverd: %s: mirrored from helm release %s: network %s (%s), %s %s, %s %s\n",
		v.Name, h.from(), c.Network, c.NetworkFrom,
		p.v.Clients.Execution.Name, shownImage(p.v.Clients.Execution),
		p.v.Clients.Consensus.Name, shownImage(p.v.Clients.Consensus))
	return p, nil
}

// fleetSnippet is the fleet entry to paste into the config so that the
// daemon's standbys mirror the home release from then on.
func fleetSnippet(file string, p mirrorPlan, h homeRelease) []byte {
	var b strings.Builder
	v := p.v
	fmt.Fprintf(&b, "# Fleet entry %s, mirrored from helm release %s.\n", v.Name, h.from())
	fmt.Fprintf(&b, "# In %s, replace these keys of the fleet entry named %s (keep its\n# other keys: site, providers, snapshots); check with `failoverd config validate`.\n", file, v.Name)
	var carried []string
	if len(p.execArgs) > 0 {
		carried = append(carried, v.Clients.Execution.Name+" "+strings.Join(p.execArgs, " "))
	}
	if len(p.consArgs) > 0 {
		carried = append(carried, v.Clients.Consensus.Name+" "+strings.Join(p.consArgs, " "))
	}
	if p.checkpointSyncURL != "" {
		carried = append(carried, v.Clients.Consensus.Name+" --checkpoint-sync-url="+p.checkpointSyncURL)
	}
	if len(carried) > 0 {
		b.WriteString("# The config has no key for the home flags below: standbys the daemon\n# provisions run without them (`bootstrap render --from-release` shows them):\n")
		for _, c := range carried {
			fmt.Fprintf(&b, "#   %s\n", c)
		}
	}
	fmt.Fprintf(&b, "- name: %s\n  chain: %s\n  network: %s\n  clients:\n", scalar(v.Name), scalar(v.Chain), scalar(v.Network))
	for _, l := range []struct {
		kind string
		c    config.Client
	}{{"execution", v.Clients.Execution}, {"consensus", v.Clients.Consensus}} {
		fmt.Fprintf(&b, "    %s:\n      name: %s\n      version: %s\n", l.kind, scalar(l.c.Name), scalar(l.c.Version))
		if l.c.Image != "" {
			fmt.Fprintf(&b, "      image: %s\n", scalar(l.c.Image))
		}
	}
	return []byte(b.String())
}

// scalar is s as a YAML scalar, quoted when it would otherwise read as
// something else (a number, a bool, empty).
func scalar(s string) string {
	out, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// clientImage is the image a standby runs for c: Image as given when it
// names a tag or digest, Image:Version when Image is a repository (as the
// mirrored config has it), empty for the bootstrap's default repository.
func clientImage(c config.Client) string {
	if c.Image == "" || c.Version == "" || hasTagOrDigest(c.Image) {
		return c.Image
	}
	return imageRef(c.Image, c.Version)
}

// shownImage is the image a standby runs for c, for review.
func shownImage(c config.Client) string {
	if img := clientImage(c); img != "" {
		return img
	}
	if img, err := bootstrap.DefaultImage(c.Name, c.Version); err == nil {
		return img
	}
	return c.Version
}

func hasTagOrDigest(image string) bool {
	if strings.Contains(image, "@") {
		return true
	}
	last := image[strings.LastIndex(image, "/")+1:]
	return strings.Contains(last, ":")
}

// imageRef joins a repository and a tag, or a digest (sha256:…).
func imageRef(repo, version string) string {
	if strings.HasPrefix(version, "sha256:") {
		return repo + "@" + version
	}
	return repo + ":" + version
}
