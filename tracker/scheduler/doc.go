// Package scheduler is the tracker's scheduling core: a pure, deterministic
// state machine that decides which parent serves which piece to which peer.
//
// Like etcd's raft package, it takes events in and hands decisions out. It
// does no I/O, starts no goroutines, never reads the clock (every call that
// needs time takes a now argument) and knows nothing about libp2p: tasks and
// peers are plain strings chosen by the caller. A Scheduler is NOT safe for
// concurrent use; the caller (package tracker) serialises all calls, typically
// under one mutex.
//
// # What it owns
//
//   - Tasks and their piece counts (AddTask, RemoveTask).
//   - Per task, which live peer holds which piece (Join with a have bitmap,
//     Done as pieces finish), and the holder count of every piece.
//   - Every in-flight assignment (child, piece, parent, deadline), hence the
//     upload load of each parent.
//   - Failure memory: per-child blocks, parents unreachable for many,
//     parents that served bad bytes.
//   - Each peer's locality labels, region and zone (SetLocality).
//
// It must not: move or verify bytes, talk to the network or disk, read the
// clock, or know about CIDs, URLs or authorization. Everything it holds is
// soft state that the peers can rebuild by re-joining; losing it costs
// scheduling quality, never correctness.
//
// # Events
//
//   - Join registers a peer or refreshes it (heartbeat). A non-nil have bitmap
//     is authoritative and replaces what the scheduler believed the peer held.
//     A seed still fetching from the origin joins with seed=true and an empty
//     or partial bitmap; its pieces arrive through Done as they finish, so a
//     seed is only ever a holder of pieces it really has.
//   - Done reports finished pieces in a batch; each frees the peer's matching
//     in-flight assignment (counting an upload for that parent) and makes the
//     peer a holder at once.
//   - Failed reports that a parent failed a child on a piece; see FailReason.
//   - SetLocality sets a joined peer's region and zone (see Locality).
//   - Leave forgets a peer; Tick forgets peers that sent no event for PeerTTL,
//     frees assignments older than AssignmentTimeout and drops expired blocks.
//
// Events that name a task or a child the scheduler does not know are ignored
// (Joined tells the caller whether to ask the peer to register again). A peer
// that is forgotten and later joins again simply starts afresh.
//
// Queries change nothing: Joined, Tasks, Task and Peers (for the HTTP API),
// and Assigned, the parent of a child's in-flight piece (the tracker asks it
// before Done to count bytes per parent→child edge for its dashboard).
//
// # Decision rules (Schedule)
//
//  1. Only pieces the peer neither holds nor has in flight, and only pieces
//     some live, usable holder has. A peer is never its own parent. A holder
//     that sent no event for PeerTTL is not used even before Tick reaps it.
//  2. Rarest first: pieces are visited in increasing holder count, so the
//     copies that could vanish are multiplied first and the swarm stays
//     diverse. Ties are broken randomly (a random starting point inside each
//     equal-count run) so children asking at the same moment pick different
//     pieces instead of all queueing on one.
//  3. Parent choice, "power of k choices": at most CandidateSample holders of
//     the piece are examined (all of them if there are that few, otherwise k
//     random draws), so the cost does not grow with the swarm. Parents that
//     are the child itself, expired, blocked (for this child, or for all) or
//     full (in-flight uploads >= MaxParentUploads, MaxSeedUploads for seeds)
//     are skipped. Among the rest the least loaded (in-flight / capacity) wins,
//     ties broken by the random visiting order. With locality labels this is
//     done per tier, nearest first (see Locality).
//  4. Non-seed peers first: if any sampled peer (of the child's region, see
//     Locality) can serve, a seed is not used, so load moves off the seeds as
//     peers fill up. Only when no peer can serve the piece are the task's
//     seeds holding it considered (seeds are tracked apart and always
//     examined then, so sampling never hides them).
//     At most SeedCopies assignments of one piece may be in flight from seeds
//     at once; other children skip the piece until a peer holds it. Peers that
//     start together (a cold start, or a seed still reading a slow origin)
//     would otherwise all take every new piece from the seed, which then
//     uploads one copy per peer: the "P2P is not happening" failure.
//  5. A piece with no usable parent is skipped and the next rarest is tried.
//     At most max(64, 8*max) such tries are made per call, which bounds the
//     work when the whole swarm is saturated; the peer asks again later.
//  6. Every assignment counts against the parent until Done, Failed, the
//     child's Leave/expiry or AssignmentTimeout frees it.
//
// # Locality
//
// A peer may carry a region and a zone (SetLocality, called after Join); empty
// means unknown, and a zone counts only with its region. Parents are tried by
// tier, a tier only when the previous one has no usable parent:
//
//  1. peers in the child's zone (same region and zone);
//  2. peers in the child's region (other or unknown zone);
//  3. seeds of the child's region, those in its zone first;
//  4. peers of other regions, then 5. seeds of other regions.
//
// An unknown region on either side means no preference: such a holder is in
// tier 2 or 3 for everyone, and a child of unknown region sees every holder
// there, so a swarm without labels is scheduled exactly as without locality.
// Each tier keeps the rules above: CandidateSample holders sampled inside the
// tier, least loaded wins, SeedCopies for seeds. The holders of every piece
// are kept partitioned by (region, zone), so a tier is sampled directly and
// one nearby holder is never hidden behind hundreds of far ones.
//
// Cross-region cap: a piece goes to a child from a parent of another region
// (tiers 4-5, seeds included) only while fewer than CrossRegionCopies (default
// 1) such transfers of that piece into the child's region are in flight;
// otherwise the child skips the piece and later gets it from the regional copy.
// Moreover, when the child's region already has holders of the piece, all busy
// or blocked, the child takes it from another region only if it found nothing
// else to do (no assignment in this call, nothing in flight): regional holders
// free up quickly, and each such copy is inter-region bytes. So about one copy
// of each piece enters each region. The count is freed like seedCopies (Done,
// Failed, Leave/expiry of the child, AssignmentTimeout, RemoveTask, and when
// the child's region changes).
//
// At most 64 distinct (region, zone) pairs with peers are tracked per task;
// labels beyond that are treated as unknown until room frees up.
//
// # Failure rules (Failed)
//
//   - FailUnreachable: the child avoids that parent for FailureBlock. When at
//     least two distinct children report the same parent unreachable within
//     FailureBlock, nobody is sent to it for FailureBlock (it stays a child
//     and keeps its holdings, so it can still download and be retried later).
//     Two reporters, not one, so a single broken child cannot evict a parent.
//   - FailBadPiece: the bytes did not match the CID. The reporting child
//     avoids the parent for BadPieceBlock and the piece is removed from the
//     parent's holdings. Two distinct reporters within BadPieceBlock block it
//     as a parent for everyone, in every task, for BadPieceBlock. Reports
//     never block a seed for others nor drop its holdings: one lying member
//     must not cut a task off from the pieces the tracker hashed itself.
//   - FailNotFound: the parent did not have the piece; it is removed from that
//     parent's holdings. Nobody is blocked.
//   - FailOther: the child avoids that parent for FailureBlock.
//
// Every failure also frees the child's in-flight assignment for that piece and
// counts against the parent (PeerView.Failures). All blocks expire.
//
// # Complexity
//
// Holders of a piece are a slice plus, per peer, the position of the peer in
// that slice (one int32 per piece per peer, which doubles as "held", "missing"
// and "in flight at index i"), so add, remove and random sampling are O(1).
// Pieces are kept sorted by holder count in one array with bucket boundaries
// (the classic piece-picker layout); a holder count changing by one is an O(1)
// swap. Inside a piece's slice the holders are grouped by (region, zone)
// segment, with per-piece segment boundaries; adding or removing a holder
// moves at most one holder per later segment, O(segments) (O(1) without
// labels). Hence Done is O(len(pieces)*segments), and Schedule is O(pieces
// scanned + tries*CandidateSample*tiers) and never visits all peers. Join
// with a bitmap, Leave and expiry are O(pieces*segments); SetLocality moving
// a peer is O(held*segments); Tick and the read-side views are O(peers).
package scheduler
