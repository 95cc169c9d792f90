// Command testground is the dfp2p testground plan: one binary, one instance
// per process. The group "seeds" runs the origin (HTTP) and the system's
// seed side; the group "leechers" downloads. See docs/SIMULATIONS.md.
package main

import "github.com/testground/sdk-go/run"

func main() {
	run.InvokeMap(map[string]interface{}{
		"distribute":       caseFn("distribute"),
		"cold-start":       caseFn("cold-start"),
		"churn":            caseFn("churn"),
		"cross-region":     caseFn("cross-region"),
		"tracker-failover": caseFn("tracker-failover"),
	})
}
