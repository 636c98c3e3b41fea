// Command reclaim shows a reclaim heap at work and measures it.
//
// Usage:
//
//	reclaim demo  [-duration D] [-objects N] [-limit BYTES] [-v]
//	reclaim bench [-quick] [-count N] [-json] [-out DIR] [-peers=false] [-peers-dir DIR]
//	reclaim soak  [-duration D] [-mutators N] [-seed S] [-limit BYTES] [-v]
//	reclaim help
//
// demo builds a heap holding an in-memory document index, churns it
// (documents added and deleted, queries that build short-lived result lists,
// blobs whose finalizers release external memory, cursors closed by
// cleanups, weak postings and a weak result cache), and prints what the
// collector did; then it closes the heap and shows that everything was
// released.
//
// bench runs the workload suite (internal/workload) side by side on
// reclaim, on the Go runtime in the same process, and on the peer programs
// under bench/peers (the Boehm GC, the JVM, V8) where their toolchains are
// present, and prints a table; -out writes a Markdown report, an HTML page
// and SVG charts.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `reclaim: a garbage-collected object heap for Go.

Usage:

  reclaim demo  [flags]   build a heap, churn a document index, print what the collector did
  reclaim bench [flags]   measure reclaim against the Go runtime and its peers
  reclaim soak  [flags]   run mutators, finalizers and cleanups under faults and check every invariant
  reclaim help            show this text

Run 'reclaim demo -h' or 'reclaim bench -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the command line args (without the program name) and returns
// the exit status: 0 on success, 1 on failure, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "soak":
		return runSoak(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "reclaim: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
