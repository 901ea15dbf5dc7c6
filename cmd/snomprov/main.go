// Command snomprov provisions Snom desk phones on a LAN: DHCP (options
// 66/67), SIP multicast PnP and the HTTP settings and firmware server, in
// one process. This file only parses the command line and wires packages
// together; the behaviour lives in app/ and the protocol packages.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/snomprov/snomprov/app"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func init() { app.Version = version }

// Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.
const (
	exitOK      = 0
	exitRuntime = 1
	exitUsage   = 2
)

// usageError is returned for bad flags or arguments (exit code 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// configError wraps configuration problems (exit code 2).
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

type command struct {
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{}

func register(name, summary string, run func(args []string, stdout, stderr io.Writer) error) {
	commands[name] = command{summary: summary, run: run}
}

func main() {
	os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
}

func runMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" || args[0] == "-version" {
		args[0] = "version"
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "snomprov: unknown command %q\n\n", args[0])
		usage(stderr)
		return exitUsage
	}
	err := cmd.run(args[1:], stdout, stderr)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "snomprov %s: %v\n", args[0], err)
		return exitUsage
	case errors.As(err, new(configError)):
		fmt.Fprintln(stderr, strings.TrimRight(err.Error(), "\n"))
		return exitUsage
	default:
		fmt.Fprintf(stderr, "snomprov %s: %v\n", args[0], err)
		return exitRuntime
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "snomprov provisions Snom desk phones: DHCP options 66/67, SIP multicast PnP and the HTTP settings server.")
	fmt.Fprintln(w, "\nUsage: snomprov COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'snomprov COMMAND --help' for a command's flags. Exit codes: 0 ok, 1 runtime failure, 2 usage or config error.")
}

// newFlags makes a FlagSet whose --help prints the command's usage line.
func newFlags(name, args string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: snomprov %s %s\n\n%s\n\nFlags:\n", name, args, commands[name].summary)
		fs.PrintDefaults()
	}
	return fs
}

// parseInterspersed parses flags that may come after positional arguments
// (`render 000413A11FA7 --model snomD785`), which flag.Parse alone does not.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return positional, nil
		}
		if args[0] == "--" {
			return append(positional, args[1:]...), nil
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
}

// parseNoArgs parses flags for a command that takes no positional arguments.
func parseNoArgs(fs *flag.FlagSet, args []string) error {
	rest, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError{"unexpected arguments: " + strings.Join(rest, " ")}
	}
	return nil
}

func init() {
	register("version", "print the version", func(args []string, stdout, stderr io.Writer) error {
		if err := parseNoArgs(newFlags("version", "", stderr), args); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "snomprov %s\n", version)
		return nil
	})
}
