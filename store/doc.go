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
// CID) and files whose size is not the piece's size (its encrypted size, with
// encryption) are removed. When several
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
// # Encryption at rest
//
// WithEncryption (off by default) encrypts every piece file with
// AES-256-GCM or XChaCha20-Poly1305 under a 32-byte key (LoadKeyFile reads
// one). File names, file sizes and meta.db (URLs, lengths, manifests) are
// not encrypted: a piece file's name still carries the plaintext CID, so a
// reader of the disk learns which pieces are cached, but not their bytes.
// Usage and the quota count plaintext bytes (the files are 0.03% larger).
// Without encryption nothing changes: piece files are the plain bytes, with
// no header, and are served as they are.
//
// An encrypted piece file of an n-byte piece is a 56-byte header followed by
// ceil(n/64 KiB) segments (one, empty, if n is 0):
//
//	offset size
//	0      4    magic "DFPE"
//	4      1    format version (1)
//	5      1    cipher: 1 aes-256-gcm, 2 xchacha20-poly1305
//	6      1    log2 of the segment size (16: 64 KiB of plaintext)
//	7      1    reserved (0)
//	8      32   salt, random per file (a new one each time a piece is written)
//	40     16   header tag
//	56          segment 0, 1, ...: the segment's plaintext sealed with the
//	            AEAD (ciphertext of the same length, then a 16-byte tag); all
//	            segments but the last hold exactly 64 KiB of plaintext
//
// so the file is 56 + n + 16*segments bytes. Per file, HKDF-SHA256 (secret:
// the key; salt: the header's salt; info: "dfp2p store piece v1 " and the
// cipher name) derives a 32-byte file key and a nonce prefix (4 bytes for
// AES-GCM, 16 for XChaCha20); segment i is sealed under the file key with
// nonce prefix || uint64be(i). The additional data of every seal is
//
//	header[0:40] || len(task ID) (1 byte) || task ID || uint64be(piece index)
//	|| uint64be(piece length) || kind (1 byte) || uint64be(i)
//
// with kind 0 for a segment, 1 for the last segment and 2 for the header tag,
// which seals nothing with counter 2^64-1 (never a segment's). So a segment
// cannot be altered, reordered, dropped, repeated, moved into another piece or
// task, and the file cannot be cut short or extended, without failing
// authentication; nor can a header be edited or a whole file moved to another
// piece's name. A file key is used for one file only, so nonces never repeat
// across files.
//
// Writing streams: the plaintext is hashed (the CID check is unchanged) while
// it is sealed into the temp file one segment at a time. Reading decrypts one
// segment at a time and returns no byte of a segment before it authenticates.
// A file that fails (at open or on any Read, through OpenPiece or NewReader)
// yields an ErrBadPiece error and the piece is dropped from the store, as
// Verify (which decrypts and rehashes) does. At Open, the size is checked as
// without encryption and each piece file's header is read and authenticated
// (cheap: segments are not read); files without the magic, of another cipher,
// key or piece, are removed with a warning, so turning encryption on, off or
// changing the key empties the cache rather than serving garbage. A store
// without encryption removes encrypted files by their size.
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
// Memory: bytes are streamed through pooled 256 KiB buffers (plus one pooled
// 64 KiB segment buffer per encrypting writer or decrypting reader); no piece
// or file is ever held in memory. The have-index costs about one CID per held
// piece.
package store
