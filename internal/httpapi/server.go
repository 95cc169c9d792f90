package httpapi

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/dfp2p/dfp2p/internal/fsutil"
)

// Server is a component's HTTP API on one listener. It owns its serving
// goroutine; Close stops it and waits.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// ListenOption configures Listen.
type ListenOption func(*listenConfig)

type listenConfig struct{ certFile, keyFile string }

// WithTLS serves HTTPS (TLS 1.2 or later) with the certificate and key in
// these PEM files. Empty names leave the API on plain HTTP.
func WithTLS(certFile, keyFile string) ListenOption {
	return func(c *listenConfig) { c.certFile, c.keyFile = certFile, keyFile }
}

// Listen serves h on addr (port 0 picks a free port). When dataDir is not
// empty, the bound address is written to DIR/api atomically, for scripts and
// test harnesses that started the process with port 0.
func Listen(addr, dataDir string, h http.Handler, log *slog.Logger, opts ...ListenOption) (*Server, error) {
	var lc listenConfig
	for _, o := range opts {
		o(&lc)
	}
	var tlsCfg *tls.Config
	if lc.certFile != "" || lc.keyFile != "" {
		cert, err := tls.LoadX509KeyPair(lc.certFile, lc.keyFile)
		if err != nil {
			return nil, fmt.Errorf("api TLS certificate: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("api listen %s: %w", addr, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	if dataDir != "" {
		if err := fsutil.WriteFileAtomic(filepath.Join(dataDir, "api"), []byte(ln.Addr().String()+"\n"), 0o644); err != nil {
			ln.Close()
			return nil, err
		}
	}
	s := &Server{
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
			MaxHeaderBytes: 64 << 10},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("api server", "err", err)
		}
	}()
	return s, nil
}

// Addr is the bound address; "" for a nil Server (API turned off).
func (s *Server) Addr() string {
	if s == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Close shuts the server down, giving open requests 5 s, and waits. A nil
// Server is a no-op.
func (s *Server) Close() {
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	<-s.done
}
