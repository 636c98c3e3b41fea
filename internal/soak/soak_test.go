package soak

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"testing"
	"time"
)

var (
	soakFlag = flag.Duration("soak", 0, "run the soak test for this long (e.g. -soak=10m) instead of the short default, logging progress")
	seedFlag = flag.Uint64("soak.seed", 1, "the soak test's random seed")
)

// TestSoak runs the soak for about 2s (0.5s with -short), or for -soak.
// It fails on any violated invariant, and on a run that exercised too
// little to mean anything.
func TestSoak(t *testing.T) {
	d := 2 * time.Second
	if testing.Short() {
		d = 500 * time.Millisecond
	}
	var logger *slog.Logger
	if *soakFlag > 0 {
		d = *soakFlag
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	rep, err := Run(context.Background(), Config{Duration: d, Mutators: 3, Seed: *seedFlag, MemoryLimit: 16 << 20, Logger: logger})
	t.Logf("soak report:\n%v", rep)
	if err != nil {
		t.Fatal(err)
	}
	if rep.FinalizersRun == 0 || rep.CleanupsRun == 0 || rep.Freed == 0 || rep.StaleCaught == 0 {
		t.Errorf("the soak exercised too little: %+v", rep)
	}
}

// TestSoakCatchesDoubleRun checks that the bookkeeping the invariants rest
// on can fail: a registration run twice, or never, is reported.
func TestSoakCatchesDoubleRun(t *testing.T) {
	r := &run{}
	r.finIDs.Store(3)
	r.finRan.set(1)
	r.finRan.set(2)
	r.finCleared.set(2)
	if r.finRan.set(1) != true {
		t.Fatal("idSet.set does not report a second set")
	}
	r.cleanupIDs.Store(2)
	r.cleanupRan.set(1)
	r.stopped.set(1)
	r.maybeStopped.set(2)
	r.checkRegistrations()
	want := []string{
		"finalizer 2 ran although it was cleared",
		"finalizer 3 never ran",
		"cleanup 1 ran although it was stopped while its object was reachable",
		"1 finalizers and cleanups never ran in all",
	}
	if len(r.violations) != len(want) {
		t.Fatalf("violations %q, want %q", r.violations, want)
	}
	for i := range want {
		if r.violations[i] != want[i] {
			t.Errorf("violation %d: %q, want %q", i, r.violations[i], want[i])
		}
	}
}
