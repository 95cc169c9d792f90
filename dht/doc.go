// Package dht owns dfp2p's Kademlia DHT: peer and content discovery across
// regions and without a tracker.
//
// It runs go-libp2p-kad-dht on the private protocol prefix "/dfp2p" (the
// protocol is /dfp2p/kad/1.0.0), joins it through the bootstrap peers it is
// given, announces that this node holds a task (provider records for the task
// key and for the manifest root CID), and finds the peers that announced one.
// It must not schedule or move pieces: callers hand the peers it finds to the
// tracker client or the exchange. It never touches the public IPFS DHT: the
// prefix differs from /ipfs, there are no default bootstrap peers, and only
// the addresses passed to WithBootstrap are dialled.
//
// # Keys
//
// The DHT keys provider records by multihash only; the CID codec is not part
// of the key. A task is therefore announced under TaskKey(task), the CIDv1
// (raw, sha2-256) of the string "dfp2p-task:"+task, never under a hash of the
// task ID itself. Without the prefix a task named by a digest (its ID is the
// file's sha256) would share its key with the file's single piece when the
// file fits in one piece, and with any other use of the same sha256. A
// manifest root is announced under its own CID (the sha256 of the manifest
// bytes), which cannot collide with a task key.
//
// # Soft state and timings
//
// Provider records live in memory (an in-memory datastore) on the peers
// closest to each key and expire after the provide TTL (default 30 min). They
// are soft state: a restarted peer starts empty and the network rebuilds
// itself because every provider re-announces its keys every reprovide
// interval (default 10 min). The public Amino DHT uses 22 h / 48 h because it
// holds billions of records on churning home nodes where a provide costs a
// multi-second lookup; a dfp2p cluster holds few keys per node, its peers are
// a few milliseconds apart, and a stale record costs a failed dial on every
// lookup (the "stale advert" trouble of other registry mirrors), so records
// should die quickly after a peer leaves or garbage-collects a task. The TTL
// is three reprovide intervals so a record survives two missed rounds (a
// short partition, a slow restart).
//
// # Modes
//
// Trackers and seeds run in server mode (they answer DHT queries and store
// records). Daemons inside a cluster run in server mode too, which is the
// default: every cluster host is directly reachable, so more servers means
// shorter lookups and records spread over more peers, and a client-only
// daemon would leave the DHT to the few trackers. WithServerMode(false)
// selects libp2p's auto mode for daemons that may sit behind NAT (a laptop,
// another network): they query as clients and only serve once AutoNAT
// reports them publicly reachable.
//
// # Ownership
//
// New starts the DHT, a bootstrap loop and a reprovider loop. Close stops
// both loops, waits for them and closes the DHT. The libp2p host belongs to
// the caller and stays open.
package dht
