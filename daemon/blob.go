package daemon

import (
	"context"
	"io"

	"github.com/dfp2p/dfp2p/proxy"
)

// FetchBlob implements proxy.Fetcher: the registry mirror's blob bodies come
// through the same downloads as `dfp2p get`, with the blob digest as the
// task ID, so a layer pulled under two registry host names is one task.
func (d *Daemon) FetchBlob(ctx context.Context, req proxy.BlobRequest) (io.ReadCloser, int64, error) {
	s, err := d.Open(ctx, Request{URL: req.URL, Header: req.Header, Digest: req.Digest})
	if err != nil {
		return nil, 0, err
	}
	return s, s.Length, nil
}

// HTTPStatus is the status a front end (the registry mirror, the API)
// answers this error with: the origin's own status when the origin failed.
func (e *Error) HTTPStatus() int { return StatusFor(e) }
