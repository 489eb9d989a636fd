package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/failoverd/failoverd/failover/agent"
	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/cometbft"
)

type agentFlags struct {
	listen       string
	certFile     string
	keyFile      string
	clientCA     string
	executionURL string
	beaconURL    string
	dataPath     string
	controlDir   string
	timeout      time.Duration
	logFormat    string
	logLevel     string
	signersFile  string
	threshold    int
	kmURL        string
	kmTokenFile  string
	stateDir     string
	silentEpochs int
	// Berachain (cometbft_keys.go in failover/agent).
	chain        string
	cometURL     string
	cometDir     string
	cometChainID string
	silentBlocks int
	hostTimeout  time.Duration
}

func newAgentCmd(e *env) *cobra.Command {
	var f agentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the standby agent (on a cloud standby node): report sync status to failoverd",
		Long: `Run the standby agent. It runs ON a standby node that failoverd created in a
cloud, next to the node's execution client and beacon node (installed there by
the bootstrap), not where 'failoverd serve' runs. failoverd polls it to learn
when the standby has caught up.

It serves GET /v1/status over mutual TLS 1.3: execution eth_syncing and
net_peerCount, beacon /eth/v1/node/syncing, /health and /peer_count, disk free
on --data-path, the agent's clock and its validator client's signer state.
There is no plain-HTTP port.

With --allowed-signers and --keymanager-url it also takes keys: POST /v1/keys
from an approver's 'failoverd approve-migration', authorised by the signed
approval (checked against --allowed-signers) and failoverd's grant (signed by
the CA in --client-ca), never by the connection alone; chain silence is
checked again on the local beacon node right before the keys go to the
validator client's Keymanager API with their slashing protection. A failback
(POST /v1/keys/fence, failoverd only) deletes them again.

With --chain berachain the validator signs inside beacond: an import carries
its priv_validator_key.json and priv_validator_state.json, silence is checked
on the local CometBFT node (--cometbft-url) over the last --silent-blocks
commits, and the key is staged in --cometbft-dir for the host's
failoverd-cometbft-key unit, which swaps it into beacond and answers; a
failback has the host remove it and returns beacond's last signing state.
POST /v1/chain with {"kind":"cometbft"} answers the CometBFT node's view.

Threat model: the port faces the internet, so every route but the key import
answers only failoverd's client certificate (CN "failoverd", CA in --client-ca).

The credentials are made per standby by failoverd's CA and delivered by the
bootstrap; see failover/agent/README.md.`,
		Example: `  failoverd agent --tls-cert /etc/failoverd/agent.crt --tls-key /etc/failoverd/agent.key \
    --client-ca /etc/failoverd/client-ca.crt
  failoverd agent --listen 0.0.0.0:7443 --tls-cert agent.crt --tls-key agent.key --client-ca ca.crt \
    --execution-url http://127.0.0.1:8545 --beacon-url http://127.0.0.1:5052 --data-path /var/lib/failoverd-chain
  failoverd agent --chain berachain --tls-cert agent.crt --tls-key agent.key --client-ca ca.crt \
    --control-dir /var/lib/failoverd-agent --state-dir /var/lib/failoverd-agent/state \
    --allowed-signers /etc/failoverd/allowed_signers --cometbft-chain-id mainnet-beacon-80094`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd, e, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", fmt.Sprintf("0.0.0.0:%d", agent.DefaultPort), "address to serve mutual TLS on")
	fl.StringVar(&f.certFile, "tls-cert", "", "this standby's certificate, PEM (required)")
	fl.StringVar(&f.keyFile, "tls-key", "", "this standby's private key, PEM (required)")
	fl.StringVar(&f.clientCA, "client-ca", "", "failoverd's CA certificate, PEM: the only issuer of accepted client certificates (required)")
	fl.StringVar(&f.executionURL, "execution-url", "http://127.0.0.1:8545", "the execution client's JSON-RPC endpoint")
	fl.StringVar(&f.beaconURL, "beacon-url", "http://127.0.0.1:5052", "the beacon node's REST API")
	fl.StringVar(&f.dataPath, "data-path", "/var/lib/failoverd-chain", "a path on the chain-data disk, whose free space is reported")
	fl.StringVar(&f.controlDir, "control-dir", "", "directory shared with the host through which a clean stop of the clients is requested (POST /v1/clients/stop); empty: stops are refused")
	fl.DurationVar(&f.timeout, "timeout", agent.DefaultTimeout, "how long to wait for the local clients on each status request")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fl.StringVar(&f.signersFile, "allowed-signers", "", "approvers' SSH keys (OpenSSH allowed_signers file); without it no key is ever imported")
	fl.IntVar(&f.threshold, "approval-threshold", 1, "distinct approvers an import needs")
	fl.StringVar(&f.kmURL, "keymanager-url", "", "the local validator client's Keymanager API (e.g. http://127.0.0.1:5062)")
	fl.StringVar(&f.kmTokenFile, "keymanager-token-file", "", "its bearer token file")
	fl.StringVar(&f.stateDir, "state-dir", "/var/lib/failoverd-agent", "where the signer state (ownership generation, used approvals) is kept")
	fl.IntVar(&f.silentEpochs, "silent-epochs", 3, "finished epochs of chain silence required right before an import (at least 3)")
	fl.StringVar(&f.chain, "chain", "ethereum", "the validator's chain: ethereum (keystores through the Keymanager API) or berachain (beacond's CometBFT key through the host)")
	fl.StringVar(&f.cometURL, "cometbft-url", agent.DefaultCometBFTURL, "berachain: beacond's CometBFT RPC")
	fl.StringVar(&f.cometDir, "cometbft-dir", agent.DefaultCometBFTKeyDir, "berachain: directory shared with the host's failoverd-cometbft-key unit, where the key is staged")
	fl.StringVar(&f.cometChainID, "cometbft-chain-id", "", "berachain: the chain ID the node must be on before a key install (mainnet-beacon-80094, bepolia-beacon-80069); empty: not checked, reported")
	fl.IntVar(&f.silentBlocks, "silent-blocks", cometbft.DefaultBlocks, "berachain: latest commits that must lack the validator's signature right before an install")
	fl.DurationVar(&f.hostTimeout, "cometbft-host-timeout", agent.DefaultCometBFTHostTimeout, "berachain: how long to wait for the host to install or remove the key")
	return cmd
}

func runAgent(cmd *cobra.Command, e *env, f agentFlags) error {
	var missing []string
	for _, r := range []struct{ flag, v string }{{"--tls-cert", f.certFile}, {"--tls-key", f.keyFile}, {"--client-ca", f.clientCA}} {
		if strings.TrimSpace(r.v) == "" {
			missing = append(missing, r.flag)
		}
	}
	if len(missing) > 0 {
		return &usageError{fmt.Errorf("agent needs %s: the agent never serves without mutual TLS (see 'failoverd agent --help')",
			strings.Join(missing, ", "))}
	}
	if f.timeout <= 0 {
		return &usageError{errors.New("--timeout must be positive")}
	}
	log, err := newLogger(e.stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	var comet agent.CometBFTOptions
	switch f.chain {
	case "ethereum":
	case "berachain":
		if f.silentBlocks < cometbft.MinBlocks || f.silentBlocks > cometbft.MaxBlocks {
			return &usageError{fmt.Errorf("--silent-blocks %d: want %d to %d", f.silentBlocks, cometbft.MinBlocks, cometbft.MaxBlocks)}
		}
		comet = agent.CometBFTOptions{URL: f.cometURL, KeyDir: f.cometDir, ChainID: f.cometChainID, Blocks: f.silentBlocks, HostTimeout: f.hostTimeout}
	default:
		return &usageError{fmt.Errorf("--chain %q: want ethereum or berachain", f.chain)}
	}
	var keys agent.KeyOptions
	if f.signersFile != "" {
		b, err := os.ReadFile(f.signersFile)
		if err != nil {
			return fmt.Errorf("--allowed-signers: %w", err)
		}
		signers, err := approval.ParseAllowedSigners(strings.Split(string(b), "\n"))
		if err != nil {
			return fmt.Errorf("--allowed-signers: %w", err)
		}
		if f.kmURL == "" && f.chain == "ethereum" {
			return &usageError{errors.New("--allowed-signers needs --keymanager-url: keys go to the local validator client")}
		}
		if f.chain == "berachain" && f.controlDir == "" {
			return &usageError{errors.New("--chain berachain with --allowed-signers needs --control-dir: beacond's gate reads validator-start there")}
		}
		token := ""
		if f.kmTokenFile != "" {
			tb, err := os.ReadFile(f.kmTokenFile)
			if err != nil {
				return fmt.Errorf("--keymanager-token-file: %w", err)
			}
			token = strings.TrimSpace(string(tb))
		}
		if err := os.MkdirAll(f.stateDir, 0o700); err != nil {
			return fmt.Errorf("--state-dir: %w", err)
		}
		keys = agent.KeyOptions{AllowedSigners: signers, Threshold: f.threshold, KeymanagerURL: f.kmURL,
			KeymanagerToken: token, StateDir: f.stateDir, SilentEpochs: f.silentEpochs}
	}
	return agent.Run(cmd.Context(), agent.Options{
		Keys:         keys,
		CometBFT:     comet,
		Listen:       f.listen,
		CertFile:     f.certFile,
		KeyFile:      f.keyFile,
		ClientCAFile: f.clientCA,
		ExecutionURL: f.executionURL,
		BeaconURL:    f.beaconURL,
		DataPath:     f.dataPath,
		ControlDir:   f.controlDir,
		Timeout:      f.timeout,
		Logger:       log,
		Version:      version,
	})
}
