package crypto

import (
	"crypto/ed25519"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

const (
	revocationVersion = 1
	revocationDomain  = "dfp2p-revocations-v1\x00"
	// MaxRevocationListSize bounds an encoded revocation list.
	MaxRevocationListSize = 1 << 20
)

// RevocationList names peers whose certificates must no longer be accepted.
// The CA signs it (CA.SignRevocations); anyone may relay it. A newer list
// (later Issued) replaces an older one, so a list carries every revoked peer
// whose certificates have not yet expired.
//
// Encoded, it is canonical compact JSON {"v":1,"issued":...,"peers":[...],
// "sig":...} with the peers sorted (by their bytes) and unique; the signature
// covers "dfp2p-revocations-v1\x00" + the encoding without "sig".
type RevocationList struct {
	Issued time.Time
	Peers  []peer.ID
	Sig    []byte
}

// revocationJSON is the encoded form; field order is fixed.
type revocationJSON struct {
	V      int       `json:"v"`
	Issued time.Time `json:"issued"`
	Peers  []peer.ID `json:"peers"`
	Sig    []byte    `json:"sig,omitempty"`
}

func (r *RevocationList) validate() error {
	if !isCanonTime(r.Issued) {
		return fail(ErrMalformed, "revocation list: issue time must be UTC with second precision")
	}
	for i, p := range r.Peers {
		if !validPeer(p) {
			return fail(ErrMalformed, "revocation list: invalid peer ID at %d", i)
		}
		if i > 0 && r.Peers[i-1] >= p {
			return fail(ErrMalformed, "revocation list: peers not sorted and unique")
		}
	}
	if len(r.Sig) != 0 && len(r.Sig) != ed25519.SignatureSize {
		return fail(ErrMalformed, "revocation list: signature has %d bytes", len(r.Sig))
	}
	return nil
}

func (r *RevocationList) encode(sig []byte) ([]byte, error) {
	if err := r.validate(); err != nil {
		return nil, err
	}
	peers := r.Peers
	if peers == nil {
		peers = []peer.ID{}
	}
	b, err := marshal(revocationJSON{V: revocationVersion, Issued: r.Issued, Peers: peers, Sig: sig})
	if err != nil {
		return nil, fail(ErrMalformed, "revocation list: %v", err)
	}
	if len(b) > MaxRevocationListSize {
		return nil, fail(ErrMalformed, "revocation list: %d bytes exceeds %d", len(b), MaxRevocationListSize)
	}
	return b, nil
}

// Encode returns the list's canonical encoding, including Sig.
func (r *RevocationList) Encode() ([]byte, error) { return r.encode(r.Sig) }

func (r *RevocationList) signedBytes() ([]byte, error) {
	b, err := r.encode(nil)
	if err != nil {
		return nil, err
	}
	return domain(revocationDomain, b), nil
}

// DecodeRevocationList parses an encoded list of at most
// MaxRevocationListSize bytes. It accepts only the canonical encoding of a
// well-formed, signed list; it does not check the signature (see Verify).
// Errors wrap ErrMalformed.
func DecodeRevocationList(b []byte) (*RevocationList, error) {
	if len(b) > MaxRevocationListSize {
		return nil, fail(ErrMalformed, "revocation list: %d bytes exceeds %d", len(b), MaxRevocationListSize)
	}
	var j revocationJSON
	if err := decodeCanonical(b, &j, "revocation list"); err != nil {
		return nil, err
	}
	if j.V != revocationVersion {
		return nil, fail(ErrMalformed, "revocation list: unsupported version %d", j.V)
	}
	if j.Peers == nil {
		return nil, fail(ErrMalformed, "revocation list: missing peers")
	}
	r := &RevocationList{Issued: j.Issued, Peers: j.Peers, Sig: j.Sig}
	if err := r.validate(); err != nil {
		return nil, err
	}
	if len(r.Sig) == 0 {
		return nil, fail(ErrMalformed, "revocation list: not signed")
	}
	return r, nil
}

// Verify checks the CA's signature over the list (ErrBadSignature; a list
// signed by another CA fails the same way).
func (r *RevocationList) Verify(ca ed25519.PublicKey) error {
	if r == nil {
		return fail(ErrMalformed, "revocation list: nil")
	}
	if err := checkCAKey(ca); err != nil {
		return err
	}
	msg, err := r.signedBytes()
	if err != nil {
		return err
	}
	if len(r.Sig) != ed25519.SignatureSize || !ed25519.Verify(ca, msg, r.Sig) {
		return fail(ErrBadSignature, "revocation list issued %s: invalid CA signature", r.Issued.Format(time.RFC3339))
	}
	return nil
}

// Has reports whether p is on the list.
func (r *RevocationList) Has(p peer.ID) bool {
	if r == nil {
		return false
	}
	if _, found := slices.BinarySearch(r.Peers, p); found {
		return true
	}
	// A list built by hand may be unsorted; Verify and Decode guarantee order.
	return !slices.IsSorted(r.Peers) && slices.Contains(r.Peers, p)
}

// Check returns an error wrapping ErrRevoked when p is on the list.
func (r *RevocationList) Check(p peer.ID) error {
	if r.Has(p) {
		return fail(ErrRevoked, "peer %s is revoked (list issued %s)", p, r.Issued.Format(time.RFC3339))
	}
	return nil
}
