// Package crypto owns dfp2p's cluster trust material and its formats: the
// cluster certificate authority (an ed25519 key pair kept in
// DIR/cluster-ca.key), membership certificates that bind a libp2p peer ID to a
// role, the join token a tracker prints for daemons, HMAC join proofs, API
// bearer tokens, manifests signed by the seed that built them, and signed
// revocation lists. It defines how each is encoded (canonical, size-bounded,
// strictly parsed, domain-separated signatures) and how each is verified.
//
// It is a pure library: no network I/O, no goroutines, no clock reads (callers
// pass "now"). Only the CA key files are read and written. The membership
// protocol that exchanges these objects, and deciding whom to trust, live
// elsewhere.
package crypto
