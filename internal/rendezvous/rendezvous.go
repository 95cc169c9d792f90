// Package rendezvous orders peers for a key by rendezvous (highest random
// weight) hashing, so that every node that knows the same peers agrees, with
// no coordination, on which one comes first for a key. It owns nothing else.
package rendezvous

import (
	"crypto/sha256"
	"encoding/binary"
	"sort"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Rank returns ids ordered by the weight sha256(key, 0, id), highest first
// (ties, which need a hash collision, by ID). Adding or removing a peer moves
// only the keys it ranks first for. ids is not modified.
func Rank(key string, ids []peer.ID) []peer.ID {
	type scored struct {
		p peer.ID
		w uint64
	}
	ss := make([]scored, len(ids))
	for i, p := range ids {
		h := sha256.New()
		h.Write([]byte(key))
		h.Write([]byte{0})
		h.Write([]byte(p))
		ss[i] = scored{p, binary.BigEndian.Uint64(h.Sum(nil))}
	}
	sort.Slice(ss, func(i, j int) bool {
		if ss[i].w != ss[j].w {
			return ss[i].w > ss[j].w
		}
		return ss[i].p < ss[j].p
	})
	out := make([]peer.ID, len(ss))
	for i, s := range ss {
		out[i] = s.p
	}
	return out
}
