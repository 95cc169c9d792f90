package crypto

import (
	"slices"
	"strings"
)

// Role is what a certified member may do in the cluster.
type Role string

// Roles.
const (
	RolePeer    Role = "peer"
	RoleSeed    Role = "seed"
	RoleTracker Role = "tracker"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool {
	switch r {
	case RolePeer, RoleSeed, RoleTracker:
		return true
	}
	return false
}

// ParseRole parses a role name ("peer", "seed" or "tracker").
func ParseRole(s string) (Role, error) {
	if r := Role(s); r.Valid() {
		return r, nil
	}
	return "", fail(ErrMalformed, "unknown role %q (want peer, seed or tracker)", s)
}

// Scope is a permission carried by an API token.
type Scope string

// Scopes, from least to most powerful: each allows what the ones before it
// allow.
const (
	ScopeRead    Scope = "read"
	ScopePreheat Scope = "preheat"
	ScopeAdmin   Scope = "admin"
)

// rank orders scopes; 0 means unknown.
func (s Scope) rank() int {
	switch s {
	case ScopeRead:
		return 1
	case ScopePreheat:
		return 2
	case ScopeAdmin:
		return 3
	}
	return 0
}

// Valid reports whether s is a known scope.
func (s Scope) Valid() bool { return s.rank() != 0 }

// ParseScopes parses a comma-separated list of scopes ("read,preheat"). The
// result has no duplicates and is ordered from least to most powerful.
func ParseScopes(s string) ([]Scope, error) {
	var out []Scope
	for part := range strings.SplitSeq(s, ",") {
		sc := Scope(strings.TrimSpace(part))
		if !sc.Valid() {
			return nil, fail(ErrMalformed, "unknown scope %q in %q (want read, preheat or admin)", sc, s)
		}
		out = append(out, sc)
	}
	return normalizeScopes(out)
}

// normalizeScopes checks scopes and returns them deduplicated and sorted by
// rank, in a new slice.
func normalizeScopes(scopes []Scope) ([]Scope, error) {
	if len(scopes) == 0 {
		return nil, fail(ErrMalformed, "no scopes")
	}
	out := make([]Scope, 0, len(scopes))
	for _, sc := range scopes {
		if !sc.Valid() {
			return nil, fail(ErrMalformed, "unknown scope %q", sc)
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	slices.SortFunc(out, func(a, b Scope) int { return a.rank() - b.rank() })
	return out, nil
}

// FormatScopes joins scopes with commas, the form ParseScopes reads.
func FormatScopes(scopes []Scope) string {
	s := make([]string, len(scopes))
	for i, sc := range scopes {
		s[i] = string(sc)
	}
	return strings.Join(s, ",")
}
