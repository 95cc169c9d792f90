// Package cluster is the one harness end-to-end tests and `make demo` use to
// start dfp2p clusters: it builds the dfp2p binary once, runs trackers and
// daemons as real processes on loopback with their own data dirs, runs a
// counting HTTP origin, a real docker-registry (open, htpasswd or token auth)
// behind a counting front, real containerd instances with their own root and
// socket, builds multi-layer OCI images without Docker, and tears everything
// down — processes first, then temp dirs — even when a test fails.
//
// For multi-region tests, Net (netns.go, root and iproute2 needed) builds
// network namespaces: a routing core and sites behind rate-shaped veth links
// with byte counters; trackers, daemons and `dfp2p get` run inside a site
// (StartTrackerIn, StartDaemonIn, GetIn) and the test reaches them, or serves
// from inside a namespace, through the site's sockets (Site.Listen,
// Site.HTTPClient, Proc.HTTPClient).
//
// StartBrowser (chromium.go) runs a headless Chromium with a fresh profile,
// driven over the DevTools protocol (chromedp), that records console errors
// and failed requests; Close leaves none of its processes behind.
// For fault injection (faults.go, procfault.go, tmpfs.go): the origin
// misbehaves on a seeded FaultSchedule (503, connection dropped mid-body,
// crawl, down); StartCommand runs another binary built from the module
// (BuildCommand, e.g. the hostile member e2e/cmd/byzantine) as a cluster
// process; PinPorts keeps a process's addresses across Restart; MountTmpfs
// and Proc.MoveToTmpfs give a process or an output a small file system that
// fills up.
//
// It is test infrastructure: product code must not import it.
package cluster
