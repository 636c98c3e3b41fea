package reclaim_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// TestFastPathsInline compiles testdata/inline with -gcflags=-m and checks
// that Get's lookup (heap.Mutator.Deref) and New's fast path are inlined
// into the caller: a change that pushes either over the compiler's inlining
// budget costs every Get a call, which no functional test notices.
//
// Where a word is 32 bits, Deref's handle arithmetic (on a 64-bit handle)
// is over the budget, and Get makes one call there: the test is for
// 64-bit platforms.
func TestFastPathsInline(t *testing.T) {
	if strconv.IntSize < 64 {
		t.Skip("Get is inlined with its lookup on 64-bit platforms only")
	}
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goTool); err != nil {
		t.Fatalf("go command not found at %s: %v", goTool, err)
	}
	cmd := exec.Command(goTool, "build",
		"-gcflags=github.com/reclaimgc/reclaim=-m",
		"-gcflags=github.com/reclaimgc/reclaim/testdata/inline=-m",
		"-o", os.DevNull, "./testdata/inline")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	src, err := os.ReadFile("testdata/inline/inline.go")
	if err != nil {
		t.Fatal(err)
	}
	getLine := 0
	for i, l := range strings.Split(string(src), "\n") {
		if strings.HasSuffix(l, "// GET") {
			getLine = i + 1
		}
	}
	if getLine == 0 {
		t.Fatal("no line marked GET in testdata/inline/inline.go")
	}
	for _, c := range []struct{ where, callee string }{
		// Get, a generic method, inlines into the caller with Deref in it.
		{`testdata/inline/inline\.go:` + strconv.Itoa(getLine) + `:\d+`, `heap\.\(\*Mutator\)\.Deref`},
		// New makes one call, to alloc, into which AllocFast is inlined.
		{`\./ref\.go:\d+:\d+`, `heap\.\(\*Mutator\)\.AllocFast`},
	} {
		re := regexp.MustCompile(`(?m)^` + c.where + `: inlining call to ` + c.callee + `$`)
		if !re.Match(out) {
			t.Errorf("no line matches %q; the compiler said:\n%s", re, out)
		}
	}
}
