//go:build invariants

package heap

import (
	"strings"
	"testing"

	"github.com/reclaimgc/reclaim/internal/handle"
)

// TestRemarkVerifierDisagrees feeds the re-mark verifier a root the mark
// never saw: it must report the object as reachable but unmarked.
func TestRemarkVerifierDisagrees(t *testing.T) {
	h, m, kept := verifyHeap(t, 100)
	m.Collect() // sweep done: no mark bits set
	h.verifyMark(nil, nil)
	v, ok := func() (v any, ok bool) {
		defer func() { v = recover(); ok = v != nil }()
		h.verifyMark([]handle.Handle{kept[0]}, nil)
		return nil, false
	}()
	if !ok || !strings.Contains(v.(string), "marked false, reachable true") {
		t.Fatalf("verifyMark with an unmarked root: panicked %v with %v", ok, v)
	}
}
