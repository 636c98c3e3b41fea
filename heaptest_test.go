package reclaim_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/reclaimgc/reclaim"
)

// newTestHeap builds a heap for t. When t ends, a cleanup checks the heap:
// unless t closed it, it drains the heap (every queued finalizer and cleanup
// runs); then it runs the consistency check (Heap.Verify) and fails t on a
// problem; then it closes the heap unless t did, and checks it once more.
// Tests must detach their mutators (or leave them idle at a safepoint)
// before they end.
func newTestHeap(t testing.TB, opts reclaim.Options) *reclaim.Heap {
	t.Helper()
	h := reclaim.NewHeap(opts)
	t.Cleanup(func() { checkHeap(t, h) })
	return h
}

// checkHeap is newTestHeap's end-of-test check.
func checkHeap(t testing.TB, h *reclaim.Heap) {
	t.Helper()
	if !h.Closed() {
		// Bounded: with FinalizersAtSafepoints, queued finalizers run only
		// at some mutator's safepoint, and a test that left some queued
		// with its mutators detached would otherwise hang here instead of
		// failing.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		err := h.Drain(ctx)
		cancel()
		if err != nil {
			t.Errorf("heap: Drain at end of test: %v (with FinalizersAtSafepoints, queued finalizers wait for a mutator's safepoint: close the heap in the test)", err)
		}
		if err := h.Verify(); err != nil {
			t.Errorf("heap: consistency check at end of test:\n%v", err)
		}
		if err := h.Close(); err != nil {
			t.Errorf("heap: Close at end of test: %v", err)
		}
	}
	if err := h.Verify(); err != nil {
		t.Errorf("heap: consistency check after Close:\n%v", err)
	}
}

// panicValue runs f and returns what it panicked with, or nil and false.
func panicValue(f func()) (v any, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			v, panicked = r, true
		}
	}()
	f()
	return nil, false
}

// wantPanic runs f and fails t unless f panics with a message (a string, or
// an error's text) that starts with "reclaim:" and contains every one of
// words. It returns the message.
func wantPanic(t testing.TB, f func(), words ...string) string {
	t.Helper()
	v, ok := panicValue(f)
	if !ok {
		t.Errorf("no panic; want one mentioning %q", words)
		return ""
	}
	msg, ok := panicText(v)
	if !ok {
		t.Errorf("panic with %T %v; want a string or an error", v, v)
		return ""
	}
	if !strings.HasPrefix(msg, "reclaim:") {
		t.Errorf("panic %q does not start with \"reclaim:\"", msg)
	}
	for _, w := range words {
		if !strings.Contains(msg, w) {
			t.Errorf("panic %q does not mention %q", msg, w)
		}
	}
	return msg
}

// panicText returns the message of a panic value that is a string or an
// error.
func panicText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case error:
		return v.Error(), true
	}
	return "", false
}

// quietLogger discards the heap's diagnostics, for tests that provoke them.
func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
