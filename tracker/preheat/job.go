package preheat

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/dfp2p/dfp2p/content"
	"github.com/dfp2p/dfp2p/oci"
)

// Request is the body of POST /api/v1/preheat: a URL (with the same header,
// digest and tag options as `dfp2p get`) or an image reference, and how
// many live peers to warm besides the seed.
type Request struct {
	URL    string              `json:"url,omitempty"`
	Header map[string][]string `json:"header,omitempty"`
	Digest string              `json:"digest,omitempty"`
	Tag    string              `json:"tag,omitempty"`

	Image    string `json:"image,omitempty"`
	Platform string `json:"platform,omitempty"` // os/arch[/variant]; default linux/amd64

	Peers string `json:"peers,omitempty"` // "N" or "P%"; "" = the seed only
}

// parsed is a checked Request.
type parsed struct {
	Request
	ref      oci.Ref
	platform oci.Platform
	count    Count
	header   http.Header
}

// check validates r: one of url and image, a valid URL, digest, header,
// reference, platform and peer count.
func (r Request) check(filter []string) (*parsed, error) {
	p := &parsed{Request: r}
	var err error
	if p.count, err = ParseCount(r.Peers); err != nil {
		return nil, err
	}
	switch {
	case r.URL != "" && r.Image != "":
		return nil, fmt.Errorf("give either url or image, not both")
	case r.URL != "":
		if r.Platform != "" {
			return nil, fmt.Errorf("platform applies to images only")
		}
		if _, err := content.TaskIDFor(r.URL, r.Tag, r.Digest, filter); err != nil {
			return nil, err
		}
		if p.header, err = checkHeader(r.Header); err != nil {
			return nil, err
		}
	case r.Image != "":
		if r.Digest != "" || r.Tag != "" || len(r.Header) > 0 {
			return nil, fmt.Errorf("digest, tag and header apply to URLs only (name an image by REF@sha256:...)")
		}
		if p.ref, err = oci.ParseRef(r.Image); err != nil {
			return nil, err
		}
		if p.platform, err = oci.ParsePlatform(r.Platform); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("missing url or image")
	}
	return p, nil
}

// checkHeader refuses header names and values that could smuggle a line.
func checkHeader(h map[string][]string) (http.Header, error) {
	out := http.Header{}
	n := 0
	for k, vs := range h {
		if k == "" || strings.ContainsAny(k, " \t\r\n:\x00") {
			return nil, fmt.Errorf("header name %q is not valid", k)
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n\x00") {
				return nil, fmt.Errorf("header %q: control characters are not allowed", k)
			}
			n += len(k) + len(v)
			out.Add(textproto.CanonicalMIMEHeaderKey(k), v)
		}
	}
	if n > 64<<10 {
		return nil, fmt.Errorf("headers larger than 64 KiB")
	}
	return out, nil
}

// State is a job's state.
type State string

// States: pending (queued for a run slot), running, then succeeded or
// failed.
const (
	StatePending   State = "pending"
	StateRunning   State = "running"
	StateSucceeded State = "succeeded"
	StateFailed    State = "failed"
)

// Done reports whether s is final.
func (s State) Done() bool { return s == StateSucceeded || s == StateFailed }

// Job is a preheat job as the API shows it.
type Job struct {
	ID       string     `json:"id"`
	State    State      `json:"state"`
	Kind     string     `json:"kind"`   // "url" or "image"
	Target   string     `json:"target"` // the URL without its query, or the image reference
	Platform string     `json:"platform,omitempty"`
	Manifest string     `json:"manifest,omitempty"` // the platform manifest's digest
	Peers    string     `json:"peers,omitempty"`    // as asked: "N" or "P%"
	Chosen   []string   `json:"chosen_peers,omitempty"`
	Created  time.Time  `json:"created"`
	Started  *time.Time `json:"started,omitempty"`
	Finished *time.Time `json:"finished,omitempty"`
	Items    []Item     `json:"items"`
	Error    string     `json:"error,omitempty"`
}

// Item is one file of a job and its progress.
type Item struct {
	Name       string         `json:"name"` // layer digest, or the URL without its query
	Task       content.TaskID `json:"task"`
	BytesDone  int64          `json:"bytes_done"` // held by the seed
	BytesTotal int64          `json:"bytes_total"`
	SeedDone   bool           `json:"seed_done"`
	PeersAsked int            `json:"peers_asked"`
	PeersDone  int            `json:"peers_done"`
	Error      string         `json:"error,omitempty"`
}

// Progress sums a job's items.
func (j *Job) Progress() (done, total int64, seeded, peersDone, peersAsked int) {
	for _, it := range j.Items {
		done += it.BytesDone
		total += it.BytesTotal
		if it.SeedDone {
			seeded++
		}
		peersDone += it.PeersDone
		peersAsked += it.PeersAsked
	}
	return
}

// Target is one item to fetch: what the seed is asked for.
type Target struct {
	Task   content.TaskID
	URL    string
	Header http.Header
	Digest string // sha256:HEX or ""
	Tag    string
}

func (t Target) peerItem() PeerItem { return PeerItem{URL: t.URL, Digest: t.Digest, Tag: t.Tag} }
