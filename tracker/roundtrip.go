package tracker

import (
	"bufio"
	"context"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/dfp2p/dfp2p/internal/wire"
)

// roundTrip opens a stream of proto to p, writes req as one wire message and
// reads one answer of at most max bytes into resp. ctx bounds it all: its
// deadline is the stream's, and its end resets the stream.
func roundTrip(ctx context.Context, h host.Host, p peer.ID, proto protocol.ID, req any, max int, resp any) error {
	s, err := h.NewStream(ctx, p, proto)
	if err != nil {
		return err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if err := wire.WriteMsg(s, req); err != nil {
		_ = s.Reset()
		return err
	}
	// The request is written. CloseWrite may fail if the peer already
	// answered and closed its side (it reads only the one message), which
	// cancels our write direction: the answer is still there to read.
	_ = s.CloseWrite()
	if err := wire.ReadMsg(bufio.NewReader(s), max, resp); err != nil {
		_ = s.Reset()
		return err
	}
	return nil
}
