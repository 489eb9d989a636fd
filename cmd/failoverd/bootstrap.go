package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/failoverd/failoverd/failover/bootstrap"
	"github.com/failoverd/failoverd/failover/config"
	"github.com/failoverd/failoverd/failover/kube/release"
)

func newBootstrapCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "bootstrap", Short: "Show what a standby boots with", RunE: groupRun}
	cmd.AddCommand(newBootstrapRenderCmd(e))
	return cmd
}

type bootstrapRenderFlags struct {
	validator, configFile, provider, output string
	// --from-release and how to reach it.
	fromRelease, kubeconfig, kubeContext, helmDriver string
	printConfig                                      bool
}

func newBootstrapRenderCmd(e *env) *cobra.Command {
	var f bootstrapRenderFlags
	cmd := &cobra.Command{
		Use:   "render",
		Short: "Print the bootstrap a standby of a validator would boot with, for review",
		Long: `Render the bootstrap that failoverd hands a new standby VM of the validator:
the GCP startup-script (a bash script) or the AWS cloud-init user-data.

It installs Docker (Debian/Ubuntu's docker.io), formats the data disk only when
it is empty and mounts it at /var/lib/failoverd-chain, generates the Engine API
JWT on the VM, and runs, as systemd units with host networking:
  - the execution client (geth; berachain: reth or bera-reth),
  - the consensus BEACON NODE only (lighthouse bn with checkpoint sync; beacond),
  - the standby agent (failoverd agent, mutual TLS on agent.port),
  - Ethereum: the lighthouse validator client with no validator keys, behind
    an ownership gate (it starts only while it holds no key or while this
    standby owns the signing right) and with doppelganger protection.
Keys arrive only through the agent, after an approval (approve-migration).

Clients, versions, chain and network come from the validator's fleet entry
(clients.execution / clients.consensus: name, version, optional image); the
agent's image and port from agent.image and agent.port. The agent's TLS
credentials are generated per standby when failoverd provisions it, so here
they are placeholders marked "` + bootstrap.Placeholder + `".

--provider picks the format (gcp: script, aws: cloud-init) and the size limit
(AWS user-data: 16 KiB); by default the validator's first gcp or aws provider,
else gcp. See failover/bootstrap/README.md for what the VM runs.

Mirroring the home release (--from-release NAMESPACE/RELEASE[,RELEASE2]):
the standby should run what runs at home. With --from-release the command
reads the validator's helm release(s) in your cluster with the helm SDK (what
'helm get values --all' shows for the deployed revision) and takes from them
the client names, images, versions (image tags), the network and the flags
worth carrying (sync and prune mode, peers, checkpoint sync URL, ...). Give a
geth release and a lighthouse release separated by a comma (the second one in
the same namespace unless it says NS2/RELEASE2), or one release that has both.
Known layouts: the geth, reth, lighthouse and ethereum-node charts of
ethpandaops/ethereum-helm-charts.
  - The release replaces the fleet entry's clients for this render; where the
    config disagrees (another version, client or image) a warning goes to
    stderr. Another NETWORK is an error: a standby on the wrong network is
    useless. A floating image tag (latest, stable, ...) is a warning: pin one.
  - Carried flags go on the clients' command lines; flags that are node-local
    (ports, endpoints, NAT, cluster addresses) are left behind, each listed on
    stderr with why. Key and validator flags are refused.
  - Helm keeps releases in Secrets, and failoverd's daemon never reads
    Secrets. So this runs on YOUR machine with YOUR kubeconfig (--kubeconfig,
    default $KUBECONFIG or ~/.kube/config; --kube-context), the one you run
    helm with. Reading needs 'list' on Secrets in the release's namespace
    (ConfigMaps for a release kept with --helm-driver configmap, default
    $HELM_DRIVER or secret); with failoverd's own identity it is Forbidden.
  - --print-config prints, instead of the bootstrap, the fleet entry (name,
    chain, network, clients with name, version and image) to paste into the
    config file, so that the daemon's standbys mirror the home release from
    then on. Run it again after each upgrade at home.`,
		Example: `  failoverd bootstrap render --config examples/local.yaml --validator eth-mainnet-1
  failoverd bootstrap render --config /etc/failoverd/config.yaml --validator bera-bepolia-1 --provider aws -o user-data.yaml

  # What a standby of eth-hoodi-1 would run, taken from the geth and lighthouse
  # releases in namespace ethereum (your kubeconfig, your context):
  failoverd bootstrap render --config config.yaml --validator eth-hoodi-1 \
      --from-release ethereum/home-geth,home-beacon --kube-context home

  # The fleet entry to paste into config.yaml so the daemon mirrors them too:
  failoverd bootstrap render --config config.yaml --validator eth-hoodi-1 \
      --from-release ethereum/home-geth,home-beacon --kube-context home --print-config`,
		Args: exactArgs(0, "no arguments (use --validator and --config)"),
		RunE: func(cmd *cobra.Command, _ []string) error { return bootstrapRender(cmd.Context(), e, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.validator, "validator", "", "the fleet entry to render for (required)")
	fl.StringVarP(&f.configFile, "config", "c", "", "config file (required)")
	fl.StringVar(&f.provider, "provider", "", "gcp (startup-script) or aws (cloud-init); default: the validator's first real cloud")
	fl.StringVarP(&f.output, "output", "o", "", "write to FILE instead of standard output")
	fl.StringVar(&f.fromRelease, "from-release", "", "mirror the home helm release(s) NAMESPACE/RELEASE[,RELEASE2]: clients, images, versions, network, flags")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "with --from-release: your kubeconfig (default $KUBECONFIG or ~/.kube/config)")
	fl.StringVar(&f.kubeContext, "kube-context", "", "with --from-release: the kubeconfig context (default its current context)")
	fl.StringVar(&f.helmDriver, "helm-driver", "", "with --from-release: helm's storage driver, secret or configmap (default $HELM_DRIVER or secret)")
	fl.BoolVar(&f.printConfig, "print-config", false, "with --from-release: print the mirrored fleet entry for the config file instead of the bootstrap")
	return cmd
}

func bootstrapRender(ctx context.Context, e *env, f bootstrapRenderFlags) error {
	if f.validator == "" {
		return &usageError{errors.New("--validator NAME is required")}
	}
	if f.configFile == "" {
		return &usageError{errors.New("--config FILE is required")}
	}
	if f.provider != "" && f.provider != config.ProviderGCP && f.provider != config.ProviderAWS {
		return &usageError{fmt.Errorf("--provider %q: use gcp or aws", f.provider)}
	}
	var refs []releaseRef
	if f.fromRelease == "" {
		for _, x := range []struct {
			name string
			set  bool
		}{{"--print-config", f.printConfig}, {"--kubeconfig", f.kubeconfig != ""}, {"--kube-context", f.kubeContext != ""}, {"--helm-driver", f.helmDriver != ""}} {
			if x.set {
				return &usageError{fmt.Errorf("%s goes with --from-release NAMESPACE/RELEASE", x.name)}
			}
		}
	} else {
		var err error
		if refs, err = parseReleases(f.fromRelease); err != nil {
			return &usageError{err}
		}
		if f.helmDriver == "" {
			f.helmDriver = e.getenv("HELM_DRIVER")
		}
		if f.helmDriver != "" && f.helmDriver != release.DriverSecret && f.helmDriver != release.DriverConfigMap {
			return &usageError{fmt.Errorf("--helm-driver %q: use %s or %s", f.helmDriver, release.DriverSecret, release.DriverConfigMap)}
		}
	}
	cfg, err := config.Load(config.LoadOptions{File: f.configFile, Getenv: e.getenv})
	if err != nil {
		return err
	}
	v, ok := cfg.Validator(f.validator)
	if !ok {
		names := make([]string, 0, len(cfg.Fleet))
		for _, x := range cfg.Fleet {
			names = append(names, x.Name)
		}
		return &usageError{fmt.Errorf("--validator %q is not in the fleet of %s (validators: %s)", f.validator, f.configFile, strings.Join(names, ", "))}
	}
	var plan *mirrorPlan
	if len(refs) > 0 {
		home, err := readHome(ctx, f, refs)
		if err != nil {
			return err
		}
		p, err := applyHome(e.stderr, f.configFile, v, home)
		if err != nil {
			return err
		}
		if f.printConfig {
			return writeOutput(e, f.output, fleetSnippet(f.configFile, p, home), "fleet entry for "+v.Name)
		}
		v, plan = p.v, &p
	}
	provider := f.provider
	if provider == "" {
		provider = config.ProviderGCP
		for _, p := range cfg.ProvidersFor(v) {
			if p == config.ProviderGCP || p == config.ProviderAWS {
				provider = p
				break
			}
		}
		if !slices.Contains(cfg.ProvidersFor(v), provider) {
			fmt.Fprintf(e.stderr, "failoverd: %s uses no real cloud (providers: %s); rendering the %s bootstrap\n",
				v.Name, strings.Join(cfg.ProvidersFor(v), ", "), provider)
		}
	}
	appr, err := standbyApproval(cfg)
	if err != nil {
		return err
	}
	in := bootstrapInput(v, bootstrap.PlaceholderAgent(cfg.Agent.Image, cfg.Agent.Port), appr)
	if plan != nil {
		in.Execution.ExtraArgs, in.Consensus.ExtraArgs = plan.execArgs, plan.consArgs
		in.CheckpointSyncURL = plan.checkpointSyncURL
	}
	out, err := bootstrap.RenderFor(in, provider)
	if err != nil {
		return fmt.Errorf("validator %s: %w", v.Name, err)
	}
	return writeOutput(e, f.output, out, provider+" bootstrap for "+v.Name)
}

// writeOutput writes out to standard output, or to path (-o).
func writeOutput(e *env, path string, out []byte, what string) error {
	if path == "" || path == "-" {
		_, err := e.stdout.Write(out)
		return err
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	fmt.Fprintf(e.stderr, "failoverd: wrote %s (%d bytes, %s)\n", path, len(out), what)
	return nil
}

// bootstrapInput is what a standby of validator v boots with: its clients
// from the fleet entry, and the agent with its credentials. A client's image
// may be a repository (as --from-release --print-config writes it): the
// standby then runs image:version.
func bootstrapInput(v config.Validator, a bootstrap.Agent, appr bootstrap.Approval) bootstrap.Input {
	return bootstrap.Input{
		Validator: v.Name, Chain: v.Chain, Network: v.Network, Approval: appr, FeeRecipient: v.FeeRecipient,
		Execution: bootstrap.Client{Name: v.Clients.Execution.Name, Version: v.Clients.Execution.Version, Image: clientImage(v.Clients.Execution)},
		Consensus: bootstrap.Client{Name: v.Clients.Consensus.Name, Version: v.Clients.Consensus.Version, Image: clientImage(v.Clients.Consensus)},
		Agent:     a,
	}
}
