package heap

import "testing"

// allocGarbage allocates n vnodes and drops them.
func allocGarbage(t *testing.T, m *Mutator, n int) {
	t.Helper()
	for range n {
		if _, err := m.Alloc(vnodeType); err != nil {
			t.Fatal(err)
		}
	}
}

// TestReusedSpansStay checks that spans which empty out in every cycle but
// are allocated from again in between are kept, not released and made anew
// (binary-trees' pattern: every cycle's trees die by the next).
func TestReusedSpansStay(t *testing.T) {
	h := New(Config{MarkWorkers: 1, GCPercent: -1})
	m := NewMutator()
	h.Attach(m)
	defer func() {
		m.Detach()
		h.Close()
	}()
	n := 4 * int(slotsFor(vnodeType.Size))
	allocGarbage(t, m, n)
	m.Collect()
	first := h.Stats()
	for range 5 {
		allocGarbage(t, m, n)
		m.Collect()
	}
	st := h.Stats()
	if st.SpansReleased != 0 || st.SpansAllocated != first.SpansAllocated {
		t.Errorf("spans allocated %d -> %d, released %d: spans reused every cycle were released and made anew",
			first.SpansAllocated, st.SpansAllocated, st.SpansReleased)
	}
}

// TestIdleSpansReleased checks that a span that stays empty for a whole
// cycle is released.
func TestIdleSpansReleased(t *testing.T) {
	h := New(Config{MarkWorkers: 1, GCPercent: -1})
	m := NewMutator()
	h.Attach(m)
	defer func() {
		m.Detach()
		h.Close()
	}()
	allocGarbage(t, m, 4*int(slotsFor(vnodeType.Size)))
	m.Collect() // the spans empty out: kept for a cycle
	if st := h.Stats(); st.SpanBytes == 0 {
		t.Fatalf("span bytes 0 right after the first collection; want the emptied spans kept for a cycle")
	}
	m.Collect() // still empty: released
	if st := h.Stats(); st.SpanBytes != 0 || st.SpansReleased != st.SpansAllocated {
		t.Errorf("after two collections with nothing live: span bytes %d, spans allocated %d, released %d",
			st.SpanBytes, st.SpansAllocated, st.SpansReleased)
	}
}
