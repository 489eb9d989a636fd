package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/user"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/httpapi"
)

const defaultServer = "http://127.0.0.1:9097"

// clientFlags are the flags of every command that talks to the daemon.
type clientFlags struct {
	server    string
	tokenFile string
	timeout   time.Duration
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.server, "server", "", "failoverd API address (env FAILOVERD_SERVER; default "+defaultServer+")")
	cmd.Flags().StringVar(&f.tokenFile, "api-token-file", "", "file holding the API token (default: env FAILOVERD_API_TOKEN)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "how long to wait for the daemon")
}

// serverAddr is --server, else FAILOVERD_SERVER, else the default.
func (f *clientFlags) serverAddr(e *env) string {
	if f.server != "" {
		return f.server
	}
	if s := e.getenv("FAILOVERD_SERVER"); s != "" {
		return s
	}
	return defaultServer
}

func (f *clientFlags) client(e *env) (*httpapi.Client, error) {
	server := f.serverAddr(e)
	token := e.getenv("FAILOVERD_API_TOKEN")
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read API token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	return httpapi.NewClient(server, token, nil)
}

// output formats.
const (
	outTable = "table"
	outText  = "text"
	outJSON  = "json"
	outYAML  = "yaml"
)

func checkOutput(o string, allowed ...string) error {
	for _, a := range allowed {
		if o == a {
			return nil
		}
	}
	return &usageError{fmt.Errorf("-o %q: must be one of %s", o, strings.Join(allowed, ", "))}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func writeYAML(w io.Writer, v any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func newIncidentsCmd(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "incidents",
		Aliases: []string{"incident", "inc"},
		Short:   "List and inspect incidents",
		Long:    "List and inspect incidents. These commands ask the running daemon (see --server).",
		RunE:    groupRun,
	}
	cmd.AddCommand(newIncidentsListCmd(e), newIncidentsShowCmd(e))
	return cmd
}

func newIncidentsListCmd(e *env) *cobra.Command {
	var cf clientFlags
	var out, validator, state string
	var open bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List incidents, oldest first",
		Example: `  failoverd incidents list
  failoverd incidents list --open -o json
  failoverd incidents list --validator eth-hoodi-1 --state ready`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out, outTable, outJSON, outYAML); err != nil {
				return err
			}
			c, err := cf.client(e)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), cf.timeout)
			defer cancel()
			incs, err := c.ListIncidents(ctx, httpapi.ListQuery{Validator: validator, State: state, OpenOnly: open})
			if err != nil {
				return err
			}
			switch out {
			case outJSON:
				return writeJSON(e.stdout, httpapi.IncidentList{Incidents: incs})
			case outYAML:
				return writeYAML(e.stdout, httpapi.IncidentList{Incidents: incs})
			}
			return incidentTable(e.stdout, incs, time.Now())
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVarP(&out, "output", "o", outTable, "output format: table, json or yaml")
	cmd.Flags().StringVar(&validator, "validator", "", "only this validator's incidents")
	cmd.Flags().StringVar(&state, "state", "", "only incidents in this state (confirming, provisioning, syncing, ready, recovering, closed, failed)")
	cmd.Flags().BoolVar(&open, "open", false, "only open incidents (not closed)")
	return cmd
}

func incidentTable(w io.Writer, incs []failover.Incident, t time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tVALIDATOR\tSITE\tSTATE\tSTANDBY\tCOST\tAGE\tREASON")
	for _, inc := range incs {
		standby, cost := "-", "-"
		if inc.Standby != nil {
			standby = fmt.Sprintf("%s/%s (%s)", inc.Standby.Provider, inc.Standby.Name, inc.Standby.State)
			cost = fmt.Sprintf("$%.2f", inc.Standby.CostUSD)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", inc.ID, inc.Validator, inc.Site, inc.State, standby,
			cost, age(t.Sub(inc.CreatedAt)), inc.Reason)
	}
	if len(incs) == 0 {
		fmt.Fprintln(tw, "(no incidents)")
	}
	return tw.Flush()
}

func age(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func newIncidentsShowCmd(e *env) *cobra.Command {
	var cf clientFlags
	var out string
	cmd := &cobra.Command{
		Use:     "show ID",
		Short:   "Show one incident with its history",
		Example: "  failoverd incidents show eth-hoodi-1-1\n  failoverd incidents show eth-hoodi-1-1 -o json",
		Args:    exactArgs(1, "one incident ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, outText, outJSON, outYAML); err != nil {
				return err
			}
			c, err := cf.client(e)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), cf.timeout)
			defer cancel()
			inc, err := c.GetIncident(ctx, args[0])
			if err != nil {
				return err
			}
			switch out {
			case outJSON:
				return writeJSON(e.stdout, inc)
			case outYAML:
				return writeYAML(e.stdout, inc)
			}
			return incidentText(e.stdout, inc)
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVarP(&out, "output", "o", outText, "output format: text, json or yaml")
	return cmd
}

func incidentText(w io.Writer, inc failover.Incident) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Incident:\t%s\n", inc.ID)
	fmt.Fprintf(tw, "Validator:\t%s (%s/%s) at site %s\n", inc.Validator, inc.Chain, inc.Network, inc.Site)
	fmt.Fprintf(tw, "State:\t%s\n", inc.State)
	fmt.Fprintf(tw, "Reason:\t%s\n", inc.Reason)
	fmt.Fprintf(tw, "Firing since:\t%s\n", inc.FiringSince.Format(time.RFC3339))
	fmt.Fprintf(tw, "Created:\t%s\n", inc.CreatedAt.Format(time.RFC3339))
	fmt.Fprintf(tw, "Updated:\t%s\n", inc.UpdatedAt.Format(time.RFC3339))
	if inc.TornDownBy != "" {
		fmt.Fprintf(tw, "Torn down by:\t%s\n", inc.TornDownBy)
	}
	if s := inc.Standby; s != nil {
		fmt.Fprintf(tw, "Standby:\t%s/%s in %s (%s)\n", s.Provider, s.Name, s.Zone, s.State)
		fmt.Fprintf(tw, "Cost so far:\t%.2f standby-hours, about $%.2f (at $%.3f/h, machine and disk)\n", s.Hours, s.CostUSD, s.HourlyUSD)
		if s.Sync != nil {
			fmt.Fprintf(tw, "Sync:\texecution=%v consensus=%v optimistic=%v peers=%d distance=%d (checked %s)\n",
				s.Sync.ExecutionSynced, s.Sync.ConsensusSynced, s.Sync.Optimistic, s.Sync.Peers, s.Sync.SyncDistance,
				s.Sync.CheckedAt.Format(time.RFC3339))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "History:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, h := range inc.History {
		move := ""
		if h.To != "" {
			move = fmt.Sprintf("%s -> %s", orDash(string(h.From)), h.To)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", h.At.Format(time.RFC3339), move, h.Cause)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func newTeardownCmd(e *env) *cobra.Command {
	var cf clientFlags
	var by, out string
	cmd := &cobra.Command{
		Use:   "teardown ID",
		Short: "End an incident now and delete its standby",
		Long: `End an incident now: its standby is deleted without waiting for the
keep-warm time, and alerts that keep firing do not re-open it (a new outage,
with a new alert start, opens a new incident). Your name is recorded in the
incident history.`,
		Example: "  failoverd teardown eth-hoodi-1-1\n  failoverd teardown eth-hoodi-1-1 --by alice",
		Args:    exactArgs(1, "one incident ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(out, outText, outJSON); err != nil {
				return err
			}
			c, err := cf.client(e)
			if err != nil {
				return err
			}
			if by == "" {
				by = whoAmI(e)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), cf.timeout)
			defer cancel()
			inc, err := c.Teardown(ctx, args[0], by)
			if err != nil {
				return err
			}
			if out == outJSON {
				return writeJSON(e.stdout, inc)
			}
			fmt.Fprintf(e.stdout, "incident %s: %s (%s)\n", inc.ID, inc.State, inc.Reason)
			return nil
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVar(&by, "by", "", "your name for the history (default: user@host)")
	cmd.Flags().StringVarP(&out, "output", "o", outText, "output format: text or json")
	return cmd
}

func whoAmI(e *env) string {
	name := e.getenv("USER")
	if u, err := user.Current(); name == "" && err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	if name == "" {
		name = "unknown"
	}
	if host != "" {
		name += "@" + host
	}
	return name
}

func newSitesCmd(e *env) *cobra.Command {
	var cf clientFlags
	var out string
	cmd := &cobra.Command{
		Use:   "sites",
		Short: "List sites and when their Watchdog heartbeat was last seen",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out, outTable, outJSON); err != nil {
				return err
			}
			c, err := cf.client(e)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), cf.timeout)
			defer cancel()
			sites, err := c.ListSites(ctx)
			if err != nil {
				return err
			}
			if out == outJSON {
				return writeJSON(e.stdout, httpapi.SiteList{Sites: sites})
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "SITE\tLAST HEARTBEAT\tAGO\tHEARTBEATS")
			for _, s := range sites {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", s.Name, s.LastHeartbeat.Format(time.RFC3339), age(time.Since(s.LastHeartbeat)), s.HeartbeatsSeen)
			}
			return tw.Flush()
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVarP(&out, "output", "o", outTable, "output format: table or json")
	return cmd
}

func newSnapshotsCmd(e *env) *cobra.Command {
	var cf clientFlags
	var out, validator string
	cmd := &cobra.Command{
		Use:   "snapshots",
		Short: "List the snapshot keeper's runs (warm chain-data snapshots)",
		Long: `List the snapshot keeper's runs: for each validator with fleet[].snapshots.every set,
failoverd regularly boots a keyless node, syncs it, stops its clients cleanly,
snapshots its data disk, deletes it and prunes old snapshots, so that a
standby starts from a recent snapshot instead of syncing from scratch.`,
		Example: "  failoverd snapshots\n  failoverd snapshots --validator eth-mainnet-1 -o json",
		Args:    exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out, outTable, outJSON, outYAML); err != nil {
				return err
			}
			c, err := cf.client(e)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), cf.timeout)
			defer cancel()
			runs, err := c.ListSnapshotRuns(ctx, validator)
			if err != nil {
				return err
			}
			switch out {
			case outJSON:
				return writeJSON(e.stdout, httpapi.SnapshotRunList{Runs: runs})
			case outYAML:
				return writeYAML(e.stdout, httpapi.SnapshotRunList{Runs: runs})
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "RUN\tVALIDATOR\tPROVIDER\tSTATE\tSNAPSHOT\tCOST\tAGE\tREASON")
			for _, r := range runs {
				cost := "-"
				if r.Standby != nil {
					cost = fmt.Sprintf("$%.2f", r.Standby.CostUSD)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Validator, r.Provider, r.State, r.Snapshot,
					cost, age(time.Since(r.CreatedAt)), r.Reason)
			}
			if len(runs) == 0 {
				fmt.Fprintln(tw, "(no runs: set fleet[].snapshots.every to keep warm snapshots)")
			}
			return tw.Flush()
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVarP(&out, "output", "o", outTable, "output format: table, json or yaml")
	cmd.Flags().StringVar(&validator, "validator", "", "only this validator's runs")
	return cmd
}

func newVersionCmd(e *env) *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			if err := checkOutput(out, outText, outJSON); err != nil {
				return err
			}
			v := map[string]string{"version": version, "commit": commit, "go": runtime.Version()}
			if out == outJSON {
				return writeJSON(e.stdout, v)
			}
			fmt.Fprintf(e.stdout, "failoverd %s (commit %s, %s)\n", version, commit, runtime.Version())
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", outText, "output format: text or json")
	return cmd
}
