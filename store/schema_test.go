package store

import (
	"encoding/binary"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestSchemaVersion(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		if got := binary.BigEndian.Uint64(b.Get(keySchema)); got != SchemaVersion {
			t.Errorf("recorded schema %d, want %d", got, SchemaVersion)
		}
		var buf [8]byte
		binary.BigEndian.PutUint64(buf[:], SchemaVersion+1)
		return b.Put(keySchema, buf[:])
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "newer dfp2p") {
		t.Fatalf("Open of a newer store: %v, want a refusal naming the newer version", err)
	}
}
