//go:build !invariants

package heap

// invariantsBuild is false outside the invariants build; see
// invariants_on.go.
const invariantsBuild = false
