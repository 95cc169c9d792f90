package node

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"

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
	sk, _, err = crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("node: generate identity: %w", err)
	}
	b, err := crypto.MarshalPrivateKey(sk)
	if err != nil {
		return nil, fmt.Errorf("node: encode identity: %w", err)
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
