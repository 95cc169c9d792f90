// Package store owns a host's pieces on disk and its task metadata: task
// records (bbolt), verified piece files, resume after a restart, and garbage
// collection (TTL and disk watermarks). It is used by the seed (cdn/) and by
// daemons alike.
//
// It must not talk to the network and must not make scheduling decisions: it
// never chooses which piece to fetch next or from whom. Callers hand it bytes
// and the CID they expect; it verifies, stores and serves them.
//
// # Layout
//
//	dir/meta.db                  bbolt: bucket "tasks" (one small JSON record per
//	                             task) and bucket "manifests" (encoded manifest
//	                             per complete task, written once by Complete)
//	dir/tasks/<taskID>/<idx>-<cid>   one file per verified piece
//	dir/tasks/<taskID>/<idx>-*.tmp   a piece being written (removed at Open)
//	dir/trash/                   task dirs being deleted (emptied at Open)
//
// # Why the piece file name is the piece state
//
// A piece is streamed into a temp file in its task dir while it is hashed. Only
// if its length and CID are right is it (optionally fsynced and) renamed to
// <idx>-<cid>. Rename is atomic, so the existence of a well-named file is the
// verified state: no bbolt write is needed per piece (a bbolt commit fsyncs
// and serialises all writers, which would cap piece throughput), and the disk
// and the metadata can never disagree about which pieces are held. At Open the
// in-memory have-index is rebuilt by listing each task dir; *.tmp files,
// names that do not parse (index out of range, non-canonical CID, not a dfp2p
// CID) and files whose size is not the piece's size are removed. When several
// files claim one index all of them are removed (they cannot be told apart
// without rehashing; the piece is simply fetched again).
//
// The task dir itself is not fsynced after a rename: if a crash loses the
// rename, the piece is merely missing and is fetched again. With WithSync(false)
// the piece file's data is not fsynced either, so after a power loss a file
// may have the right name and size but wrong bytes; Verify rehashes a task and
// removes such pieces, and every consumer (exchange clients, Complete callers,
// the whole-file sha256 check in `dfp2p get`) verifies what it reads anyway.
//
// Task records are written on EnsureTask, SetPinned, Complete and when the
// last-access time has moved by more than a minute (so Touch in a hot path
// does not cost an fsync each time); Close flushes pending access times.
// Deleting a task removes its record first and then its dir (renamed into
// trash/ first, so a task re-created at once gets a fresh dir); Open removes
// task dirs without a record and re-creates empty dirs for records without one.
//
// # Concurrency
//
// A Store is safe for concurrent use. Many goroutines may write different
// pieces of one task while others serve it. Two writers of the same piece both
// hash their own temp file; the commit (check index, rename, update index) is
// done under the store lock, so exactly one file is left and both callers get
// the same answer. WritePiece and readers from NewReader hold the task active
// (as Acquire does) for their duration, so GC and DeleteTask never pull a task
// from under them.
//
// Memory: bytes are streamed through pooled 256 KiB buffers; no piece or file
// is ever held in memory. The have-index costs about one CID per held piece.
package store
