// Package content owns dfp2p's content model: how a task is named (TaskID),
// how a file is cut into pieces (PieceSize, PieceRange), how a piece is
// addressed (CIDv1, raw codec, sha2-256), and the manifest that lists a task's
// pieces and is itself addressed by a CID (the task root).
//
// It is pure: no I/O beyond hashing what it is handed, no network, no disk.
// It must not know about peers, trackers or storage layout.
package content
