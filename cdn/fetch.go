package cdn

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"golang.org/x/sync/errgroup"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/internal/limit"
)

// PieceWriter is the part of the store the fetcher writes through.
type PieceWriter interface {
	// Begin records the task geometry (creates the task on disk).
	Begin(id content.TaskID, url string, length, pieceSize int64) error
	// WritePiece streams r into piece idx, hashing it; want==cid.Undef means
	// "compute and accept"; returns the CID.
	WritePiece(id content.TaskID, idx int, want cid.Cid, r io.Reader) (cid.Cid, error)
	// Have reports which pieces are already on disk (resume; nil if none).
	Have(id content.TaskID) []bool
	// PieceCID returns the CID of a held piece.
	PieceCID(id content.TaskID, idx int) (cid.Cid, bool)
	// Complete stores the manifest and marks the task complete.
	Complete(id content.TaskID, m *content.Manifest) error
	// NewReader reads the task's bytes in order from off. The fetcher reads
	// only pieces already written, before Complete, to hash the whole file
	// while the rest is still arriving.
	NewReader(id content.TaskID, off int64) (io.ReadCloser, error)
	// Drop deletes a task.
	Drop(id content.TaskID) error
}

// Request names one origin fetch.
type Request struct {
	Task content.TaskID
	URL  string
	// Header is passed to the origin as is (Authorization, Cookie, …);
	// hop-by-hop headers are dropped, and Range and Accept-Encoding are set
	// by the fetcher.
	Header http.Header
	// Digest, if set, is the expected whole-file sha256 in hex ("sha256:" prefix
	// allowed). A mismatch fails the fetch with ErrDigestMismatch and drops the
	// task.
	Digest string
}

// Observer gets events as a fetch progresses. Calls for one fetch are
// serialized. Started comes once, after the task exists in the store and
// before any Piece; Piece comes once per piece as soon as it is on disk
// (pieces already held when the fetch starts are reported right after
// Started). Calls are made from the fetching goroutines: keep them short.
type Observer interface {
	Started(task content.TaskID, length, pieceSize int64)
	Piece(task content.TaskID, idx int, c cid.Cid)
}

// Fetcher reads origins into a PieceWriter. It is safe for concurrent use for
// different tasks; it does not stop two concurrent Fetch calls for the same
// task (Seed does).
type Fetcher struct {
	w        PieceWriter
	client   *http.Client
	parallel int
	retries  int
	timeout  time.Duration
	log      *slog.Logger
	counter  func(int64)
	limit    limit.Group
	tempDir  string

	// Tunables kept unexported (tests shrink them).
	backoff    time.Duration // delay before the first retry; doubles
	maxBackoff time.Duration
	probeSize  int64 // length of the first ranged GET; <= content.MinPieceSize
}

// NewFetcher returns a Fetcher that writes into w.
func NewFetcher(w PieceWriter, opts ...Option) *Fetcher {
	f := &Fetcher{
		w:          w,
		parallel:   DefaultParallel,
		retries:    DefaultRetries,
		timeout:    DefaultTimeout,
		log:        slog.New(slog.DiscardHandler),
		backoff:    250 * time.Millisecond,
		maxBackoff: 10 * time.Second,
		probeSize:  content.MinPieceSize,
	}
	for _, o := range opts {
		o.applyFetcher(f)
	}
	if f.client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = max(f.parallel, 8)
		tr.DisableCompression = true
		f.client = &http.Client{Transport: tr}
	}
	return f
}

// Fetch reads the whole task from the origin into the PieceWriter and returns
// its manifest, after storing it with Complete. Pieces already held are not
// fetched again. Origin statuses that end the fetch come back as
// *OriginError; a digest mismatch as ErrDigestMismatch. obs may be nil.
func (f *Fetcher) Fetch(ctx context.Context, req Request, obs Observer) (*content.Manifest, error) {
	if !req.Task.Valid() {
		return nil, fmt.Errorf("cdn: invalid task id %q", req.Task)
	}
	u, err := content.ParseURL(req.URL)
	if err != nil {
		if errors.Is(err, content.ErrUnsupportedScheme) {
			return nil, fmt.Errorf("cdn: %w", err)
		}
		return nil, fmt.Errorf("cdn: invalid origin URL %s: want an absolute http(s) URL with a host and no credentials", redactString(req.URL))
	}
	digest := strings.ToLower(strings.TrimPrefix(req.Digest, "sha256:"))
	if digest != "" && !content.TaskID(digest).Valid() {
		return nil, fmt.Errorf("cdn: invalid digest %q: want 64 hex characters", req.Digest)
	}
	norm, err := content.NormalizeURL(req.URL, content.DefaultQueryFilter)
	if err != nil {
		return nil, fmt.Errorf("cdn: invalid origin URL %s", redactURL(u))
	}
	if obs == nil {
		obs = nopObserver{}
	}
	t := &fetch{
		f:      f,
		id:     req.Task,
		u:      u,
		norm:   norm,
		hdr:    originHeader(req.Header),
		obs:    &syncObserver{o: obs},
		digest: digest,
	}
	start := time.Now()
	log := f.log.With("task", req.Task.Short(), "url", redactURL(u))
	log.Debug("cdn: fetch starting")
	m, err := t.run(ctx)
	if err != nil {
		log.Info("cdn: fetch failed", "err", err, "elapsed", time.Since(start))
		return nil, err
	}
	log.Info("cdn: fetch done", "length", m.Length, "pieces", len(m.Pieces), "elapsed", time.Since(start))
	return m, nil
}

type nopObserver struct{}

func (nopObserver) Started(content.TaskID, int64, int64) {}
func (nopObserver) Piece(content.TaskID, int, cid.Cid)   {}

type syncObserver struct {
	mu sync.Mutex
	o  Observer
}

func (s *syncObserver) Started(id content.TaskID, length, pieceSize int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.o.Started(id, length, pieceSize)
}

func (s *syncObserver) Piece(id content.TaskID, idx int, c cid.Cid) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.o.Piece(id, idx, c)
}

// mode is how the origin is read, decided by the first response.
type mode int

const (
	modeRanged mode = iota // 206: parallel ranged GETs
	modeStream             // 200 with a length: one sequential stream
	modeSpool              // 200 without a length: spool, then cut
	modeEmpty              // zero-length file
)

// fetch is the state of one Fetch call.
type fetch struct {
	f      *Fetcher
	id     content.TaskID
	u      *url.URL
	norm   string
	hdr    http.Header
	obs    *syncObserver
	digest string

	length    int64
	pieceSize int64
	n         int
	held      []bool    // held before this fetch (not refetched)
	cids      []cid.Cid // each index written by one goroutine; read after Wait
	hash      *wholeHasher
}

func (t *fetch) run(ctx context.Context) (*content.Manifest, error) {
	w := t.f.w
	held0 := w.Have(t.id)
	p, err := t.probe(ctx, len(held0) > 0 && held0[0])
	if err != nil {
		return nil, err
	}
	defer p.close()

	length := p.length
	if p.mode == modeSpool {
		file, n, err := t.spool(ctx, p.resp)
		p.resp = nil
		if err != nil {
			return nil, err
		}
		defer func() {
			file.Close()
			os.Remove(file.Name())
		}()
		p.file, length = file, n
	}
	if err := t.begin(length); err != nil {
		return nil, err
	}

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return t.hash.run(gctx) })
	g.Go(func() error {
		switch p.mode {
		case modeRanged:
			return t.ranged(gctx, p.resp, p.prefix)
		case modeStream:
			r := p.resp
			p.resp = nil
			return t.sequential(gctx, r)
		case modeSpool:
			return t.fromFile(gctx, p.file)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		if errors.Is(err, ErrOriginChanged) {
			t.drop()
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("cdn: fetch %s: %w", t.id.Short(), context.Cause(ctx))
		}
		return nil, err
	}

	sum := hex.EncodeToString(t.hash.h.Sum(nil))
	if t.digest != "" && sum != t.digest {
		t.drop()
		return nil, fmt.Errorf("%w: want %s, origin sent %s", ErrDigestMismatch, t.digest, sum)
	}
	m := &content.Manifest{
		Version:   content.ManifestVersion,
		TaskID:    t.id,
		Length:    t.length,
		PieceSize: t.pieceSize,
		Pieces:    t.cids,
		SHA256:    sum,
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("cdn: %w", err)
	}
	if err := w.Complete(t.id, m); err != nil {
		return nil, fmt.Errorf("cdn: completing task %s: %w", t.id.Short(), err)
	}
	return m, nil
}

func (t *fetch) drop() {
	if err := t.f.w.Drop(t.id); err != nil {
		t.f.log.Warn("cdn: dropping task", "task", t.id.Short(), "err", err)
	}
}

// probeResult is what the first response told us.
type probeResult struct {
	mode   mode
	length int64     // known unless modeSpool
	resp   *response // body to continue with (ranged: bytes [0, prefix))
	prefix int64
	file   *os.File
}

func (p *probeResult) close() {
	if p.resp != nil {
		p.resp.Body.Close()
	}
}

// probe sends the first GET, asking for the first probeSize bytes (one byte if
// piece 0 is already held), and decides how to read the origin. If the
// origin's answer to a range does not tell the length, it falls back to a GET
// without Range.
func (t *fetch) probe(ctx context.Context, have0 bool) (*probeResult, error) {
	want := t.f.probeSize
	if have0 {
		want = 1
	}
	var res *probeResult
	err := t.f.retry(ctx, "first request", func() error {
		var again bool
		var err error
		res, again, err = t.probeOnce(ctx, fmt.Sprintf("bytes=0-%d", want-1))
		if again {
			res, _, err = t.probeOnce(ctx, "")
		}
		return err
	}, nil)
	if err != nil {
		return nil, err
	}
	if res.length > content.MaxPieces*content.MaxPieceSize {
		res.close()
		return nil, fmt.Errorf("cdn: origin file of %d bytes is too large", res.length)
	}
	return res, nil
}

// probeOnce sends one first request; again means "ask without Range".
func (t *fetch) probeOnce(ctx context.Context, rng string) (res *probeResult, again bool, err error) {
	r, err := t.f.do(ctx, t.u, t.hdr, rng)
	if err != nil {
		return nil, false, err
	}
	switch r.StatusCode {
	case http.StatusPartialContent:
		from, last, total, ok := contentRange(r.Header.Get("Content-Range"))
		if rng != "" && ok && from == 0 && total < 0 {
			r.Body.Close() // ranges work, but the length is not given
			return nil, true, nil
		}
		if rng == "" || !ok || from != 0 || total <= 0 {
			r.Body.Close()
			return nil, false, retryable(fmt.Errorf("cdn: origin answered %q with Content-Range %q", rng, r.Header.Get("Content-Range")))
		}
		// Only the start of piece 0 is used, whatever the origin sent.
		prefix := min(last+1, content.PieceSize(total))
		return &probeResult{mode: modeRanged, length: total, resp: r, prefix: prefix}, false, nil
	case http.StatusOK:
		switch {
		case r.ContentLength < 0:
			return &probeResult{mode: modeSpool, length: -1, resp: r}, false, nil
		case r.ContentLength == 0:
			r.Body.Close()
			return &probeResult{mode: modeEmpty}, false, nil
		}
		return &probeResult{mode: modeStream, length: r.ContentLength, resp: r}, false, nil
	case http.StatusRequestedRangeNotSatisfiable:
		if _, _, total, ok := contentRange(r.Header.Get("Content-Range")); ok && total == 0 {
			r.Body.Close()
			return &probeResult{mode: modeEmpty}, false, nil
		}
		if rng != "" {
			r.Body.Close()
			return nil, true, nil
		}
	}
	return nil, false, statusError(r, t.u)
}

// begin records the geometry in the store and announces it and the pieces
// already held.
func (t *fetch) begin(length int64) error {
	w := t.f.w
	t.length = length
	t.pieceSize = content.PieceSize(length)
	t.n = content.NumPieces(length, t.pieceSize)
	if t.n > content.MaxPieces {
		return fmt.Errorf("cdn: origin file of %d bytes is too large", length)
	}
	have := w.Have(t.id)
	if have != nil && len(have) != t.n {
		t.f.log.Info("cdn: origin length changed since the task was begun; starting over", "task", t.id.Short())
		if err := w.Drop(t.id); err != nil {
			return fmt.Errorf("cdn: dropping stale task %s: %w", t.id.Short(), err)
		}
		have = nil
	}
	err := w.Begin(t.id, t.norm, t.length, t.pieceSize)
	if err != nil && have != nil {
		// The task exists with as many pieces but another length or piece
		// size (the origin changed by less than a piece, or the task was
		// begun under another piece-size rule): its pieces do not fit.
		t.f.log.Info("cdn: task was begun with other geometry; starting over", "task", t.id.Short(), "err", err)
		if err := w.Drop(t.id); err != nil {
			return fmt.Errorf("cdn: dropping stale task %s: %w", t.id.Short(), err)
		}
		have = nil
		err = w.Begin(t.id, t.norm, t.length, t.pieceSize)
	}
	if err != nil {
		return fmt.Errorf("cdn: beginning task %s: %w", t.id.Short(), err)
	}
	t.held = make([]bool, t.n)
	t.cids = make([]cid.Cid, t.n)
	for i, ok := range have {
		if !ok {
			continue
		}
		if c, ok := w.PieceCID(t.id, i); ok && c.Defined() {
			t.held[i], t.cids[i] = true, c
		}
	}
	t.hash = newWholeHasher(w, t.id, t.length, t.pieceSize, t.n)
	t.obs.Started(t.id, t.length, t.pieceSize)
	for i, ok := range t.held {
		if ok {
			t.hash.mark(i)
			t.obs.Piece(t.id, i, t.cids[i])
		}
	}
	return nil
}

// writePiece streams src (exactly the piece's bytes) into the store and
// announces the piece. Origin failures come back as they are (retryable or
// not); store failures are final.
func (t *fetch) writePiece(ctx context.Context, idx int, src *exact) error {
	c, err := t.f.w.WritePiece(t.id, idx, cid.Undef, src)
	if err != nil {
		if src.err != nil {
			return src.err
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		return fmt.Errorf("cdn: storing piece %d of %s: %w", idx, t.id.Short(), err)
	}
	if src.n != 0 {
		return fmt.Errorf("cdn: store returned before the end of piece %d (%d bytes unread)", idx, src.n)
	}
	t.cids[idx] = c
	t.hash.mark(idx)
	t.obs.Piece(t.id, idx, c)
	return nil
}

// ranged fetches the missing pieces with up to f.parallel ranged GETs at once.
// prefix holds the first prefixLen bytes of the file, used for piece 0.
func (t *fetch) ranged(ctx context.Context, prefix *response, prefixLen int64) error {
	var missing []int
	for i, ok := range t.held {
		if !ok {
			missing = append(missing, i)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan int)
	g.Go(func() error {
		defer close(work)
		for _, i := range missing {
			select {
			case work <- i:
			case <-gctx.Done():
				return nil
			}
		}
		return nil
	})
	for range min(t.f.parallel, len(missing)) {
		g.Go(func() error {
			for i := range work {
				var p *response
				if i == 0 {
					p = prefix
				}
				if err := t.rangedPiece(gctx, i, p, prefixLen); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// rangedPiece fetches piece idx with one ranged GET (retried). If prefix is
// set, the first attempt reads the piece's first prefixLen bytes from it and
// only the rest from a new request.
func (t *fetch) rangedPiece(ctx context.Context, idx int, prefix *response, prefixLen int64) error {
	off, size := content.PieceRange(t.length, t.pieceSize, idx)
	return t.f.retry(ctx, fmt.Sprintf("piece %d", idx), func() error {
		var src *exact
		if p := prefix; p != nil {
			prefix = nil
			defer p.Body.Close()
			head := min(prefixLen, size)
			rest := &lazyRange{ctx: ctx, t: t, off: off + head, n: size - head}
			defer rest.Close()
			src = &exact{r: io.MultiReader(&exact{r: p.Body, n: head}, rest), n: size}
		} else {
			r, err := t.openRange(ctx, off, size)
			if err != nil {
				return err
			}
			defer r.Body.Close()
			src = &exact{r: r.Body, n: size}
		}
		return t.writePiece(ctx, idx, src)
	}, nil)
}

// openRange GETs bytes [off, off+n) and checks that the origin really sent
// that range.
func (t *fetch) openRange(ctx context.Context, off, n int64) (*response, error) {
	end := off + n - 1
	rng := fmt.Sprintf("bytes=%d-%d", off, end)
	r, err := t.f.do(ctx, t.u, t.hdr, rng)
	if err != nil {
		return nil, err
	}
	switch r.StatusCode {
	case http.StatusPartialContent:
		first, last, total, ok := contentRange(r.Header.Get("Content-Range"))
		if ok && total >= 0 && total != t.length {
			r.Body.Close()
			return nil, fmt.Errorf("%w: length was %d, now %d", ErrOriginChanged, t.length, total)
		}
		if !ok || first != off || last != end || (r.ContentLength >= 0 && r.ContentLength != n) {
			r.Body.Close()
			return nil, retryable(fmt.Errorf("cdn: origin answered %q with Content-Range %q", rng, r.Header.Get("Content-Range")))
		}
		return r, nil
	case http.StatusOK:
		r.Body.Close()
		return nil, retryable(fmt.Errorf("cdn: origin ignored %q (200 instead of 206)", rng))
	}
	return nil, statusError(r, t.u)
}

// lazyRange opens a ranged GET on its first read.
type lazyRange struct {
	ctx    context.Context
	t      *fetch
	off, n int64
	r      *response
	body   io.Reader
}

func (l *lazyRange) Read(p []byte) (int, error) {
	if l.body == nil {
		if l.n == 0 {
			return 0, io.EOF
		}
		r, err := l.t.openRange(l.ctx, l.off, l.n)
		if err != nil {
			return 0, err
		}
		l.r, l.body = r, &exact{r: r.Body, n: l.n}
	}
	return l.body.Read(p)
}

func (l *lazyRange) Close() error {
	if l.r != nil {
		return l.r.Body.Close()
	}
	return nil
}

// sequential reads the file in one stream, cutting it into pieces. After a
// failure it asks for the rest with "Range: bytes=off-" and, if the origin
// sends the whole body again, skips what it already has.
func (t *fetch) sequential(ctx context.Context, first *response) error {
	next := 0
	return t.f.retry(ctx, "stream", func() error {
		r := first
		first = nil
		for next < t.n && t.held[next] {
			next++
		}
		if next == t.n {
			if r != nil {
				r.Body.Close()
			}
			return nil
		}
		off, _ := content.PieceRange(t.length, t.pieceSize, next)
		if r == nil {
			rng := ""
			if off > 0 {
				rng = fmt.Sprintf("bytes=%d-", off)
			}
			var err error
			if r, err = t.f.do(ctx, t.u, t.hdr, rng); err != nil {
				return err
			}
		}
		defer r.Body.Close()
		switch r.StatusCode {
		case http.StatusOK:
			if r.ContentLength >= 0 && r.ContentLength != t.length {
				return fmt.Errorf("%w: length was %d, now %d", ErrOriginChanged, t.length, r.ContentLength)
			}
			if off > 0 {
				if _, err := io.Copy(io.Discard, &exact{r: r.Body, n: off}); err != nil {
					return err
				}
			}
		case http.StatusPartialContent:
			from, last, total, ok := contentRange(r.Header.Get("Content-Range"))
			if ok && total >= 0 && total != t.length {
				return fmt.Errorf("%w: length was %d, now %d", ErrOriginChanged, t.length, total)
			}
			if !ok || from != off || last != t.length-1 {
				return retryable(fmt.Errorf("cdn: origin answered bytes=%d- with Content-Range %q", off, r.Header.Get("Content-Range")))
			}
		default:
			return statusError(r, t.u)
		}
		for ; next < t.n; next++ {
			_, size := content.PieceRange(t.length, t.pieceSize, next)
			src := &exact{r: r.Body, n: size}
			if t.held[next] {
				if _, err := io.Copy(io.Discard, src); err != nil {
					return err
				}
				continue
			}
			if err := t.writePiece(ctx, next, src); err != nil {
				return err
			}
		}
		return nil
	}, func() int64 { return int64(next) })
}

// spool copies a body of unknown length to a temporary file.
func (t *fetch) spool(ctx context.Context, first *response) (*os.File, int64, error) {
	file, err := os.CreateTemp(t.f.tempDir, "dfp2p-cdn-spool-*")
	if err != nil {
		if first != nil {
			first.Body.Close()
		}
		return nil, 0, fmt.Errorf("cdn: spooling: %w", err)
	}
	const limit = content.MaxPieces * content.MaxPieceSize
	var size int64
	err = t.f.retry(ctx, "spool", func() error {
		r := first
		first = nil
		if r == nil {
			var err error
			if r, err = t.f.do(ctx, t.u, t.hdr, ""); err != nil {
				return err
			}
			if r.StatusCode != http.StatusOK {
				return statusError(r, t.u)
			}
		}
		defer r.Body.Close()
		if _, err := file.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if err := file.Truncate(0); err != nil {
			return err
		}
		n, err := io.Copy(file, io.LimitReader(r.Body, limit+1))
		if err != nil {
			return err // origin errors are retryable, disk errors are not
		}
		if n > limit {
			return fmt.Errorf("cdn: origin file is larger than %d bytes", int64(limit))
		}
		if r.ContentLength >= 0 && n != r.ContentLength {
			return retryable(fmt.Errorf("cdn: origin body ended at %d of %d bytes", n, r.ContentLength))
		}
		size = n
		return nil
	}, nil)
	if err != nil {
		file.Close()
		os.Remove(file.Name())
		return nil, 0, err
	}
	return file, size, nil
}

// fromFile cuts a spooled file into pieces.
func (t *fetch) fromFile(ctx context.Context, file *os.File) error {
	for i, ok := range t.held {
		if ok {
			continue
		}
		off, size := content.PieceRange(t.length, t.pieceSize, i)
		src := &exact{r: ctxReader{ctx, io.NewSectionReader(file, off, size)}, n: size}
		if err := t.writePiece(ctx, i, src); err != nil {
			return err
		}
	}
	return nil
}

// retry runs fn until it succeeds, fails with an error not marked retryable,
// or has been retried f.retries times without progress (progress may be nil).
func (f *Fetcher) retry(ctx context.Context, what string, fn func() error, progress func() int64) error {
	var last int64
	if progress != nil {
		last = progress()
	}
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		var re *retryError
		if !errors.As(err, &re) {
			return err
		}
		if progress != nil {
			if p := progress(); p != last {
				last, attempt = p, 0
			}
		}
		if attempt >= f.retries {
			return re.err
		}
		d := f.backoff << attempt
		if d > f.maxBackoff || d <= 0 {
			d = f.maxBackoff
		}
		if re.after > d {
			d = min(re.after, f.maxBackoff)
		}
		f.log.Debug("cdn: retrying", "what", what, "attempt", attempt+1, "in", d, "err", err)
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return context.Cause(ctx)
		}
	}
}

// wholeHasher computes the whole file's sha256 from the store, following the
// contiguous prefix of pieces on disk, so it finishes soon after the last
// piece lands.
type wholeHasher struct {
	w         PieceWriter
	id        content.TaskID
	length    int64
	pieceSize int64
	n         int
	h         hash.Hash

	mu    sync.Mutex
	ready []bool
	wake  chan struct{}
}

func newWholeHasher(w PieceWriter, id content.TaskID, length, pieceSize int64, n int) *wholeHasher {
	return &wholeHasher{w: w, id: id, length: length, pieceSize: pieceSize, n: n,
		h: content.NewHasher(), ready: make([]bool, n), wake: make(chan struct{}, 1)}
}

func (h *wholeHasher) mark(i int) {
	h.mu.Lock()
	h.ready[i] = true
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

func (h *wholeHasher) run(ctx context.Context) error {
	next := 0
	for next < h.n {
		h.mu.Lock()
		end := next
		for end < h.n && h.ready[end] {
			end++
		}
		h.mu.Unlock()
		if end == next {
			select {
			case <-h.wake:
				continue
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
		off, _ := content.PieceRange(h.length, h.pieceSize, next)
		lastOff, lastSize := content.PieceRange(h.length, h.pieceSize, end-1)
		r, err := h.w.NewReader(h.id, off)
		if err != nil {
			return fmt.Errorf("cdn: reading back %s: %w", h.id.Short(), err)
		}
		_, err = io.CopyN(h.h, ctxReader{ctx, r}, lastOff+lastSize-off)
		r.Close()
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("cdn: reading back %s: %w", h.id.Short(), err)
		}
		next = end
	}
	return nil
}
