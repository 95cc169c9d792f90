package tracker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/dfp2p/dfp2p/internal/wire"
)

// ErrUnreachable is returned when no tracker answered.
var ErrUnreachable = errors.New("no tracker reachable")

// Client talks to one or more trackers over libp2p. It uses the first tracker
// that answers and moves to the next one when a call fails at the transport
// level. Safe for concurrent use.
type Client struct {
	h        host.Host
	trackers []peer.ID
	timeout  time.Duration

	mu   sync.Mutex
	good int // index of the tracker that answered last
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithCallTimeout bounds each request/response (default 30s; a register may
// wait for the origin's first bytes).
func WithCallTimeout(d time.Duration) ClientOption { return func(c *Client) { c.timeout = d } }

// ParseAddrs parses tracker multiaddrs, each of which must end in /p2p/ID.
func ParseAddrs(addrs []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	index := map[peer.ID]int{}
	for _, s := range addrs {
		m, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("tracker address %q: %w", s, err)
		}
		ai, err := peer.AddrInfoFromP2pAddr(m)
		if err != nil {
			return nil, fmt.Errorf("tracker address %q must end in /p2p/<peer-id>: %w", s, err)
		}
		if i, ok := index[ai.ID]; ok {
			out[i].Addrs = append(out[i].Addrs, ai.Addrs...)
			continue
		}
		index[ai.ID] = len(out)
		out = append(out, *ai)
	}
	return out, nil
}

// NewClient returns a client for the given trackers.
func NewClient(h host.Host, trackers []peer.AddrInfo, opts ...ClientOption) *Client {
	c := &Client{h: h, timeout: 30 * time.Second}
	for _, ai := range trackers {
		h.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.PermanentAddrTTL)
		c.trackers = append(c.trackers, ai.ID)
	}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Trackers lists the tracker peer IDs.
func (c *Client) Trackers() []peer.ID { return append([]peer.ID(nil), c.trackers...) }

// Call sends req and returns the tracker's response. A response carrying an
// error is returned as *Error.
func (c *Client) Call(ctx context.Context, req *Request) (*Response, error) {
	if len(c.trackers) == 0 {
		return nil, ErrUnreachable
	}
	c.mu.Lock()
	start := c.good
	c.mu.Unlock()
	var lastErr error
	for i := range c.trackers {
		idx := (start + i) % len(c.trackers)
		resp, err := c.callOne(ctx, c.trackers[idx], req)
		if err == nil {
			c.mu.Lock()
			c.good = idx
			c.mu.Unlock()
			if resp.Error != "" {
				return resp, &Error{Msg: resp.Error, OriginStatus: resp.OriginStatus, UnknownTask: resp.UnknownTask}
			}
			return resp, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%w: %v", ErrUnreachable, lastErr)
}

func (c *Client) callOne(ctx context.Context, p peer.ID, req *Request) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	s, err := c.h.NewStream(ctx, p, ProtocolID)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = s.Reset() })
	defer stop()
	if err := wire.WriteMsg(s, req); err != nil {
		_ = s.Reset()
		return nil, err
	}
	if err := s.CloseWrite(); err != nil {
		_ = s.Reset()
		return nil, err
	}
	var resp Response
	if err := wire.ReadMsg(bufio.NewReader(s), maxResponseSize, &resp); err != nil {
		_ = s.Reset()
		return nil, err
	}
	return &resp, nil
}
