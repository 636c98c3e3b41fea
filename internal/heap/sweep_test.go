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

// TestNextFree checks nextFree and its allocCache against a plain scan of
// the allocation bits, for spans whose slot count is and is not a multiple
// of 64.
func TestNextFree(t *testing.T) {
	for _, nslots := range []uint32{1, 63, 64, 100, 1024} {
		for seed := uint64(1); seed < 40; seed++ {
			s := &span{nslots: nslots, allocBits: make([]uint64, (nslots+63)/64)}
			x := seed * 0x9e3779b97f4a7c15
			for i := range nslots {
				x ^= x << 13
				x ^= x >> 7
				x ^= x << 17
				if x%3 == 0 {
					s.allocBits[i/64] |= 1 << (i % 64)
				} else {
					s.nfree++
				}
			}
			var want []uint32
			for i := range nslots {
				if !s.isAllocated(i) {
					want = append(want, i)
				}
			}
			s.resetAlloc()
			var got []uint32
			for {
				i, ok := s.nextFree()
				if !ok {
					break
				}
				got = append(got, i)
			}
			if len(got) != len(want) || s.nfree != 0 {
				t.Fatalf("nslots %d seed %d: got %d slots %v, want %v (nfree left %d)", nslots, seed, len(got), got, want, s.nfree)
			}
			for k := range got {
				if got[k] != want[k] {
					t.Fatalf("nslots %d seed %d: slot %d is %d, want %d", nslots, seed, k, got[k], want[k])
				}
			}
			for i := range nslots {
				if !s.isAllocated(i) {
					t.Fatalf("nslots %d seed %d: slot %d not allocated after the span filled", nslots, seed, i)
				}
			}
		}
	}
}
