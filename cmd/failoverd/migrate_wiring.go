package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/agent"
	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/audit"
	"github.com/failoverd/failoverd/failover/beacon"
	"github.com/failoverd/failoverd/failover/bootstrap"
	"github.com/failoverd/failoverd/failover/cometbft"
	"github.com/failoverd/failoverd/failover/config"
	"github.com/failoverd/failoverd/failover/kube/fence"
	"github.com/failoverd/failoverd/failover/pki"
)

// mainnetRoot is Ethereum mainnet's genesis_validators_root.
const mainnetRoot = "0x4b363db94e286120d76eb905340fdd4e54bfe9f06bf33ff6cf5ad27f511bfe95"

// approverLines are the allowed_signers lines of approval.allowedSigners
// and approval.allowedSignersFile.
func approverLines(cfg *config.Config) ([]string, error) {
	a := cfg.Approval
	lines := append([]string(nil), a.AllowedSigners...)
	if a.AllowedSignersFile != "" {
		b, err := os.ReadFile(a.AllowedSignersFile)
		if err != nil {
			return nil, fmt.Errorf("approval.allowedSignersFile: %w", err)
		}
		lines = append(lines, strings.Split(string(b), "\n")...)
	}
	return lines, nil
}

// standbyApproval is what a standby's agent needs to take keys: the same
// approvers, threshold and chain silence as failoverd.
func standbyApproval(cfg *config.Config) (bootstrap.Approval, error) {
	lines, err := approverLines(cfg)
	if err != nil {
		return bootstrap.Approval{}, err
	}
	// The renderer drops blank and comment lines itself.
	return bootstrap.Approval{AllowedSigners: lines, Threshold: cfg.Approval.Threshold, SilentEpochs: cfg.Approval.SilentEpochs,
		SilentBlocks: cfg.Approval.SilentBlocks}, nil
}

// migrationOptions wires key moves: approvers from config, the standby
// agent client, the CA as grant signer, the audit log and, with Kubernetes
// access, home fencing by scaling to zero.
func migrationOptions(cfg *config.Config, auth *pki.Authority, agents *agent.Client, kubeRC *rest.Config) (failover.MigrationOptions, error) {
	a := cfg.Approval
	lines, err := approverLines(cfg)
	if err != nil {
		return failover.MigrationOptions{}, err
	}
	var signers approval.AllowedSigners
	if len(lines) > 0 {
		var err error
		if signers, err = approval.ParseAllowedSigners(lines); err != nil {
			return failover.MigrationOptions{}, fmt.Errorf("approval.allowedSigners: %w", err)
		}
		if n := len(signers.Principals()); a.Threshold > n {
			return failover.MigrationOptions{}, fmt.Errorf("approval.threshold %d is more than the %d allowed approvers", a.Threshold, n)
		}
	}
	var beacons []*beacon.Client
	for _, u := range a.BeaconNodes {
		b, err := beacon.New(u, beacon.WithTimeout(30*time.Second))
		if err != nil {
			return failover.MigrationOptions{}, fmt.Errorf("approval.beaconNodes: %w", err)
		}
		beacons = append(beacons, b)
	}
	var comets []*cometbft.Client
	for _, u := range a.CometBFTNodes {
		c, err := cometbft.New(u)
		if err != nil {
			return failover.MigrationOptions{}, fmt.Errorf("approval.cometbftNodes: %w", err)
		}
		comets = append(comets, c)
	}
	roots := map[string]string{"mainnet": mainnetRoot}
	workloads := map[string]fence.Workload{}
	for _, v := range cfg.Fleet {
		// Roots are Ethereum's: Berachain is checked by chain ID
		// (failover.cometSilent), and its network names ("mainnet") must
		// not unpin Ethereum's.
		if v.Chain == config.ChainEthereum && v.GenesisValidatorsRoot != "" {
			roots[v.Network] = strings.ToLower(v.GenesisValidatorsRoot)
		}
		if v.Home.Workload != "" {
			w, err := fence.ParseWorkload(v.Home.Workload)
			if err != nil {
				return failover.MigrationOptions{}, fmt.Errorf("fleet %s home.workload: %w", v.Name, err)
			}
			workloads[v.Name] = w
		}
	}
	logPath := a.AuditLog
	if logPath == "" {
		logPath = filepath.Join(cfg.DataDir, "audit.log")
	}
	al, err := audit.Open(logPath)
	if err != nil {
		return failover.MigrationOptions{}, err
	}
	o := failover.MigrationOptions{
		Signers: signers, Threshold: a.Threshold, SilentEpochs: a.SilentEpochs, Beacons: beacons,
		SilentBlocks: a.SilentBlocks, CometNodes: comets,
		GenesisRoots: roots, Keys: agents, Grants: auth, Audit: al, ImportTimeout: a.ImportTimeout,
		CertSHA256: standbyCertSHA256(auth),
	}
	if kubeRC != nil && len(workloads) > 0 {
		f, err := fence.New(kubeRC, workloads)
		if err != nil {
			return failover.MigrationOptions{}, err
		}
		o.Home = f
	}
	return o, nil
}

// standbyCertSHA256 is the hash of the certificate a standby's agent
// presents: the bootstrap's credentials are deterministic, so failoverd
// computes it again rather than trusting what the network shows.
func standbyCertSHA256(auth *pki.Authority) func(failover.Incident) (string, error) {
	return func(inc failover.Incident) (string, error) {
		certPEM, _, err := auth.StandbyCredentials(cloud.NameFor(inc.ID), inc.CreatedAt.Truncate(time.Second))
		if err != nil {
			return "", err
		}
		block, _ := pem.Decode(certPEM)
		if block == nil {
			return "", errors.New("standby certificate is not PEM")
		}
		sum := sha256.Sum256(block.Bytes)
		return hex.EncodeToString(sum[:]), nil
	}
}

// The standby agent client is what checks Berachain silence.
var _ failover.CometBFTChainer = (*agent.Client)(nil)
