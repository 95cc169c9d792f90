package tracker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/internal/rendezvous"
)

// ErrUnreachable is returned when no tracker answered.
var ErrUnreachable = errors.New("no tracker reachable")

// Client talks to a group of trackers over libp2p. Each task belongs to one
// tracker, chosen by rendezvous hashing of the task ID and the trackers' peer
// IDs, so every peer asks the same tracker about the same task without any
// coordination, and adding or removing a tracker moves only that tracker's
// tasks. When the owner does not answer, the next tracker in the task's
// rendezvous order takes over (the peer registers there again; see the
// daemon). A tracker that failed is tried last for a while. Safe for
// concurrent use.
type Client struct {
	h        host.Host
	trackers []peer.ID
	timeout  time.Duration

	mu   sync.Mutex
	down map[peer.ID]time.Time // trackers that failed recently, until
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithCallTimeout bounds one attempt at a register, which may wait for the
// origin's first bytes (default 30s). Other requests get at most 5 s per
// tracker, so a dead tracker costs one short timeout before the next one is
// asked.
func WithCallTimeout(d time.Duration) ClientOption { return func(c *Client) { c.timeout = d } }

// downFor is how long a tracker that failed is tried last.
const downFor = 30 * time.Second

// attemptTimeout for requests other than register.
const attemptTimeout = 5 * time.Second

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
	c := &Client{h: h, timeout: 30 * time.Second, down: map[peer.ID]time.Time{}}
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

// Rank orders trackers for task by rendezvous (highest random weight)
// hashing: the first is the task's owner, the rest take over in order.
func Rank(task content.TaskID, trackers []peer.ID) []peer.ID {
	return rendezvous.Rank(string(task), trackers)
}

// order is Rank with trackers that failed recently moved to the end.
func (c *Client) order(task content.TaskID) []peer.ID {
	ranked := Rank(task, c.trackers)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	up := make([]peer.ID, 0, len(ranked))
	var down []peer.ID
	for _, p := range ranked {
		if until, ok := c.down[p]; ok && now.Before(until) {
			down = append(down, p)
		} else {
			up = append(up, p)
		}
	}
	return append(up, down...)
}

// Call sends req to the task's tracker, or the next one in its rendezvous
// order when that one does not answer, and returns the response. A response
// carrying an error is returned as *Error.
func (c *Client) Call(ctx context.Context, req *Request) (*Response, error) {
	if len(c.trackers) == 0 {
		return nil, ErrUnreachable
	}
	per := attemptTimeout
	if req.Type == TypeRegister {
		per = c.timeout
	}
	var lastErr error
	for _, p := range c.order(req.Task) {
		actx, cancel := context.WithTimeout(ctx, per)
		resp, err := c.callOne(actx, p, req)
		cancel()
		if err == nil {
			c.mu.Lock()
			delete(c.down, p)
			c.mu.Unlock()
			if resp.Error != "" {
				return resp, &Error{Msg: resp.Error, OriginStatus: resp.OriginStatus, UnknownTask: resp.UnknownTask}
			}
			return resp, nil
		}
		lastErr = err
		// The attempt failed whatever the caller's deadline: remember it, so
		// the next call goes to the next tracker first.
		c.mu.Lock()
		c.down[p] = time.Now().Add(downFor)
		c.mu.Unlock()
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%w: %v", ErrUnreachable, lastErr)
}

func (c *Client) callOne(ctx context.Context, p peer.ID, req *Request) (*Response, error) {
	var resp Response
	if err := roundTrip(ctx, c.h, p, ProtocolID, req, maxResponseSize, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}
