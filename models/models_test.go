// Package models holds the Promela models of reclaim's concurrency
// protocols (fing.pml: the finalizer goroutine's wake protocol;
// cleanup.pml: the cleanup queue's workers; ephemeron.pml: an ephemeron
// entry's hand-off from the worker that registers it to the one that
// marks its key; drain.pml: Drain's check that nothing is left to run;
// closehere.pml: Close's wait for finalizers run at safepoints;
// markpool.pml: the parallel mark's work pool, its workers' sleep on its
// cond and the mark's termination) and deliberately broken variants of
// them in broken/. TestModels verifies them with spin the way run.sh
// does; fing.md, cleanup.md, ephemeron.md, drain.md, closehere.md and
// markpool.md describe the models.
package models

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// searchDepth is pan's -m bound; a search that reaches it fails.
const searchDepth = "-m1000000"

var (
	errorsRE = regexp.MustCompile(`errors: (\d+)`)
	statesRE = regexp.MustCompile(`(?m)^\s*(\d+) states, stored`)
	// pan reports each error as "pan:N: <what> (at depth D)"; a truncated
	// or aborted search says so in one of the other forms. The header
	// ("invalid end states +", "assertion violations +") must not match.
	violationRE = regexp.MustCompile(`(?m)^pan:\d+: .*$|assertion violated.*|.*depth too small.*|.*out of memory.*|.*MEMLIM.*`)
)

// TestModels verifies every models/*.pml with spin (pan built plain and
// with -DSAFETY, invalid end states checked) and requires "errors: 0"; it
// requires every models/broken/*.pml to fail with both builds. Without
// spin or gcc it skips, unless RECLAIM_REQUIRE_SPIN=1. It runs in -short
// mode too: each model takes seconds.
func TestModels(t *testing.T) {
	for _, tool := range []string{"spin", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("RECLAIM_REQUIRE_SPIN") == "1" {
				t.Fatalf("%s is not installed and RECLAIM_REQUIRE_SPIN=1 (apt-get install spin gcc)", tool)
			}
			t.Skipf("%s is not installed; models not verified (apt-get install spin gcc)", tool)
		}
	}

	good, err := filepath.Glob("*.pml")
	if err != nil {
		t.Fatal(err)
	}
	broken, err := filepath.Glob(filepath.Join("broken", "*.pml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(good) == 0 {
		t.Fatal("no models found")
	}
	if len(broken) == 0 {
		t.Fatal("no broken variants found: nothing shows the models can fail")
	}

	for _, m := range good {
		t.Run(m, func(t *testing.T) {
			t.Parallel()
			verify(t, m, false)
		})
	}
	for _, m := range broken {
		t.Run(m, func(t *testing.T) {
			t.Parallel()
			verify(t, m, true)
		})
	}
}

// verify builds the verifiers for model in a temporary directory, runs
// both, and checks the outcome: errors: 0 and no violation, or, when
// mustFail, errors: N > 0 from both.
func verify(t *testing.T, model string, mustFail bool) {
	abs, err := filepath.Abs(model)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-5*time.Second))
		defer cancel()
	}

	// Broken variants fail within a few thousand states; compiling pan.c
	// without optimization saves most of their time.
	opt := "-O2"
	if mustFail {
		opt = "-O0"
	}
	run(t, ctx, dir, "spin", "-a", abs)
	run(t, ctx, dir, "gcc", opt, "-o", "pan", "pan.c")
	run(t, ctx, dir, "gcc", opt, "-DSAFETY", "-o", "pan_safety", "pan.c")

	for _, bin := range []string{"pan", "pan_safety"} {
		// pan's exit status does not tell a found error from a clean
		// run; its report does.
		cmd := exec.CommandContext(ctx, "./"+bin, searchDepth)
		cmd.Dir = dir
		out, runErr := cmd.CombinedOutput()
		report := string(out)
		m := errorsRE.FindAllStringSubmatch(report, -1)
		if m == nil {
			t.Fatalf("./%s %s gave no result (%v):\n%s", bin, searchDepth, runErr, report)
		}
		n, err := strconv.Atoi(m[len(m)-1][1])
		if err != nil {
			t.Fatal(err)
		}
		violation := strings.TrimSpace(violationRE.FindString(report))
		switch {
		case mustFail && n == 0:
			t.Errorf("./%s: broken variant verified (errors: 0); the model no longer catches this bug:\n%s", bin, report)
		case mustFail:
			t.Logf("./%s: fails as it must: errors: %d: %s", bin, n, violation)
		case n != 0 || violation != "":
			t.Errorf("./%s: errors: %d: %s\n%s", bin, n, violation, report)
		default:
			states := "?"
			if s := statesRE.FindStringSubmatch(report); s != nil {
				states = s[1]
			}
			t.Logf("./%s: %s states, errors: 0", bin, states)
		}
	}
}

// run runs one build step in dir and fails the test if it fails.
func run(t *testing.T, ctx context.Context, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
