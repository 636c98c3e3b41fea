package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/reclaimgc/reclaim/internal/soak"
)

// runSoak runs the soak test: several mutators churning graphs while
// finalizers and cleanups panic, block, allocate, resurrect and attach
// mutators of their own, with the memory limit hit and recovered from. It
// prints the counts and exits 1 if an invariant was violated.
func runSoak(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	duration := fs.Duration("duration", 10*time.Second, "how long to run")
	mutators := fs.Int("mutators", 4, "mutator goroutines")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "random seed (printed, to repeat a run)")
	limit := fs.Int64("limit", 32<<20, "the heap's memory limit in bytes")
	verbose := fs.Bool("v", false, "log the heap's diagnostics")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	// soak.Run replaces a zero or negative value by its default; refuse
	// them rather than print one figure and run another.
	if fs.NArg() > 0 || *duration <= 0 || *mutators <= 0 || *limit <= 0 {
		fmt.Fprintf(stderr, "reclaim soak: bad arguments\n")
		fs.Usage()
		return 2
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	fmt.Fprintf(stdout, "soak: %v, %d mutators, seed %d, limit %d bytes\n", *duration, *mutators, *seed, *limit)
	rep, err := soak.Run(ctx, soak.Config{Duration: *duration, Mutators: *mutators, Seed: *seed, MemoryLimit: *limit, Logger: logger})
	fmt.Fprint(stdout, rep.String())
	if err != nil {
		fmt.Fprintf(stderr, "reclaim soak: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "soak: every invariant held")
	return 0
}
