// Command failoverd is the self-healing validator fleet controller: the
// daemon (serve) and the CLI that talks to it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
)

// Set at build time by the Makefile (-ldflags -X).
var (
	version = "dev"
	commit  = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ue *usageError
		fmt.Fprintln(os.Stderr, "failoverd:", err)
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a mistake in how the command was called (exit code 2).
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// run is the whole program, with its environment passed in so tests can run
// it in-process.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	root := newRoot(getenv, stdout, stderr)
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

// env is what every subcommand gets from run.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

func newRoot(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	e := &env{getenv: getenv, stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "failoverd",
		Short: "Self-healing validator fleet controller: brings a validator back fast, never gets it slashed",
		Long: `failoverd receives Alertmanager webhooks about your validators, confirms an
outage, and provisions a syncing standby node in a cloud (no keys on it).
Keys move only after a person approves.

Start the daemon with 'failoverd serve --config FILE'. The other commands are
clients of a running daemon's API (--server, FAILOVERD_SERVER; token in
FAILOVERD_API_TOKEN or --api-token-file).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		// Runnable, so that an unknown command is a usage error (exit 2)
		// rather than cobra's plain error.
		Args: cobra.ArbitraryArgs,
		RunE: groupRun,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.AddCommand(
		newServeCmd(e),
		newAgentCmd(e),
		newBootstrapCmd(e),
		newConfigCmd(e),
		newIncidentsCmd(e),
		newTeardownCmd(e),
		newSitesCmd(e),
		newSnapshotsCmd(e),
		newApproveMigrationCmd(e),
		newFailbackCmd(e),
		newGateCmd(e),
		newOwnersCmd(e),
		newVersionCmd(e),
	)
	return root
}

// groupRun is the RunE of a command that only groups others: without
// arguments it prints help; with one, that is an unknown command, a usage
// error, not help and success (a typo in a script must not pass).
func groupRun(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, which it applies only itself
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, ", "))
	}
	return &usageError{fmt.Errorf("%s; see '%s --help'", msg, cmd.CommandPath())}
}

// exactArgs is cobra.ExactArgs with an error that says what was expected.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return &usageError{fmt.Errorf("%s expects %s (see '%s --help')", cmd.CommandPath(), what, cmd.CommandPath())}
		}
		return nil
	}
}
