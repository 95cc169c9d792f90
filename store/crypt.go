package store

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/dfp2p/dfp2p/content"
	"golang.org/x/crypto/chacha20poly1305"
)

// Cipher names accepted by WithEncryption.
const (
	CipherAES256GCM         = "aes-256-gcm"
	CipherXChaCha20Poly1305 = "xchacha20-poly1305"
)

// Ciphers lists the cipher names WithEncryption accepts.
var Ciphers = []string{CipherAES256GCM, CipherXChaCha20Poly1305}

// KeySize is the length in bytes of an encryption key.
const KeySize = 32

// On-disk format of an encrypted piece file (see the package doc).
const (
	encMagic   = "DFPE"
	encVersion = 1
	segShift   = 16
	segSize    = 1 << segShift // plaintext bytes per segment
	saltSize   = 32
	tagSize    = 16
	fixedSize  = 8 + saltSize // magic, version, cipher, segment shift, reserved, salt
	headerSize = fixedSize + tagSize

	// Kinds in a segment's additional data.
	adSegment = 0
	adFinal   = 1
	adHeader  = 2
	// headerCounter is the nonce counter of the header tag; segments count
	// from 0 and never reach it.
	headerCounter = math.MaxUint64

	maxKeyFile = 4 << 10
)

type cipherSpec struct {
	name  string
	id    byte
	nonce int
	new   func(key []byte) (cipher.AEAD, error)
}

var cipherSpecs = []*cipherSpec{
	{CipherAES256GCM, 1, 12, newGCM},
	{CipherXChaCha20Poly1305, 2, chacha20poly1305.NonceSizeX, chacha20poly1305.NewX},
}

func newGCM(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

func cipherName(id byte) string {
	for _, c := range cipherSpecs {
		if c.id == id {
			return c.name
		}
	}
	return fmt.Sprintf("unknown cipher %d", id)
}

// WithEncryption encrypts piece files at rest with cipher (one of Ciphers)
// under key (KeySize bytes; see LoadKeyFile). Open fails with an ErrInvalid
// error for a key of another length or an unknown cipher. Both empty leaves
// encryption off (the default); a key with no cipher means aes-256-gcm.
// Piece files written without encryption, or
// with another key or cipher, are dropped at Open.
func WithEncryption(key []byte, cipher string) Option {
	key = bytes.Clone(key)
	if len(key) > 0 && cipher == "" {
		cipher = CipherAES256GCM
	}
	return func(o *options) { o.encKey, o.encCipher = key, cipher }
}

// crypter holds a store's encryption settings.
type crypter struct {
	key  []byte
	spec *cipherSpec
}

func newCrypter(key []byte, name string) (*crypter, error) {
	var spec *cipherSpec
	for _, c := range cipherSpecs {
		if strings.EqualFold(c.name, name) {
			spec = c
		}
	}
	if spec == nil {
		return nil, fmt.Errorf("%w: unknown cipher %q (want one of %s)", ErrInvalid, name, strings.Join(Ciphers, ", "))
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("%w: encryption key is %d bytes, want %d", ErrInvalid, len(key), KeySize)
	}
	if _, err := spec.new(key); err != nil {
		return nil, fmt.Errorf("store: cipher %s: %w", spec.name, err)
	}
	return &crypter{key: key, spec: spec}, nil
}

// badFileError is a piece file that is not a valid encrypted piece for this
// store (wrong format, key, cipher or piece, truncated or tampered). It is an
// ErrBadPiece.
type badFileError struct{ msg string }

func (e *badFileError) Error() string        { return "store: bad piece: " + e.msg }
func (e *badFileError) Is(target error) bool { return target == ErrBadPiece }

func badFile(format string, args ...any) error {
	return &badFileError{fmt.Sprintf(format, args...)}
}

func numSegments(n int64) uint64 {
	if n <= 0 {
		return 1
	}
	return uint64((n + segSize - 1) / segSize)
}

// encodedSize is the size of the encrypted file of an n-byte piece.
func encodedSize(n int64) int64 {
	return headerSize + n + int64(numSegments(n))*tagSize
}

// fileCipher seals or opens the segments of one piece file.
type fileCipher struct {
	aead  cipher.AEAD
	nonce []byte // per-file prefix, then the 8-byte counter
	ad    []byte // fixed part, then kind (1 byte) and segment (8 bytes)
	nseg  uint64
}

// fileCipher derives the cipher of one piece file from its header's first
// fixedSize bytes.
func (c *crypter) fileCipher(hdr []byte, id content.TaskID, idx int, n int64) (*fileCipher, error) {
	spec := c.spec
	okm, err := hkdf.Key(sha256.New, c.key, hdr[8:fixedSize], "dfp2p store piece v1 "+spec.name, KeySize+spec.nonce-8)
	if err != nil {
		return nil, fmt.Errorf("store: deriving key: %w", err)
	}
	aead, err := spec.new(okm[:KeySize])
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	nonce := make([]byte, spec.nonce)
	copy(nonce, okm[KeySize:])
	ad := make([]byte, 0, fixedSize+1+len(id)+8+8+1+8)
	ad = append(ad, hdr[:fixedSize]...)
	ad = append(ad, byte(len(id)))
	ad = append(ad, id...)
	ad = binary.BigEndian.AppendUint64(ad, uint64(idx))
	ad = binary.BigEndian.AppendUint64(ad, uint64(n))
	ad = append(ad, 0)
	ad = binary.BigEndian.AppendUint64(ad, 0)
	return &fileCipher{aead: aead, nonce: nonce, ad: ad, nseg: numSegments(n)}, nil
}

// set points the nonce and additional data at segment seg (or the header).
func (fc *fileCipher) set(kind byte, seg uint64) {
	binary.BigEndian.PutUint64(fc.nonce[len(fc.nonce)-8:], seg)
	fc.ad[len(fc.ad)-9] = kind
	binary.BigEndian.PutUint64(fc.ad[len(fc.ad)-8:], seg)
}

func (fc *fileCipher) setSegment(seg uint64) {
	kind := byte(adSegment)
	if seg == fc.nseg-1 {
		kind = adFinal
	}
	fc.set(kind, seg)
}

// newHeader makes the header of a new piece file with a fresh random salt.
func (c *crypter) newHeader(id content.TaskID, idx int, n int64) ([]byte, *fileCipher, error) {
	hdr := make([]byte, headerSize)
	copy(hdr, encMagic)
	hdr[4], hdr[5], hdr[6], hdr[7] = encVersion, c.spec.id, segShift, 0
	if _, err := rand.Read(hdr[8:fixedSize]); err != nil {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	fc, err := c.fileCipher(hdr, id, idx, n)
	if err != nil {
		return nil, nil, err
	}
	fc.set(adHeader, headerCounter)
	fc.aead.Seal(hdr[:fixedSize], fc.nonce, nil, fc.ad) // the tag fills hdr[fixedSize:]
	return hdr, fc, nil
}

// parseHeader checks a piece file's header against this store's settings and
// the piece it is named for; errors are badFileErrors.
func (c *crypter) parseHeader(hdr []byte, id content.TaskID, idx int, n int64) (*fileCipher, error) {
	switch {
	case len(hdr) < len(encMagic) || string(hdr[:len(encMagic)]) != encMagic:
		return nil, badFile("unencrypted piece file (no %s header) in a store that uses encryption", encMagic)
	case len(hdr) < headerSize:
		return nil, badFile("encrypted piece file shorter than its header")
	case hdr[4] != encVersion:
		return nil, badFile("encrypted piece file of unsupported format version %d", hdr[4])
	case hdr[5] != c.spec.id:
		return nil, badFile("piece file encrypted with %s, the store uses %s", cipherName(hdr[5]), c.spec.name)
	case hdr[6] != segShift || hdr[7] != 0:
		return nil, badFile("encrypted piece file with unsupported segment size 2^%d", hdr[6])
	}
	fc, err := c.fileCipher(hdr, id, idx, n)
	if err != nil {
		return nil, err
	}
	fc.set(adHeader, headerCounter)
	if _, err := fc.aead.Open(nil, fc.nonce, hdr[fixedSize:headerSize], fc.ad); err != nil {
		return nil, badFile("header of piece %d of task %s fails authentication (wrong key, or the file belongs to another piece)", idx, id.Short())
	}
	return fc, nil
}

var segPool = sync.Pool{New: func() any { b := make([]byte, segSize+tagSize); return &b }}

// encWriter encrypts the plaintext of one piece (exactly n bytes) to w.
type encWriter struct {
	w       io.Writer
	fc      *fileCipher
	bp      *[]byte
	buf     []byte // pending plaintext of the current segment
	seg     uint64
	n, done int64
}

// newEncWriter writes the header to w.
func (c *crypter) newEncWriter(w io.Writer, id content.TaskID, idx int, n int64) (*encWriter, error) {
	hdr, fc, err := c.newHeader(id, idx, n)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(hdr); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	bp := segPool.Get().(*[]byte)
	return &encWriter{w: w, fc: fc, bp: bp, buf: (*bp)[:0], n: n}, nil
}

func (e *encWriter) Write(p []byte) (int, error) {
	total := len(p)
	if e.done+int64(total) > e.n {
		return 0, fmt.Errorf("store: encrypting: more than %d bytes", e.n)
	}
	for len(p) > 0 {
		if len(e.buf) == 0 && len(p) >= segSize {
			// A whole segment: seal it straight from p.
			if err := e.seal(p[:segSize]); err != nil {
				return total - len(p), err
			}
			p = p[segSize:]
			e.done += segSize
			continue
		}
		k := copy((*e.bp)[len(e.buf):segSize], p)
		e.buf = e.buf[:len(e.buf)+k]
		p = p[k:]
		e.done += int64(k)
		if len(e.buf) == segSize {
			if err := e.seal(e.buf); err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

// seal encrypts one segment into the buffer (in place if plain is the
// buffer) and writes it.
func (e *encWriter) seal(plain []byte) error {
	if e.seg >= e.fc.nseg {
		return fmt.Errorf("store: encrypting: too many segments")
	}
	e.fc.setSegment(e.seg)
	out := e.fc.aead.Seal((*e.bp)[:0], e.fc.nonce, plain, e.fc.ad)
	e.seg++
	e.buf = (*e.bp)[:0]
	if _, err := e.w.Write(out); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// finish seals the last segment once all n bytes are written.
func (e *encWriter) finish() error {
	if e.done != e.n {
		return fmt.Errorf("store: encrypting: %d bytes written, want %d", e.done, e.n)
	}
	if e.seg < e.fc.nseg {
		if err := e.seal(e.buf); err != nil {
			return err
		}
	}
	if e.seg != e.fc.nseg {
		return fmt.Errorf("store: encrypting: %d segments written, want %d", e.seg, e.fc.nseg)
	}
	return nil
}

func (e *encWriter) release() {
	if e.bp != nil {
		segPool.Put(e.bp)
		e.bp, e.buf = nil, nil
	}
}

// decReader reads the plaintext of an encrypted piece file, authenticating
// each segment before returning any of its bytes.
type decReader struct {
	f      *os.File
	fc     *fileCipher
	id     content.TaskID
	idx    int
	n      int64
	bp     *[]byte
	plain  []byte // authenticated bytes not yet returned
	seg    uint64 // next segment to read
	skip   int    // plaintext bytes to drop from the next segment
	err    error
	closed bool
	onBad  func(error) // called once when a segment fails authentication
}

// openReader checks f's size and header and returns a reader positioned at
// the piece's first byte. Errors for a file that is not right are
// badFileErrors; the caller still owns f on error.
func (c *crypter) openReader(f *os.File, id content.TaskID, idx int, n int64) (*decReader, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	hdr := make([]byte, headerSize)
	k, err := io.ReadFull(f, hdr)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("store: %w", err)
	}
	fc, err := c.parseHeader(hdr[:k], id, idx, n)
	if err != nil {
		return nil, err
	}
	if want := encodedSize(n); st.Size() != want {
		return nil, badFile("encrypted file of piece %d of task %s has %d bytes, want %d (truncated?)", idx, id.Short(), st.Size(), want)
	}
	return &decReader{f: f, fc: fc, id: id, idx: idx, n: n}, nil
}

// seekPlain positions the reader at plaintext offset off.
func (d *decReader) seekPlain(off int64) error {
	if off < 0 || off > d.n {
		return fmt.Errorf("%w: offset %d outside piece of %d bytes", ErrInvalid, off, d.n)
	}
	seg := off / segSize
	if _, err := d.f.Seek(headerSize+seg*(segSize+tagSize), io.SeekStart); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	d.seg, d.skip, d.plain = uint64(seg), int(off%segSize), nil
	return nil
}

func (d *decReader) Read(p []byte) (int, error) {
	if d.closed {
		return 0, os.ErrClosed
	}
	if d.err != nil {
		return 0, d.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for len(d.plain) == 0 {
		if d.seg >= d.fc.nseg {
			return 0, io.EOF
		}
		if err := d.fill(); err != nil {
			d.err = err
			return 0, err
		}
	}
	k := copy(p, d.plain)
	d.plain = d.plain[k:]
	return k, nil
}

// fill reads and authenticates the next segment.
func (d *decReader) fill() error {
	if d.bp == nil {
		d.bp = segPool.Get().(*[]byte)
	}
	plainLen := min(segSize, d.n-int64(d.seg)*segSize)
	buf := (*d.bp)[:plainLen+tagSize]
	if _, err := io.ReadFull(d.f, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return d.bad(badFile("encrypted file of piece %d of task %s ends in segment %d", d.idx, d.id.Short(), d.seg))
		}
		return fmt.Errorf("store: %w", err)
	}
	d.fc.setSegment(d.seg)
	out, err := d.fc.aead.Open(buf[:0], d.fc.nonce, buf, d.fc.ad)
	if err != nil {
		return d.bad(badFile("segment %d of piece %d of task %s fails authentication (tampered or corrupt)", d.seg, d.idx, d.id.Short()))
	}
	d.seg++
	d.plain = out[min(d.skip, len(out)):]
	d.skip = 0
	return nil
}

func (d *decReader) bad(err error) error {
	if d.onBad != nil {
		d.onBad(err)
		d.onBad = nil
	}
	return err
}

// Close closes the file.
func (d *decReader) Close() error {
	if d.closed {
		return nil
	}
	d.closed = true
	d.plain = nil
	if d.bp != nil {
		segPool.Put(d.bp)
		d.bp = nil
	}
	return d.f.Close()
}

// hasMagic reports whether the file at path starts with the encrypted
// format's magic.
func hasMagic(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, len(encMagic))
	_, err = io.ReadFull(f, b)
	return err == nil && string(b) == encMagic
}

// LoadKeyFile reads an encryption key for WithEncryption from path: KeySize
// raw bytes, or 2*KeySize hex characters, or the base64 (standard or URL
// alphabet, padded or not) of KeySize bytes; one trailing newline is allowed.
// KeySize bytes of printable text are refused (a short hex key or a
// passphrase, not random bytes). A file that group or others may access is refused
// (except on Windows, which has no such mode bits).
func LoadKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("store: key file %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("store: key file %s is accessible by group or others (mode %04o); restrict it with: chmod 600 %s", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	defer clear(b)
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("store: key file %s: larger than %d bytes, not a key", path, maxKeyFile)
	}
	key, err := parseKey(b)
	if err != nil {
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	return key, nil
}

// parseKey decodes a key in one of LoadKeyFile's forms.
func parseKey(b []byte) ([]byte, error) {
	raw := b
	if len(raw) == KeySize+1 && raw[KeySize] == '\n' {
		raw = raw[:KeySize]
	}
	if len(raw) == KeySize {
		if printable(raw) {
			// Random bytes are practically never all printable: this is
			// text (a short hex or base64 key, a passphrase), not a key.
			return nil, fmt.Errorf("%d characters of text, not %d random bytes; want %d raw bytes, %d hex characters or base64 of %d bytes", KeySize, KeySize, KeySize, 2*KeySize, KeySize)
		}
		return bytes.Clone(raw), nil
	}
	t := b
	if bytes.HasSuffix(t, []byte("\n")) {
		t = bytes.TrimSuffix(t[:len(t)-1], []byte("\r"))
	}
	if len(t) == 2*KeySize {
		key := make([]byte, KeySize)
		if _, err := hex.Decode(key, t); err == nil {
			return key, nil
		}
		clear(key)
		return nil, fmt.Errorf("%d characters but not hex", len(t))
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if m := enc.DecodedLen(len(t)); m < KeySize || m > KeySize+2 {
			continue
		}
		key := make([]byte, enc.DecodedLen(len(t)))
		if k, err := enc.Decode(key, t); err == nil && k == KeySize {
			return key[:KeySize], nil
		}
		clear(key)
	}
	return nil, fmt.Errorf("want %d raw bytes, %d hex characters or base64 of %d bytes (file has %d bytes)", KeySize, 2*KeySize, KeySize, len(b))
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
