package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/crypto/member"
	"github.com/dfp2p/dfp2p/internal/fsutil"
	"github.com/dfp2p/dfp2p/internal/httpapi"
	"github.com/dfp2p/dfp2p/tracker"
)

// CertFile is where a member daemon keeps its certificate.
const CertFile = "membership.cert"

// joinTimeout bounds joining at start-up.
const joinTimeout = 30 * time.Second

// join obtains (or loads) this daemon's membership certificate and starts
// keeping it renewed, and turns on the API's token check.
func (d *Daemon) join(trackers []peer.AddrInfo) error {
	ids := make([]peer.ID, len(trackers))
	for i, ai := range trackers {
		ids[i] = ai.ID
	}
	path := filepath.Join(d.cfg.DataDir, CertFile)
	var cur *crypto.Certificate
	if b, err := os.ReadFile(path); err == nil {
		cur, _ = crypto.DecodeCertificate(b) // an unreadable one is replaced
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	save := func(c *crypto.Certificate) error {
		b, err := c.Encode()
		if err != nil {
			return err
		}
		return fsutil.WriteFileAtomic(path, b, 0o600)
	}
	ctx, cancel := context.WithTimeout(d.ctx, joinTimeout)
	defer cancel()
	k, err := member.StartKeeper(ctx, d.members, &member.Trackers{M: d.members, Trackers: ids, Secret: d.cfg.Join.Secret}, cur, save)
	if err != nil {
		return err
	}
	d.keeper = k
	d.auth, err = httpapi.NewAuth(d.cfg.Join.CA, d.cfg.DataDir)
	return err
}

// checkManifest decodes the manifest a tracker sent. In a closed cluster it
// must come with the seed's signature, which must verify against the
// cluster CA: a tampered manifest is refused before any CID in it is used.
func (d *Daemon) checkManifest(resp *tracker.Response) (*content.Manifest, error) {
	if d.members.Open() {
		return content.DecodeManifest(resp.Manifest)
	}
	if len(resp.Signed) == 0 {
		return nil, errors.New("the tracker sent an unsigned manifest in a closed cluster")
	}
	sm, err := crypto.DecodeSignedManifest(resp.Signed)
	if err != nil {
		return nil, fmt.Errorf("manifest signature: %w", err)
	}
	m, err := sm.Verify(d.members.CA(), time.Now())
	if err != nil {
		return nil, fmt.Errorf("manifest signature: %w", err)
	}
	if !bytes.Equal(sm.Manifest, resp.Manifest) {
		return nil, errors.New("manifest differs from the signed one")
	}
	return m, nil
}
