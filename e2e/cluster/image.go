package cluster

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// ImageSpec describes a generated test image: Layers layers, each one tar
// holding one incompressible pseudo-random file of LayerSize bytes (and a
// small text file), gzip'ed with stored blocks (valid gzip that costs no CPU).
// Same spec, same bytes, same digests.
type ImageSpec struct {
	Layers    int
	LayerSize int64
	Seed      uint64
}

// Image is a generated OCI image layout on disk.
type Image struct {
	Spec ImageSpec
	// Dir is the OCI image layout (oci-layout, index.json, blobs/sha256/...).
	Dir string
	// Tag is the ref name inside the layout ("latest").
	Tag      string
	Manifest Descriptor
	Config   Descriptor
	Layers   []Layer
}

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Layer is one layer of a generated image.
type Layer struct {
	Descriptor
	DiffID string
	// File is the path of the big file inside the layer; FileSHA256 its hex sha256.
	File       string
	FileSize   int64
	FileSHA256 string
}

// TotalSize is the sum of the layer blob sizes.
func (img *Image) TotalSize() int64 {
	var n int64
	for _, l := range img.Layers {
		n += l.Size
	}
	return n
}

// BlobPath is the path of a blob inside the layout.
func (img *Image) BlobPath(digest string) string {
	return filepath.Join(img.Dir, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:"))
}

var imageBuild sync.Mutex

// BuildImage generates the image for spec under cacheDir, or returns the one
// an earlier call left there (the layout is reused across tests in one run:
// pass a directory that lives as long as the test binary).
func BuildImage(cacheDir string, spec ImageSpec) (*Image, error) {
	if spec.Layers < 1 || spec.LayerSize < 1 {
		return nil, fmt.Errorf("image spec %+v: need at least one non-empty layer", spec)
	}
	imageBuild.Lock()
	defer imageBuild.Unlock()
	dir := filepath.Join(cacheDir, fmt.Sprintf("oci-%dx%d-%d", spec.Layers, spec.LayerSize, spec.Seed))
	meta := filepath.Join(dir, "dfp2p-image.json")
	if b, err := os.ReadFile(meta); err == nil {
		var img Image
		if err := json.Unmarshal(b, &img); err == nil && img.Spec == spec {
			img.Dir = dir
			return &img, nil
		}
	}
	_ = os.RemoveAll(dir)
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return nil, err
	}
	img := &Image{Spec: spec, Dir: dir, Tag: "latest"}
	for i := 0; i < spec.Layers; i++ {
		l, err := writeLayer(blobs, spec, i)
		if err != nil {
			return nil, err
		}
		img.Layers = append(img.Layers, l)
	}
	diffIDs := make([]string, len(img.Layers))
	layers := make([]Descriptor, len(img.Layers))
	for i, l := range img.Layers {
		diffIDs[i] = l.DiffID
		layers[i] = l.Descriptor
	}
	cfg := map[string]any{
		"created":      "2024-01-01T00:00:00Z",
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Env": []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, "Cmd": []string{"/bin/true"}},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": diffIDs},
		"history":      []map[string]any{{"created": "2024-01-01T00:00:00Z", "comment": fmt.Sprintf("dfp2p e2e image %+v", spec)}},
	}
	var err error
	if img.Config, err = writeJSONBlob(blobs, "application/vnd.oci.image.config.v1+json", cfg); err != nil {
		return nil, err
	}
	manifest := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        img.Config,
		"layers":        layers,
	}
	if img.Manifest, err = writeJSONBlob(blobs, "application/vnd.oci.image.manifest.v1+json", manifest); err != nil {
		return nil, err
	}
	ref := img.Manifest
	ref.Annotations = map[string]string{"org.opencontainers.image.ref.name": img.Tag}
	index := map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []Descriptor{ref}}
	ib, _ := json.Marshal(index)
	if err := os.WriteFile(filepath.Join(dir, "index.json"), ib, 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return nil, err
	}
	mb, _ := json.Marshal(img)
	if err := os.WriteFile(meta, mb, 0o644); err != nil {
		return nil, err
	}
	return img, nil
}

func writeLayer(blobs string, spec ImageSpec, i int) (Layer, error) {
	tmp, err := os.CreateTemp(blobs, ".layer-*")
	if err != nil {
		return Layer{}, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	blobHash, diffHash, fileHash := sha256.New(), sha256.New(), sha256.New()
	blobCount := &countWriter{}
	gz, err := gzip.NewWriterLevel(io.MultiWriter(tmp, blobHash, blobCount), gzip.NoCompression)
	if err != nil {
		return Layer{}, err
	}
	tw := tar.NewWriter(io.MultiWriter(gz, diffHash))
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	dirName := fmt.Sprintf("dfp2p-layer%d", i)
	file := dirName + "/data.bin"
	note := []byte(fmt.Sprintf("layer %d of a dfp2p e2e test image %+v\n", i, spec))
	hdrs := []*tar.Header{
		{Typeflag: tar.TypeDir, Name: dirName + "/", Mode: 0o755, ModTime: mtime, Format: tar.FormatPAX},
		{Typeflag: tar.TypeReg, Name: dirName + "/README", Mode: 0o644, Size: int64(len(note)), ModTime: mtime, Format: tar.FormatPAX},
	}
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			return Layer{}, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(note); err != nil {
				return Layer{}, err
			}
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: file, Mode: 0o644, Size: spec.LayerSize, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
		return Layer{}, err
	}
	var seed [32]byte
	copy(seed[:], fmt.Sprintf("dfp2p-e2e-%d-%d", spec.Seed, i))
	if _, err := io.CopyBuffer(io.MultiWriter(tw, fileHash), io.LimitReader(rand.NewChaCha8(seed), spec.LayerSize), make([]byte, 1<<20)); err != nil {
		return Layer{}, err
	}
	if err := tw.Close(); err != nil {
		return Layer{}, err
	}
	if err := gz.Close(); err != nil {
		return Layer{}, err
	}
	if err := tmp.Close(); err != nil {
		return Layer{}, err
	}
	digest := "sha256:" + hex.EncodeToString(blobHash.Sum(nil))
	if err := os.Rename(tmp.Name(), filepath.Join(blobs, strings.TrimPrefix(digest, "sha256:"))); err != nil {
		return Layer{}, err
	}
	return Layer{
		Descriptor: Descriptor{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Digest: digest, Size: blobCount.n},
		DiffID:     "sha256:" + hex.EncodeToString(diffHash.Sum(nil)),
		File:       file, FileSize: spec.LayerSize, FileSHA256: hex.EncodeToString(fileHash.Sum(nil)),
	}, nil
}

type countWriter struct{ n int64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

func writeJSONBlob(blobs, mediaType string, v any) (Descriptor, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return Descriptor{}, err
	}
	d := Descriptor{MediaType: mediaType, Digest: "sha256:" + sha256Hex(b), Size: int64(len(b))}
	return d, os.WriteFile(filepath.Join(blobs, strings.TrimPrefix(d.Digest, "sha256:")), b, 0o644)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// Push copies the image with skopeo straight to the registry (not through the
// counting front) as repo:tag, then checks that the registry holds the
// manifest under the same digest (skopeo must not have recompressed).
func (img *Image) Push(ctx context.Context, r *Registry, repo, tag string) error {
	bin, err := exec.LookPath("skopeo")
	if err != nil {
		return fmt.Errorf("skopeo not found (install the Debian package skopeo; `make deps` does): %w", err)
	}
	work, err := os.MkdirTemp("", "dfp2p-skopeo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	policy := filepath.Join(work, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"insecureAcceptAnything"}]}`), 0o644); err != nil {
		return err
	}
	args := []string{"--policy", policy, "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
		"--authfile", filepath.Join(work, "auth.json")}
	if c := r.Credentials(); c != "" {
		args = append(args, "--dest-creds", c)
	}
	args = append(args, "oci:"+img.Dir+":"+img.Tag, "docker://"+r.Host+"/"+repo+":"+tag)
	cmd := exec.CommandContext(ctx, bin, args...)
	// Keep skopeo away from the user's config and caches.
	cmd.Env = append(os.Environ(), "HOME="+work, "XDG_RUNTIME_DIR="+work, "XDG_CONFIG_HOME="+work, "REGISTRY_AUTH_FILE="+filepath.Join(work, "auth.json"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("skopeo %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	// The registry must now serve the manifest under the layout's digest.
	ac := &AuthClient{HTTP: &http.Client{Timeout: 10 * time.Second, Transport: r.tr}, User: r.User, Password: r.Password}
	if r.Auth == AuthNone {
		ac.User = ""
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.URL+"/v2/"+repo+"/manifests/"+tag, nil)
	req.Header.Set("Accept", img.Manifest.MediaType)
	resp, err := ac.Do(req)
	if err != nil {
		return fmt.Errorf("checking the pushed manifest: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET pushed manifest: %s: %s", resp.Status, body)
	}
	if got := "sha256:" + sha256Hex(body); got != img.Manifest.Digest {
		return fmt.Errorf("registry holds manifest %s, the layout has %s (skopeo rewrote the image):\n%s", got, img.Manifest.Digest, body)
	}
	return nil
}

// BlobSHA256 hashes a file (for checks on blobs fetched by tests).
func BlobSHA256(r io.Reader) (string, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), n, err
}
