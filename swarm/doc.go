// Package swarm downloads a task from a set of peers found without a tracker
// (DHT providers): it asks each provider what it holds (exchange status),
// picks pieces rarest-first locally, fetches them over the exchange protocol
// and writes them, verified, through a cdn.PieceWriter. It must not find peers
// itself (a Finder does) and must not read origins (the caller falls back to
// cdn when it returns ErrNoProviders or ErrStalled).
//
// It owns the per-download decisions a tracker's scheduler makes otherwise:
// which geometry and which piece CIDs to trust, which piece to fetch next from
// which provider (Picker, a pure state machine), and when to give up.
//
// # Trust
//
//   - Geometry (length, piece size) is that of the first provider, in the
//     Finder's order, that sends a manifest; without one, that of most
//     providers (the earliest on a tie). Providers with other geometry are not
//     used.
//   - Piece CIDs: a provider's manifest, once adopted, is authoritative for
//     every piece. Without one, the first claim for a piece wins (pieces held
//     locally first, then providers in the Finder's order); a provider that
//     claims another CID for a piece is not asked for that piece. A manifest
//     first seen mid-download is adopted only if it agrees with every piece
//     held or in flight; otherwise it is ignored (the final checks below still
//     apply).
//   - Pieces held locally when Fetch starts that disagree with the adopted
//     manifest mean the local task is stale (another version of the file):
//     the task is dropped and begun again.
//   - Every piece is verified by the PieceWriter against its CID; a provider
//     that sends bytes that do not match is blocked for the rest of the Fetch.
//   - When every piece is held, the manifest is built as cdn builds it (piece
//     CIDs, length, piece size, whole-file sha256 read back from the store)
//     and must match Request.Digest (else the task is dropped,
//     cdn.ErrDigestMismatch) and the adopted provider manifest's root CID
//     (else ErrManifestMismatch; the pieces are kept, they matched their
//     CIDs).
//
// # Concurrency
//
// Fetch runs one loop goroutine (the caller's) that owns all state, plus
// goroutines it starts and joins before it returns: status polls (bounded),
// one per piece stream (at most WithMaxConcurrent pieces in flight), and one
// background refresh at a time. Every network call has a deadline; everything
// stops when ctx ends.
package swarm
