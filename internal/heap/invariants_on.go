//go:build invariants

package heap

// invariantsBuild is true in the invariants build (go test -tags
// invariants), which adds checks too costly for the hot paths of a normal
// build; see verify_invariants.go.
const invariantsBuild = true
