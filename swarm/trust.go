package swarm

import (
	"crypto/ed25519"
	"errors"
	"time"

	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/exchange"
)

// SignedBy is a manifest check (WithManifestCheck) for a closed cluster: a
// provider's manifest counts only with a seed's signature that verifies
// against the cluster CA ca.
func SignedBy(ca ed25519.PublicKey) func(*exchange.Status) error {
	return func(st *exchange.Status) error {
		if len(st.Sig) == 0 {
			return errors.New("unsigned manifest")
		}
		sm := &crypto.SignedManifest{Manifest: st.Manifest, Cert: st.Signer, Sig: st.Sig}
		_, err := sm.Verify(ca, time.Now())
		return err
	}
}
