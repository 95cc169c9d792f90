package crypto

import (
	"errors"
	"fmt"
)

// Sentinel errors. Errors returned by this package wrap one of them with
// detail; test with errors.Is.
var (
	ErrBadSignature = errors.New("bad signature")
	ErrExpired      = errors.New("expired")
	ErrNotYetValid  = errors.New("not yet valid")
	ErrWrongPeer    = errors.New("wrong peer")
	ErrWrongCA      = errors.New("wrong cluster CA")
	ErrMalformed    = errors.New("malformed")
	ErrRevoked      = errors.New("revoked")
	ErrScope        = errors.New("scope not allowed")
)

// detailError carries a readable message and the sentinel it wraps.
type detailError struct {
	kind error
	msg  string
}

func (e *detailError) Error() string { return e.msg }
func (e *detailError) Unwrap() error { return e.kind }

// fail returns an error whose message is "crypto: " + the formatted detail and
// which wraps kind.
func fail(kind error, format string, args ...any) error {
	return &detailError{kind: kind, msg: "crypto: " + fmt.Sprintf(format, args...)}
}
