package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/failoverd/failoverd/failover/bootstrap"
	"github.com/failoverd/failoverd/failover/config"
)

func newBootstrapCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{Use: "bootstrap", Short: "Show what a standby boots with", RunE: groupRun}
	cmd.AddCommand(newBootstrapRenderCmd(e))
	return cmd
}

type bootstrapRenderFlags struct {
	validator, configFile, provider, output string
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
  - the standby agent (failoverd agent, mutual TLS on agent.port).
There is no validator client and there are no validator keys on a standby.

Clients, versions, chain and network come from the validator's fleet entry
(clients.execution / clients.consensus: name, version, optional image); the
agent's image and port from agent.image and agent.port. The agent's TLS
credentials are generated per standby when failoverd provisions it, so here
they are placeholders marked "` + bootstrap.Placeholder + `".

--provider picks the format (gcp: script, aws: cloud-init) and the size limit
(AWS user-data: 16 KiB); by default the validator's first gcp or aws provider,
else gcp. See failover/bootstrap/README.md for what the VM runs.`,
		Example: `  failoverd bootstrap render --config examples/local.yaml --validator eth-mainnet-1
  failoverd bootstrap render --config /etc/failoverd/config.yaml --validator bera-bepolia-1 --provider aws -o user-data.yaml`,
		Args: exactArgs(0, "no arguments (use --validator and --config)"),
		RunE: func(*cobra.Command, []string) error { return bootstrapRender(e, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.validator, "validator", "", "the fleet entry to render for (required)")
	fl.StringVarP(&f.configFile, "config", "c", "", "config file (required)")
	fl.StringVar(&f.provider, "provider", "", "gcp (startup-script) or aws (cloud-init); default: the validator's first real cloud")
	fl.StringVarP(&f.output, "output", "o", "", "write to FILE instead of standard output")
	return cmd
}

func bootstrapRender(e *env, f bootstrapRenderFlags) error {
	if f.validator == "" {
		return &usageError{errors.New("--validator NAME is required")}
	}
	if f.configFile == "" {
		return &usageError{errors.New("--config FILE is required")}
	}
	if f.provider != "" && f.provider != config.ProviderGCP && f.provider != config.ProviderAWS {
		return &usageError{fmt.Errorf("--provider %q: use gcp or aws", f.provider)}
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
	out, err := bootstrap.RenderFor(bootstrapInput(v, bootstrap.PlaceholderAgent(cfg.Agent.Image, cfg.Agent.Port)), provider)
	if err != nil {
		return fmt.Errorf("validator %s: %w", v.Name, err)
	}
	if f.output == "" || f.output == "-" {
		_, err = e.stdout.Write(out)
		return err
	}
	if err := os.WriteFile(f.output, out, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", f.output, err)
	}
	fmt.Fprintf(e.stderr, "failoverd: wrote %s (%d bytes, %s bootstrap for %s)\n", f.output, len(out), provider, v.Name)
	return nil
}

// bootstrapInput is what a standby of validator v boots with: its clients
// from the fleet entry, and the agent with its credentials.
func bootstrapInput(v config.Validator, a bootstrap.Agent) bootstrap.Input {
	return bootstrap.Input{
		Validator: v.Name, Chain: v.Chain, Network: v.Network,
		Execution: bootstrap.Client{Name: v.Clients.Execution.Name, Version: v.Clients.Execution.Version, Image: v.Clients.Execution.Image},
		Consensus: bootstrap.Client{Name: v.Clients.Consensus.Name, Version: v.Clients.Consensus.Version, Image: v.Clients.Consensus.Image},
		Agent:     a,
	}
}
