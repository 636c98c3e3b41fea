// Package inline is compiled by TestFastPathsInline with -gcflags=-m: the
// fast paths of Ref.Get and New must be inlined into a caller's code.
package inline

import "github.com/reclaimgc/reclaim"

type node struct {
	next reclaim.Ref[node]
	n    int
}

func Sum(m *reclaim.Mutator, r reclaim.Ref[node]) int {
	return r.Get(m).n // GET
}

func Make(m *reclaim.Mutator) reclaim.Ref[node] {
	return reclaim.New[node](m) // NEW
}
