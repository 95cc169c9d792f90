package exchange

// Loopback throughput benchmarks, reported in MB/s (b.SetBytes):
//
//	go test ./exchange/ -run '^$' -bench . -benchtime 3x
//	DFP2P_BENCH_BYTES=268435456 go test ./exchange/ -run '^$' -bench . -benchtime 3x
//
// Every benchmark moves the same number of bytes (DFP2P_BENCH_BYTES, default
// 1 GiB) produced by a deterministic generator; nothing holds the whole file
// in memory.
//   - BenchmarkRawQUIC: plain quic-go, one stream, receiver discards.
//   - BenchmarkHTTPS: net/http over TLS, one GET, receiver discards.
//   - BenchmarkExchange: two dfp2p hosts (node.New) over QUIC, the server
//     serving 16 MiB pieces from files on disk, the client running
//     benchFetchers concurrent Fetch calls and sha256-hashing every piece
//     against its CID, as the store does, then discarding it.
//   - BenchmarkExchangeNoHash: the same without hashing (protocol cost only).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/ipfs/go-cid"
	"github.com/quic-go/quic-go"
)

const (
	benchPieceSize = 16 << 20
	benchFetchers  = 4 // concurrent Fetch calls
	benchBatch     = 4 // pieces per Fetch call (pipelined)
)

func benchBytes(b *testing.B) int64 {
	if s := os.Getenv("DFP2P_BENCH_BYTES"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			b.Fatalf("bad DFP2P_BENCH_BYTES %q", s)
		}
		return n
	}
	return 1 << 30
}

// genPattern is repeated to make the benchmark data. Its length is not a
// power of two, so pieces differ from each other.
var genPattern = sync.OnceValue(func() []byte {
	r := mrand.New(mrand.NewPCG(1, 2))
	p := make([]byte, 1<<20+4093)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
})

// genReader yields n deterministic bytes, starting at offset off of the
// stream.
type genReader struct{ off, end int64 }

func newGen(n int64) *genReader { return &genReader{end: n} }

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.end {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), g.end-g.off)]
	pat := genPattern()
	n := 0
	for n < len(p) {
		k := copy(p[n:], pat[(g.off+int64(n))%int64(len(pat)):])
		n += k
	}
	g.off += int64(n)
	return n, nil
}

// discard reads r to the end with a large buffer and returns the count.
func discard(r io.Reader, buf []byte) (int64, error) {
	var total int64
	for {
		n, err := r.Read(buf)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func selfSignedTLS(b *testing.B) *tls.Config {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	return &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		NextProtos:   []string{"dfp2p-bench"},
	}
}

func BenchmarkRawQUIC(b *testing.B) {
	size := benchBytes(b)
	ln, err := quic.ListenAddr("127.0.0.1:0", selfSignedTLS(b), &quic.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Server: for every stream, read the 1-byte request, send size bytes.
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		conn, err := ln.Accept(ctx)
		if err != nil {
			return
		}
		defer conn.CloseWithError(0, "")
		buf := make([]byte, copyBufSize)
		for {
			st, err := conn.AcceptStream(ctx)
			if err != nil {
				return
			}
			var one [1]byte
			if _, err := io.ReadFull(st, one[:]); err != nil {
				st.CancelWrite(1)
				continue
			}
			g := newGen(size)
			for {
				n, _ := g.Read(buf)
				if n == 0 {
					break
				}
				if _, err := st.Write(buf[:n]); err != nil {
					break
				}
			}
			st.Close()
		}
	})

	conn, err := quic.DialAddr(ctx, ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"dfp2p-bench"}}, &quic.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	buf := make([]byte, copyBufSize)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		st, err := conn.OpenStreamSync(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Write([]byte{1}); err != nil {
			b.Fatal(err)
		}
		n, err := discard(st, buf)
		if err != nil || n != size {
			b.Fatalf("got %d bytes: %v", n, err)
		}
		st.Close()
	}
	b.StopTimer()
	cancel()
}

func BenchmarkHTTPS(b *testing.B) {
	size := benchBytes(b)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		buf := make([]byte, copyBufSize)
		g := newGen(size)
		for {
			n, _ := g.Read(buf)
			if n == 0 {
				return
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return
			}
		}
	}))
	srv.StartTLS()
	defer srv.Close()
	client := srv.Client()
	buf := make([]byte, copyBufSize)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		resp, err := client.Get(srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		n, err := discard(resp.Body, buf)
		resp.Body.Close()
		if err != nil || n != size {
			b.Fatalf("got %d bytes: %v", n, err)
		}
	}
	b.StopTimer()
	client.CloseIdleConnections()
}

func BenchmarkExchange(b *testing.B)       { benchExchange(b, true, benchPieceSize) }
func BenchmarkExchangeNoHash(b *testing.B) { benchExchange(b, false, benchPieceSize) }

// BenchmarkExchangePieceSize sweeps the piece size (docs/PIECES.md): the same
// bytes, hashed, with pieces of 1 to 16 MiB.
func BenchmarkExchangePieceSize(b *testing.B) {
	for _, ps := range []int64{1 << 20, 2 << 20, 4 << 20, 8 << 20, 16 << 20} {
		b.Run(fmt.Sprintf("%dMiB", ps>>20), func(b *testing.B) { benchExchange(b, true, ps) })
	}
}

// benchData holds the benchmark's piece files, written once per process
// and removed by TestMain.
var benchData struct {
	sync.Mutex
	size int64
	ps   int64
	dir  string
	refs []PieceRef
	src  *fakeSource
}

func removeBenchData() {
	benchData.Lock()
	defer benchData.Unlock()
	if benchData.dir != "" {
		os.RemoveAll(benchData.dir)
	}
}

func benchPieces(b *testing.B, size, pieceSize int64) (*fakeSource, []PieceRef) {
	benchData.Lock()
	defer benchData.Unlock()
	if benchData.size == size && benchData.ps == pieceSize {
		return benchData.src, benchData.refs
	}
	if benchData.dir != "" {
		os.RemoveAll(benchData.dir)
	}
	dir, err := os.MkdirTemp("", "dfp2p-bench-")
	if err != nil {
		b.Fatal(err)
	}
	src := &fakeSource{dir: dir, pieces: map[pieceKey]cid.Cid{}}
	var refs []PieceRef
	g := newGen(size)
	buf := make([]byte, pieceSize)
	for i := 0; ; i++ {
		n, _ := io.ReadFull(g, buf)
		if n == 0 {
			break
		}
		refs = append(refs, src.add(b, testTask, i, buf[:n]))
	}
	benchData.size, benchData.ps, benchData.dir, benchData.refs, benchData.src = size, pieceSize, dir, refs, src
	return src, refs
}

func benchExchange(b *testing.B, hash bool, pieceSize int64) {
	size := benchBytes(b)
	src, refs := benchPieces(b, size, pieceSize)
	srvH, cliH := pair(b)
	srv := NewServer(srvH, src)
	defer srv.Close()
	c := NewClient(cliH)
	// Connect outside the timed loop.
	if err := cliH.Connect(context.Background(), cliH.Peerstore().PeerInfo(srvH.ID())); err != nil {
		b.Fatal(err)
	}

	deliver := func(ref PieceRef, body io.Reader) error {
		if !hash {
			_, err := io.Copy(io.Discard, body)
			return err
		}
		h := sha256.New()
		if _, err := io.Copy(h, body); err != nil {
			return err
		}
		got, _ := content.CIDFromSHA256(h.Sum(nil))
		if !got.Equals(ref.CID) {
			return fmt.Errorf("%w: %s", errBadPiece, ref)
		}
		return nil
	}

	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		batches := make(chan []PieceRef, len(refs)/benchBatch+1)
		for i := 0; i < len(refs); i += benchBatch {
			batches <- refs[i:min(i+benchBatch, len(refs))]
		}
		close(batches)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var total int64
		var firstErr error
		for range benchFetchers {
			wg.Go(func() {
				for batch := range batches {
					for _, r := range c.Fetch(context.Background(), srvH.ID(), batch, deliver) {
						mu.Lock()
						total += r.Bytes
						if r.Err != nil && firstErr == nil {
							firstErr = r.Err
						}
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		if firstErr != nil || total != size {
			b.Fatalf("fetched %d of %d bytes: %v", total, size, firstErr)
		}
	}
	b.StopTimer()
}
