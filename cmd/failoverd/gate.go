package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/httpapi"
)

// gateExit is the gate's "no": the caller must not start a signer.
type gateExit struct{ msg string }

func (e *gateExit) Error() string { return e.msg }

func newGateCmd(e *env) *cobra.Command {
	var (
		cf        clientFlags
		validator string
		as        string
		standby   string
		override  string
		// The gate token only reads owners: what belongs next to a
		// validator client, instead of the API token.
		gateTokenFile string
	)
	cmd := &cobra.Command{
		Use:   "gate",
		Short: "Exit 0 only if the caller owns the validator's signing right (run before starting a validator client)",
		Long: `Ask failoverd who owns a validator's signing right and exit 0 only when it is
the caller: --as home for the home validator client (an initContainer in front
of it), --as standby --standby NAME to ask what failoverd says of a standby. (A
standby's own signer units do not call this: they have no API credentials and
read the ownership generation the agent writes, validator-start, instead.)
Anything else exits 1: another owner, an unknown validator, or no answer at
all. The gate fails closed: an unreachable failoverd keeps the
signer stopped.

A person who knows the home signer is the only one (failoverd is down and
no migration ever happened) may open the gate without an answer with
--override-unreachable "reason" (or FAILOVERD_GATE_OVERRIDE). It only applies
when failoverd cannot be reached, never against its answer, and it is logged
loudly. Remove it again as soon as failoverd is back.`,
		Example: `  # initContainer in front of the home lighthouse validator client
  failoverd gate --validator eth-mainnet-1 --as home --server http://failoverd.failoverd:9097
  # does failoverd give the signing right to this standby?
  failoverd gate --validator eth-mainnet-1 --as standby --standby fo-eth-mainnet-1-1`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if validator == "" {
				return &usageError{fmt.Errorf("--validator is required")}
			}
			want := failover.OwnerHome
			switch as {
			case "home":
			case "standby":
				if standby == "" {
					return &usageError{fmt.Errorf("--as standby needs --standby NAME (this standby's name)")}
				}
				want = standby
			default:
				return &usageError{fmt.Errorf("--as must be home or standby (got %q)", as)}
			}
			if override == "" {
				override = e.getenv("FAILOVERD_GATE_OVERRIDE")
			}
			c, err := gateClient(e, &cf, gateTokenFile)
			if err != nil {
				return err
			}
			ctx, cancel := withTimeout(cmd, cf.timeout)
			defer cancel()
			o, err := c.Owner(ctx, validator)
			if err != nil {
				if override != "" && !isAnswer(err) {
					fmt.Fprintf(e.stderr, "failoverd gate: OVERRIDDEN (%s): failoverd did not answer (%v); opening the gate for %s as %s on a person's word\n",
						override, err, validator, as)
					return nil
				}
				return &gateExit{fmt.Sprintf("gate closed: cannot learn who owns %s (%v); not starting a signer", validator, err)}
			}
			if o.Current() != want {
				return &gateExit{fmt.Sprintf("gate closed: %s is owned by %s (generation %d, incident %s), not %s",
					validator, o.Current(), o.Generation, orDash(o.Incident), want)}
			}
			fmt.Fprintf(e.stdout, "gate open: %s owns %s (generation %d)\n", want, validator, o.Generation)
			return nil
		},
	}
	cf.register(cmd)
	fl := cmd.Flags()
	fl.StringVar(&validator, "validator", "", "the validator (fleet name)")
	fl.StringVar(&as, "as", "home", "who asks: home or standby")
	fl.StringVar(&standby, "standby", "", "with --as standby: this standby's name")
	fl.StringVar(&gateTokenFile, "gate-token-file", "", "file holding the read-only gate token (default: env FAILOVERD_GATE_TOKEN, else the API token)")
	fl.StringVar(&override, "override-unreachable", "", "open the gate when failoverd cannot be reached, giving the reason (logged; never overrides an answer)")
	return cmd
}

// gateClient uses the read-only gate token when there is one (flag, then
// FAILOVERD_GATE_TOKEN), else the API token as every other command does.
func gateClient(e *env, cf *clientFlags, tokenFile string) (*httpapi.Client, error) {
	token := strings.TrimSpace(e.getenv("FAILOVERD_GATE_TOKEN"))
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, fmt.Errorf("read gate token: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return cf.client(e)
	}
	return httpapi.NewClient(cf.serverAddr(e), token, nil)
}

// isAnswer reports whether err is failoverd's own answer (as opposed to no
// answer): an override never applies to an answer.
func withTimeout(cmd *cobra.Command, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(cmd.Context(), d)
}

func isAnswer(err error) bool {
	var ae *httpapi.APIError
	return errors.As(err, &ae)
}

func newOwnersCmd(e *env) *cobra.Command {
	var (
		cf  clientFlags
		out string
	)
	cmd := &cobra.Command{
		Use:   "owners",
		Short: "List who owns each validator's signing right (home or a standby)",
		Example: `  failoverd owners
  failoverd owners -o json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(out, outTable, outJSON, outYAML); err != nil {
				return err
			}
			c, err := cf.client(e)
			if err != nil {
				return err
			}
			ctx, cancel := withTimeout(cmd, cf.timeout)
			defer cancel()
			list, err := c.Owners(ctx)
			if err != nil {
				return err
			}
			switch out {
			case outJSON:
				return writeJSON(e.stdout, list)
			case outYAML:
				return writeYAML(e.stdout, list)
			}
			return ownersTable(e.stdout, list)
		},
	}
	cf.register(cmd)
	cmd.Flags().StringVarP(&out, "output", "o", outTable, "output format: table, json or yaml")
	return cmd
}

func ownersTable(w io.Writer, list []failover.ValidatorOwner) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VALIDATOR\tOWNER\tGENERATION\tINCIDENT\tCHANGED BY")
	for _, o := range list {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", o.Validator, o.Current(), o.Generation, orDash(o.Incident), orDash(strings.Join(o.ChangedBy, ",")))
	}
	return tw.Flush()
}
