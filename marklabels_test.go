package reclaim_test

import (
	"bytes"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/reclaimgc/reclaim"
)

// obsTr is traced by its Trace method, which looks, once, at the labels of
// the mark worker goroutine that runs it (a goroutine under pprof.Do; the
// leader's own calls are not).
type obsTr struct{ next reclaim.Object }

var obsTrSeen struct {
	sync.Mutex
	on     atomic.Bool
	labels []string
}

func (o *obsTr) Trace(visit func(reclaim.Object)) {
	visit(o.next)
	if !obsTrSeen.on.Load() {
		return
	}
	buf := make([]byte, 64<<10)
	if !strings.Contains(string(buf[:runtime.Stack(buf, false)]), "runtime/pprof.Do") {
		return
	}
	obsTrSeen.Lock()
	defer obsTrSeen.Unlock()
	if obsTrSeen.labels == nil {
		var b bytes.Buffer
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		obsTrSeen.labels = []string{}
		for _, rec := range strings.Split(b.String(), "\n\n") {
			if strings.Contains(rec, "(*obsTr).Trace") && strings.Contains(rec, "runtime/pprof.Do") {
				l := ""
				for _, line := range strings.Split(rec, "\n") {
					if strings.HasPrefix(line, "# labels: ") {
						l = line
					}
				}
				obsTrSeen.labels = append(obsTrSeen.labels, l)
			}
		}
	}
}

type obsTrRoot struct{ objs []reclaim.Ref[obsTr] }

// TestMarkWorkerLabels: a mark worker goroutine, caught in a Trace method,
// carries reclaim.worker=mark and reclaim.heap, as docs/DESIGN.md says of
// the goroutines that run user code or mark.
func TestMarkWorkerLabels(t *testing.T) {
	h := newTestHeap(t, reclaim.Options{GCPercent: -1, MarkWorkers: 2, Logger: quietLogger()})
	m := h.Attach()
	defer m.Detach()
	root := reclaim.New[obsTrRoot](m)
	h.Pin(root.Object())
	defer h.Unpin(root.Object())
	for i := 0; i < 20000; i++ {
		o := reclaim.New[obsTr](m)
		root.Get(m).objs = append(root.Get(m).objs, o)
	}
	obsTrSeen.on.Store(true)
	defer obsTrSeen.on.Store(false)
	var labels []string
	for i := 0; i < 50 && labels == nil; i++ {
		m.Collect()
		obsTrSeen.Lock()
		labels = obsTrSeen.labels
		obsTrSeen.Unlock()
	}
	if labels == nil {
		// Worker 1 owns the odd spans (a heap this size has too few spans
		// for groups: mark.go, ownShift) and marks every handle into them
		// (handles go to their span's owner), so it traces objects in
		// every collection.
		t.Fatal("no mark worker goroutine ran a Trace method in 50 collections")
	}
	wantWorkerLabels(t, "mark worker", labels, "mark")
}
