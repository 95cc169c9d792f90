// Command byzantine is a hostile cluster member for the fault-injection
// end-to-end tests (e2e/faults_test.go). It is built from dfp2p's own
// packages: it joins a closed cluster with the join token (a real membership
// certificate), registers for one task with the tracker claiming every
// piece, keeps announcing that claim, and answers piece requests with a
// hostile twist chosen by -mode:
//
//	garbage  "ok" headers followed by random bytes of the right length
//	silent   reads the request and never answers (the client's idle timeout fires)
//	lie      answers "not_found" for every piece it claimed
//
// It writes DIR/addrs and DIR/api and answers GET /healthz like dfp2p's own
// processes, so the e2e harness starts and stops it the same way. It is test
// infrastructure and must never be shipped.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/crypto"
	"github.com/dfp2p/dfp2p/crypto/member"
	"github.com/dfp2p/dfp2p/exchange"
	"github.com/dfp2p/dfp2p/internal/httpapi"
	"github.com/dfp2p/dfp2p/internal/wire"
	"github.com/dfp2p/dfp2p/node"
	"github.com/dfp2p/dfp2p/tracker"
)

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "byzantine" { // the harness passes a role first
		args = args[1:]
	}
	fs := flag.NewFlagSet("byzantine", flag.ExitOnError)
	dataDir := fs.String("data-dir", "", "data dir (identity, addrs, api)")
	api := fs.String("api", "127.0.0.1:0", "health API address")
	listen := fs.String("listen", "/ip4/127.0.0.1/udp/0/quic-v1,/ip4/127.0.0.1/tcp/0", "libp2p listen multiaddrs, comma separated")
	join := fs.String("join", "", "the cluster's join token")
	url := fs.String("url", "", "the origin URL of the task to lie about")
	mode := fs.String("mode", "garbage", "garbage | silent | lie")
	_ = fs.Parse(args)
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, log, *dataDir, *api, strings.Split(*listen, ","), *join, *url, *mode); err != nil {
		fmt.Fprintln(os.Stderr, "byzantine:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, dir, api string, listen []string, joinLine, url, mode string) error {
	if dir == "" || joinLine == "" || url == "" {
		return errors.New("--data-dir, --join and --url are required")
	}
	if mode != "garbage" && mode != "silent" && mode != "lie" {
		return fmt.Errorf("unknown --mode %q", mode)
	}
	tok, err := crypto.ParseJoinToken(joinLine)
	if err != nil {
		return err
	}
	task, err := content.TaskIDFor(url, "", "", content.DefaultQueryFilter)
	if err != nil {
		return err
	}
	h, err := node.New(node.WithIdentityDir(dir), node.WithListenAddrs(listen...))
	if err != nil {
		return err
	}
	defer h.Close()
	m, err := member.New(h, tok.CA)
	if err != nil {
		return err
	}
	defer m.Close()
	trackers, err := tracker.ParseAddrs(tok.Addrs)
	if err != nil {
		return err
	}
	ids := make([]peer.ID, len(trackers))
	for i, ai := range trackers {
		ids[i] = ai.ID
		h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
	}
	jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	k, err := member.StartKeeper(jctx, m, &member.Trackers{M: m, Trackers: ids, Secret: tok.Secret}, nil, func(*crypto.Certificate) error { return nil })
	cancel()
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	defer k.Close()
	tc := tracker.NewClient(h, trackers)

	// Register as a peer that holds every piece. The tracker counts each
	// claim as soon as its own seed has hashed that piece.
	var info *tracker.Response
	for info == nil {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := tc.Call(rctx, &tracker.Request{Type: tracker.TypeRegister, Task: task, URL: url, Addrs: node.Addrs(h)})
		cancel()
		if err == nil && resp.Length > 0 {
			info = resp
			break
		}
		log.Info("register", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	pieces := int((info.Length + info.PieceSize - 1) / info.PieceSize)
	all := make([]bool, pieces)
	for i := range all {
		all[i] = true
	}
	claim := tracker.NewBitfield(all)
	lie := &liar{mode: mode, length: info.Length, pieceSize: info.PieceSize, log: log}
	m.Host().SetStreamHandler(exchange.ProtocolID, lie.handle)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", httpapi.Healthz)
	srv, err := httpapi.Listen(api, dir, mux, log)
	if err != nil {
		return err
	}
	defer srv.Close()
	if err := node.WriteAddrsFile(filepath.Join(dir, "addrs"), h); err != nil {
		return err
	}
	log.Info("byzantine peer claims every piece", "peer", h.ID(), "task", task.Short(), "pieces", pieces, "mode", mode)

	tk := time.NewTicker(time.Second)
	defer tk.Stop()
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := tc.Call(actx, &tracker.Request{Type: tracker.TypeAnnounce, Task: task, Addrs: node.Addrs(h), Have: claim})
		cancel()
		if err != nil && ctx.Err() == nil {
			log.Info("announce", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tk.C:
		}
	}
}

// liar answers the piece protocol (see package exchange's wire format)
// without holding anything.
type liar struct {
	mode              string
	length, pieceSize int64
	log               *slog.Logger
}

type wireRef struct {
	Task  content.TaskID `json:"task"`
	Index int            `json:"index"`
}

type request struct {
	Pieces []wireRef `json:"pieces"`
}

type header struct {
	Status string `json:"status"`
	Length int64  `json:"length,omitempty"`
}

func (l *liar) handle(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(time.Minute))
	var req request
	if err := wire.ReadMsg(bufio.NewReader(s), 64<<10, &req); err != nil {
		_ = s.Reset()
		return
	}
	l.log.Info("piece request", "from", s.Conn().RemotePeer(), "pieces", len(req.Pieces), "mode", l.mode)
	switch l.mode {
	case "silent":
		// Hold the stream open, say nothing; the client's idle timeout
		// must fire (the deadline above bounds this handler).
		_, _ = io.Copy(io.Discard, s)
		time.Sleep(30 * time.Second)
		_ = s.Reset()
	case "lie":
		for range req.Pieces {
			if wire.WriteMsg(s, header{Status: "not_found"}) != nil {
				return
			}
		}
	default:
		for _, r := range req.Pieces {
			n := l.pieceSize
			if end := int64(r.Index+1) * l.pieceSize; end > l.length {
				n = l.length - int64(r.Index)*l.pieceSize
			}
			if n <= 0 {
				_ = wire.WriteMsg(s, header{Status: "not_found"})
				continue
			}
			if wire.WriteMsg(s, header{Status: "ok", Length: n}) != nil {
				return
			}
			if _, err := io.CopyN(s, rand.Reader, n); err != nil {
				_ = s.Reset()
				return
			}
		}
	}
}
