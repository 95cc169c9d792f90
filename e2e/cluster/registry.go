package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// RegistryAuth is how a test registry checks pulls and pushes.
type RegistryAuth int

const (
	// AuthNone: anyone may pull and push.
	AuthNone RegistryAuth = iota
	// AuthHtpasswd: HTTP Basic against a bcrypt htpasswd file.
	AuthHtpasswd
	// AuthToken: distribution's bearer-token scheme, tokens from an
	// in-process token server that signs JWTs with a test key.
	AuthToken
)

func (a RegistryAuth) String() string {
	switch a {
	case AuthHtpasswd:
		return "htpasswd"
	case AuthToken:
		return "token"
	}
	return "open"
}

// RegistryConfig configures StartRegistry.
type RegistryConfig struct {
	// Dir holds the registry's storage, config and credentials.
	Dir string
	// LogDir receives registry.log and registry-front.log; default Dir.
	LogDir string
	Auth   RegistryAuth
	// User and Password are the one account of AuthHtpasswd and AuthToken;
	// default "tester" / "s3cret-pass".
	User, Password string
}

// Registry is a real distribution 2.8 registry (`docker-registry serve`) on
// loopback with a counting reverse proxy in front of it. Clients whose
// traffic must be counted (the dfp2p proxy's upstream) use FrontURL; set-up
// traffic (pushes) uses URL directly.
type Registry struct {
	Auth           RegistryAuth
	User, Password string

	// Host is the registry's own host:port; URL is "http://"+Host.
	Host, URL string
	// FrontHost is the counting proxy's host:port; FrontURL is "http://"+FrontHost.
	FrontHost, FrontURL string
	// TokenURL is the token server's realm (AuthToken only).
	TokenURL string
	// Service is the token service name the registry expects (AuthToken only).
	Service string

	LogPath, FrontLogPath string

	proc  *extProc
	front *http.Server
	tok   *http.Server
	tr    *http.Transport

	mu       sync.Mutex
	blobs    map[string]*BlobCount
	frontLog *os.File
	reqs     atomic.Int64
}

// BlobCount is what the counting front saw for one blob digest.
type BlobCount struct {
	Gets    int   // GET requests the registry answered with 2xx
	Refused int   // GET requests it answered otherwise (401, 404...)
	Heads   int   // HEAD requests
	Bytes   int64 // body bytes of the 2xx GETs read from the registry
}

// StartRegistry writes a config for cfg.Auth, starts `docker-registry serve`
// on a free loopback port and the counting front, and waits until /v2/
// answers.
func StartRegistry(cfg RegistryConfig) (*Registry, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return nil, fmt.Errorf("docker-registry not found (install the Debian package docker-registry; `make deps` does): %w", err)
	}
	if cfg.LogDir == "" {
		cfg.LogDir = cfg.Dir
	}
	if cfg.User == "" {
		cfg.User, cfg.Password = "tester", "s3cret-pass"
	}
	for _, d := range []string{cfg.Dir, cfg.LogDir, filepath.Join(cfg.Dir, "storage")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	r := &Registry{Auth: cfg.Auth, User: cfg.User, Password: cfg.Password, blobs: map[string]*BlobCount{},
		LogPath: filepath.Join(cfg.LogDir, "registry.log"), FrontLogPath: filepath.Join(cfg.LogDir, "registry-front.log"),
		tr: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16, IdleConnTimeout: 30 * time.Second}}
	ok := false
	defer func() {
		if !ok {
			r.Close()
		}
	}()

	var authYAML string
	switch cfg.Auth {
	case AuthNone:
	case AuthHtpasswd:
		path := filepath.Join(cfg.Dir, "htpasswd")
		if err := writeHtpasswd(path, cfg.User, cfg.Password); err != nil {
			return nil, err
		}
		authYAML = fmt.Sprintf("auth:\n  htpasswd:\n    realm: dfp2p-test-registry\n    path: %s\n", path)
	case AuthToken:
		bundle := filepath.Join(cfg.Dir, "token-root.pem")
		if err := r.startTokenServer(bundle); err != nil {
			return nil, err
		}
		authYAML = fmt.Sprintf("auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    rootcertbundle: %s\n",
			r.TokenURL, r.Service, tokenIssuer, bundle)
	default:
		return nil, fmt.Errorf("unknown registry auth mode %d", cfg.Auth)
	}

	// A free port can be taken between probing and binding; try a few.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		r.Host = fmt.Sprintf("127.0.0.1:%d", port)
		r.URL = "http://" + r.Host
		conf := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: dfp2p-e2e-not-secret
health:
  storagedriver:
    enabled: false
%s`, filepath.Join(cfg.Dir, "storage"), r.Host, authYAML)
		confPath := filepath.Join(cfg.Dir, "config.yml")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		r.proc, err = startExt("registry", r.LogPath, bin, "serve", confPath)
		if err != nil {
			return nil, err
		}
		if lastErr = r.waitReady(20 * time.Second); lastErr == nil {
			break
		}
		r.proc.kill()
		r.proc = nil
	}
	if lastErr != nil {
		return nil, lastErr
	}
	if err := r.startFront(); err != nil {
		return nil, err
	}
	ok = true
	return r, nil
}

func (r *Registry) waitReady(timeout time.Duration) error {
	c := http.Client{Timeout: time.Second, Transport: r.tr}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if r.proc.exited() {
			return fmt.Errorf("docker-registry exited during start-up (%v); log:\n%s", r.proc.err(), tailFile(r.LogPath, 30))
		}
		resp, err := c.Get(r.URL + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("docker-registry not ready on %s after %s; log:\n%s", r.Host, timeout, tailFile(r.LogPath, 30))
}

// Close stops the front, the token server and the registry process.
func (r *Registry) Close() error {
	if r.front != nil {
		_ = r.front.Close()
	}
	if r.tok != nil {
		_ = r.tok.Close()
	}
	var err error
	if r.proc != nil {
		err = r.proc.stop(5 * time.Second)
	}
	r.tr.CloseIdleConnections()
	r.mu.Lock()
	if r.frontLog != nil {
		r.frontLog.Close()
		r.frontLog = nil
	}
	r.mu.Unlock()
	return err
}

// Credentials is "user:password" for skopeo and ctr, or "" for an open registry.
func (r *Registry) Credentials() string {
	if r.Auth == AuthNone {
		return ""
	}
	return r.User + ":" + r.Password
}

// ---- counting front ----

var blobPath = regexp.MustCompile(`^/v2/(.+)/blobs/(sha256:[0-9a-f]{64})$`)

func (r *Registry) startFront() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	r.FrontHost = ln.Addr().String()
	r.FrontURL = "http://" + r.FrontHost
	lf, err := os.OpenFile(r.FrontLogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		ln.Close()
		return err
	}
	r.frontLog = lf
	target, _ := url.Parse(r.URL)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header["X-Forwarded-For"] = nil // the registry needs no client address
		},
		Transport: r.tr,
		ModifyResponse: func(resp *http.Response) error {
			req := resp.Request
			m := blobPath.FindStringSubmatch(req.URL.Path)
			if m == nil {
				return nil
			}
			r.mu.Lock()
			bc := r.blobs[m[2]]
			if bc == nil {
				bc = &BlobCount{}
				r.blobs[m[2]] = bc
			}
			switch req.Method {
			case http.MethodGet:
				if resp.StatusCode/100 != 2 {
					bc.Refused++
					break
				}
				bc.Gets++
				resp.Body = &countingBody{ReadCloser: resp.Body, mu: &r.mu, bc: bc}
			case http.MethodHead:
				bc.Heads++
			}
			r.mu.Unlock()
			return nil
		},
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.reqs.Add(1)
		rec := &statusRecorder{ResponseWriter: w}
		start := time.Now()
		rp.ServeHTTP(rec, req)
		r.mu.Lock()
		if r.frontLog != nil {
			fmt.Fprintf(r.frontLog, "%s %s %s range=%q auth=%t ua=%q -> %d %dB %s\n", start.Format("15:04:05.000"),
				req.Method, req.URL.RequestURI(), req.Header.Get("Range"), req.Header.Get("Authorization") != "",
				req.UserAgent(), rec.code(), rec.n, time.Since(start).Round(time.Millisecond))
		}
		r.mu.Unlock()
	})
	r.front = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.front.Serve(ln) }()
	return nil
}

type countingBody struct {
	io.ReadCloser
	mu *sync.Mutex
	bc *BlobCount
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if n > 0 {
		c.mu.Lock()
		c.bc.Bytes += int64(n)
		c.mu.Unlock()
	}
	return n, err
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	n      int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.n += int64(n)
	return n, err
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) code() int {
	if s.status == 0 {
		return http.StatusOK
	}
	return s.status
}

// Blob returns what the front saw for one digest.
func (r *Registry) Blob(digest string) BlobCount {
	r.mu.Lock()
	defer r.mu.Unlock()
	if bc := r.blobs[digest]; bc != nil {
		return *bc
	}
	return BlobCount{}
}

// Blobs returns a copy of the per-digest counts.
func (r *Registry) Blobs() map[string]BlobCount {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]BlobCount, len(r.blobs))
	for d, bc := range r.blobs {
		out[d] = *bc
	}
	return out
}

// BlobBytes is the number of blob body bytes the front has passed on, over all digests.
func (r *Registry) BlobBytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var n int64
	for _, bc := range r.blobs {
		n += bc.Bytes
	}
	return n
}

// FrontRequests is the number of requests the front has received.
func (r *Registry) FrontRequests() int64 { return r.reqs.Load() }

// ResetCounts zeroes the front's counters.
func (r *Registry) ResetCounts() {
	r.mu.Lock()
	r.blobs = map[string]*BlobCount{}
	if r.frontLog != nil {
		fmt.Fprintf(r.frontLog, "---- counters reset\n")
	}
	r.mu.Unlock()
	r.reqs.Store(0)
}

// CountsString is a sorted, readable dump of the blob counters (for logs).
func (r *Registry) CountsString() string {
	bs := r.Blobs()
	ds := make([]string, 0, len(bs))
	for d := range bs {
		ds = append(ds, d)
	}
	sort.Strings(ds)
	var b strings.Builder
	for _, d := range ds {
		fmt.Fprintf(&b, "%s: GET %d (refused %d) HEAD %d bytes %d\n", shortDigest(d), bs[d].Gets, bs[d].Refused, bs[d].Heads, bs[d].Bytes)
	}
	return b.String()
}

func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// ---- auth ----

func writeHtpasswd(path, user, pass string) error {
	bin, err := exec.LookPath("htpasswd")
	if err != nil {
		return fmt.Errorf("htpasswd not found (install the Debian package apache2-utils; `make deps` does): %w", err)
	}
	out, err := exec.Command(bin, "-Bbn", user, pass).Output()
	if err != nil {
		return fmt.Errorf("htpasswd -Bbn: %w", err)
	}
	return os.WriteFile(path, []byte(strings.TrimSpace(string(out))+"\n"), 0o600)
}

const tokenIssuer = "dfp2p-e2e-token-issuer"

// tokenServer issues distribution-style bearer tokens: ES256 JWTs whose x5c
// header carries the self-signed certificate that is the registry's
// rootcertbundle. Valid credentials get every action they ask for; anonymous
// requests get a token with no access (as public registries do), so the
// registry answers 401 to what they then try.
type tokenServer struct {
	key            *ecdsa.PrivateKey
	certDER        []byte
	service        string
	user, password string
	issued         atomic.Int64
}

func (r *Registry) startTokenServer(bundlePath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "dfp2p e2e token signer"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(bundlePath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	r.Service = "dfp2p-e2e-registry"
	r.TokenURL = "http://" + ln.Addr().String() + "/token"
	ts := &tokenServer{key: key, certDER: der, service: r.Service, user: r.User, password: r.Password}
	r.tok = &http.Server{Handler: ts, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.tok.Serve(ln) }()
	return nil
}

func (ts *tokenServer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/token" {
		http.NotFound(w, req)
		return
	}
	var user, pass, service string
	var scopes []string
	var hasCreds, oauth bool
	switch req.Method {
	case http.MethodGet:
		user, pass, hasCreds = req.BasicAuth()
		service = req.URL.Query().Get("service")
		scopes = req.URL.Query()["scope"]
	case http.MethodPost: // containerd's OAuth2 password grant
		if err := req.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if req.PostForm.Get("grant_type") != "password" {
			http.Error(w, `{"error":"unsupported_grant_type"}`, http.StatusBadRequest)
			return
		}
		oauth = true
		user, pass, hasCreds = req.PostForm.Get("username"), req.PostForm.Get("password"), true
		service = req.PostForm.Get("service")
		scopes = strings.Fields(req.PostForm.Get("scope"))
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if service != ts.service {
		http.Error(w, "unknown service", http.StatusBadRequest)
		return
	}
	if hasCreds && (user != ts.user || pass != ts.password) {
		w.Header().Set("WWW-Authenticate", `Basic realm="dfp2p-e2e-token"`)
		http.Error(w, `{"details":"incorrect username or password"}`, http.StatusUnauthorized)
		return
	}
	type access struct {
		Type    string   `json:"type"`
		Name    string   `json:"name"`
		Actions []string `json:"actions"`
	}
	grants := []access{}
	if hasCreds {
		for _, s := range scopes {
			// repository:NAME:ACTIONS; NAME may not contain ':' but a
			// registry host in it might, so split from both ends.
			first, last := strings.Index(s, ":"), strings.LastIndex(s, ":")
			if first < 0 || first == last {
				continue
			}
			grants = append(grants, access{Type: s[:first], Name: s[first+1 : last], Actions: strings.Split(s[last+1:], ",")})
		}
	}
	now := time.Now()
	jti := make([]byte, 12)
	_, _ = rand.Read(jti)
	claims := map[string]any{
		"iss": tokenIssuer, "sub": user, "aud": ts.service,
		"exp": now.Add(5 * time.Minute).Unix(), "nbf": now.Add(-10 * time.Second).Unix(), "iat": now.Unix(),
		"jti": hex.EncodeToString(jti), "access": grants,
	}
	tok, err := ts.sign(claims)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	ts.issued.Add(1)
	w.Header().Set("Content-Type", "application/json")
	resp := map[string]any{"token": tok, "access_token": tok, "expires_in": 300, "issued_at": now.UTC().Format(time.RFC3339)}
	if oauth {
		resp = map[string]any{"access_token": tok, "expires_in": 300, "issued_at": now.UTC().Format(time.RFC3339), "scope": strings.Join(scopes, " ")}
	}
	_ = json.NewEncoder(w).Encode(resp)
}

// sign makes a compact JWS (ES256: the signature is R||S, 32 bytes each).
func (ts *tokenServer) sign(claims map[string]any) (string, error) {
	header := map[string]any{"typ": "JWT", "alg": "ES256", "x5c": []string{base64.StdEncoding.EncodeToString(ts.certDER)}}
	hj, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	cj, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(hj) + "." + enc.EncodeToString(cj)
	sum := sha256.Sum256([]byte(signing))
	rr, ss, err := ecdsa.Sign(rand.Reader, ts.key, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	rr.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	return signing + "." + enc.EncodeToString(sig), nil
}

// ---- a client that answers registry auth challenges ----

// AuthClient sends registry requests and, on a 401, answers the challenge
// the way containerd does: Basic with its credentials, or Bearer with a
// token fetched from the challenge's realm (with its credentials, if any).
type AuthClient struct {
	HTTP           *http.Client
	User, Password string
}

// Do sends a body-less request (GET or HEAD), answering one auth challenge.
// The caller closes the response body.
func (a *AuthClient) Do(req *http.Request) (*http.Response, error) {
	resp, err := a.HTTP.Do(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || a.User == "" {
		return resp, err
	}
	challenge := resp.Header.Get("WWW-Authenticate")
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	scheme, params := ParseChallenge(challenge)
	retry := req.Clone(req.Context())
	switch strings.ToLower(scheme) {
	case "basic":
		retry.SetBasicAuth(a.User, a.Password)
	case "bearer":
		tok, err := a.Token(req.Context(), params)
		if err != nil {
			return nil, err
		}
		retry.Header.Set("Authorization", "Bearer "+tok)
	default:
		return nil, fmt.Errorf("unsupported auth challenge %q", challenge)
	}
	return a.HTTP.Do(retry)
}

// Token fetches a bearer token for a challenge's realm, service and scope.
func (a *AuthClient) Token(ctx context.Context, challenge map[string]string) (string, error) {
	u, err := url.Parse(challenge["realm"])
	if err != nil || challenge["realm"] == "" {
		return "", fmt.Errorf("bad token realm %q", challenge["realm"])
	}
	q := u.Query()
	if s := challenge["service"]; s != "" {
		q.Set("service", s)
	}
	for _, s := range strings.Fields(challenge["scope"]) {
		q.Add("scope", s)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	if a.User != "" {
		req.SetBasicAuth(a.User, a.Password)
	}
	resp, err := a.HTTP.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token server: %s: %s", resp.Status, body)
	}
	var tr struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return "", err
	}
	if tr.Token != "" {
		return tr.Token, nil
	}
	if tr.AccessToken != "" {
		return tr.AccessToken, nil
	}
	return "", errors.New("token server answered without a token")
}

// ParseChallenge splits a WWW-Authenticate value `Scheme k="v", k2="v2"` into
// its scheme and parameters (quoted values may hold commas).
func ParseChallenge(h string) (string, map[string]string) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	params := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimSpace(rest) {
		k, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		k = strings.ToLower(strings.TrimSpace(k))
		var v string
		if strings.HasPrefix(after, `"`) {
			end := strings.Index(after[1:], `"`)
			if end < 0 {
				v, rest = after[1:], ""
			} else {
				v, rest = after[1:1+end], after[2+end:]
			}
		} else {
			v, rest, _ = strings.Cut(after, ",")
		}
		params[k] = v
		rest = strings.TrimPrefix(strings.TrimSpace(rest), ",")
	}
	return scheme, params
}

// ---- external processes (registry, containerd) ----

// extProc is a non-dfp2p process the harness runs: logs to a file, dies with
// the test binary (Pdeathsig), stopped with SIGTERM then SIGKILL.
type extProc struct {
	name    string
	cmd     *exec.Cmd
	done    chan struct{}
	exitErr error
}

func startExt(name, logPath, bin string, args ...string) (*extProc, error) {
	lf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &extProc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.exitErr = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *extProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *extProc) err() error {
	<-p.done
	return p.exitErr
}

func (p *extProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (p *extProc) stop(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		p.kill()
		return fmt.Errorf("%s did not stop within %s", p.name, grace)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func tailFile(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
