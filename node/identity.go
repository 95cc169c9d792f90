package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/internal/fsutil"
)

// IdentityFile is the name of the key file inside the data directory.
const IdentityFile = "identity.key"

// maxKeyFileSize bounds how much of a key file is read (an ed25519 key in
// libp2p's protobuf encoding is 68 bytes).
const maxKeyFileSize = 64 << 10

// LoadOrCreateIdentity returns the host's private key stored in
// dataDir/identity.key, creating an ed25519 key there on first use.
//
// The key is written with mode 0600 through a temporary file that is renamed
// into place, so a crash never leaves a truncated key behind. An existing key
// file that group or others can read is refused: the peer ID is the node's
// identity and must not leak.
func LoadOrCreateIdentity(dataDir string) (crypto.PrivKey, error) {
	if dataDir == "" {
		return nil, errors.New("node: empty data directory")
	}
	path := filepath.Join(dataDir, IdentityFile)
	sk, err := loadIdentity(path)
	if err == nil {
		return sk, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: create data directory: %w", err)
	}
	sk, b, err := newIdentity()
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("node: write identity: %w", err)
	}
	return sk, nil
}

func loadIdentity(path string) (crypto.PrivKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // fs.ErrNotExist is handled by the caller
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("node: identity %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("node: identity %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("node: identity key %s has mode %04o and is accessible by group or others; "+
			"refusing to use it (fix with: chmod 600 %s)", path, perm, path)
	}
	if st.Size() > maxKeyFileSize {
		return nil, fmt.Errorf("node: identity %s is too large (%d bytes)", path, st.Size())
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil {
		return nil, fmt.Errorf("node: read identity %s: %w", path, err)
	}
	sk, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("node: identity %s is not a libp2p private key: %w", path, err)
	}
	return sk, nil
}

// newIdentity generates an ed25519 key and its encoding in the key file
// format: libp2p's protobuf encoding of the private key
// (crypto.MarshalPrivateKey).
func newIdentity() (crypto.PrivKey, []byte, error) {
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("node: generate identity: %w", err)
	}
	b, err := crypto.MarshalPrivateKey(sk)
	if err != nil {
		return nil, nil, fmt.Errorf("node: encode identity: %w", err)
	}
	return sk, b, nil
}

// GenerateIdentity writes a new ed25519 identity key to path, in the format
// LoadOrCreateIdentity reads, and returns its peer ID. Pointing path at
// DATADIR/identity.key (IdentityFile) gives a node its identity before its
// first start.
//
// The key is written with mode 0600 to a temporary file in the same
// directory (created with mode 0700 if missing) and then moved into place,
// so path holds either nothing, the old key or the whole new key. Without
// force an existing path (file, directory or symlink, even a dangling one) is
// never replaced: the error wraps fs.ErrExist. With force an existing file is
// replaced, which changes the node's peer ID.
func GenerateIdentity(path string, force bool) (peer.ID, error) {
	if path == "" {
		return "", errors.New("node: empty identity key path")
	}
	sk, b, err := newIdentity()
	if err != nil {
		return "", err
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return "", fmt.Errorf("node: identity peer ID: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("node: create directory for identity: %w", err)
	}
	if force {
		if st, err := os.Lstat(path); err == nil && st.IsDir() {
			return "", fmt.Errorf("node: identity %s is a directory", path)
		}
		if err := fsutil.WriteFileAtomic(path, b, 0o600); err != nil {
			return "", fmt.Errorf("node: write identity: %w", err)
		}
		return id, nil
	}
	if err := writeNewFileAtomic(path, b, 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("node: identity %s already exists; refusing to replace it: %w", path, fs.ErrExist)
		}
		return "", fmt.Errorf("node: write identity: %w", err)
	}
	return id, nil
}

// writeNewFileAtomic is fsutil.WriteFileAtomic that never replaces an
// existing path: the complete temp file is hard-linked to path, which fails
// with fs.ErrExist if anything is there, so the check and the creation are
// one step.
func writeNewFileAtomic(path string, b []byte, perm os.FileMode) error {
	if _, err := os.Lstat(path); err == nil {
		return fs.ErrExist
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the link, path keeps the data
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fs.ErrExist
		}
		// A file system without hard links: fall back to a checked rename
		// (a file created between the check and the rename is replaced).
		if _, serr := os.Lstat(path); serr == nil {
			return fs.ErrExist
		}
		if rerr := os.Rename(tmp, path); rerr != nil {
			return rerr
		}
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
