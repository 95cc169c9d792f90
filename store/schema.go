package store

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the layout of meta.db and the task directories this
// build writes. A store written by a newer build (a higher number) is
// refused at Open, so a rollback never misreads data it does not know; an
// older one is migrated forward in checkSchema. Version 1 is the first
// layout (buckets tasks and manifests, JSON task records); data dirs made
// before the version was recorded are version 1.
const SchemaVersion = 1

// checkSchema records SchemaVersion in a new or version-1 store and refuses
// one written by a newer build.
func checkSchema(tx *bolt.Tx) error {
	b, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	if v := b.Get(keySchema); v != nil {
		if len(v) != 8 {
			return fmt.Errorf("store: meta.db has a malformed schema version (%d bytes)", len(v))
		}
		if got := binary.BigEndian.Uint64(v); got > SchemaVersion {
			return fmt.Errorf("store: data dir was written by a newer dfp2p (schema %d, this build reads up to %d): upgrade dfp2p or move the data dir aside", got, SchemaVersion)
		}
	}
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], SchemaVersion)
	return b.Put(keySchema, buf[:])
}
