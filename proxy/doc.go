// Package proxy owns the OCI distribution pull-side mirror and the HTTP
// forward proxy on each host: routing requests to upstream registries,
// sending blob bodies through the swarm, and the authorization check that
// keeps private layers private. It does not know pieces, peers or the
// tracker: blob bodies come from a Fetcher the daemon provides.
//
// # Registry mirror
//
// Requests for /v2/... addressed to the proxy itself (containerd hosts.toml
// mirror, Docker's registry-mirrors) are routed to an upstream registry
// chosen by containerd's ?ns=REGISTRY query parameter (stripped before
// forwarding), else by Config.DefaultRegistry. Config.Registries maps a
// registry name to its base URL; other names map to https://NAME, and
// docker.io to https://registry-1.docker.io.
//
//   - GET/HEAD /v2/, manifests, tags/list, referrers, _catalog and HEAD on a
//     blob are forwarded unchanged: request headers (Accept, Authorization,
//     ...) go up, status, headers (Content-Type, Docker-Content-Digest,
//     WWW-Authenticate, Location, ...) and body come back; hop-by-hop headers
//     are dropped both ways; redirects are passed to the client, not followed.
//   - GET on /v2/NAME/blobs/sha256:HEX goes through the swarm, after the
//     authorization check below. The answer carries Content-Length,
//     Content-Type application/octet-stream and Docker-Content-Digest. A
//     single Range (bytes=a-b, a-, -n) gets 206 with Content-Range, an
//     unsatisfiable or malformed one 416 (what the registry's own
//     http.ServeContent answers), several ranges the whole blob with 200.
//   - Anything else is refused by the proxy itself with an OCI JSON error:
//     push methods 405 (pull-only mirror), bad names, paths, references and
//     digests other than sha256:<64 hex> 400, unknown API paths 404.
//
// # Authorization check
//
// A blob body is never sent from the swarm before the registry has agreed
// that this requester may read it: the proxy sends HEAD for the blob to the
// registry with the requester's own headers (Authorization, Cookie). 2xx, or
// a 3xx redirect (a registry only redirects a request it authorized, and a
// presigned storage URL would not accept a HEAD anyway), allows it; the
// answer is cached for Config.AuthCacheTTL per (blob URL, sha256 of the
// credential headers), so different credentials never share an entry. Any
// other status (401, 403, 404, 429, 5xx) is returned to the requester with
// the registry's WWW-Authenticate unchanged, and the Fetcher is not called.
// When the registry cannot be reached the check fails closed with 502: a
// registry outage stops pulls of blobs the swarm may hold, which is the
// price of never serving a private layer to someone the registry would
// refuse. Only positive answers are cached.
//
// # Blob streams
//
// The Fetcher verifies the blob's sha256; a bad blob fails its stream. The
// proxy holds back the last chunk of a body until the Fetcher's stream has
// reported a clean end, and aborts the response (the connection is cut,
// never a short "success") when the stream fails, ends early or runs long.
// Ranges that stop before the end rely on the Fetcher's per-piece checks.
//
// # Forward proxy
//
// Requests in absolute form (GET http://host/path, HTTP_PROXY) are forwarded
// as they are, streaming both ways, except GETs whose full URL matches one of
// Config.Rules and whose path is an OCI blob URL (…/v2/NAME/blobs/sha256:HEX):
// those take the same authorization check and go through the swarm. A
// rule-matched URL that names no digest cannot be verified and is forwarded.
// CONNECT is tunnelled untouched, unless the host is in
// Config.InterceptHosts and a CA is configured: then TLS is terminated with a
// leaf certificate for the host minted from the CA (cached), and the
// decrypted requests are routed as https://host/... like absolute-form ones.
//
// # Safety
//
// Only loopback clients and Config.AllowCIDRs are served (403 otherwise); the
// default listen address is loopback. Request headers are bounded to 64 KiB,
// upstream response headers too; upstream requests have dial, TLS and
// response-header timeouts, bodies are streamed with idle timeouts and are
// never held whole in memory. A request that would loop back through this
// proxy is refused with 508.
package proxy
