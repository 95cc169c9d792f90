// Package cdn reads an origin over HTTP(S) into a store: it owns origin
// fetching (the first ranged GET that learns the length, parallel ranged GETs,
// the sequential fallback for origins without range support, spooling of
// unknown-length bodies, retries with backoff, header pass-through and origin
// errors) and, through Seed, the once-per-task guarantee inside a process.
//
// Each piece is streamed into the store as it arrives and announced to an
// Observer as soon as it is on disk, so peers can start before the seed holds
// the whole file. cdn must not schedule peers: it only reports what it holds.
//
// The store is reached through the small PieceWriter interface so that this
// package does not depend on store/.
package cdn
