// Command testground is the dfp2p testground plan: one binary, one instance
// per process. The group "seeds" runs the origin (HTTP) and the system's
// seed side; the group "leechers" downloads. See docs/SIMULATIONS.md.
package main

import (
	"fmt"

	"github.com/testground/sdk-go/run"
	"github.com/testground/sdk-go/runtime"
)

// notYet marks cases the manifest declares but the plan does not implement.
func notYet(name string) run.TestCaseFn {
	return func(*runtime.RunEnv) error { return fmt.Errorf("case %s is not implemented yet", name) }
}

func main() {
	run.InvokeMap(map[string]interface{}{
		"distribute":       caseFn("distribute"),
		"cold-start":       caseFn("cold-start"),
		"churn":            caseFn("churn"),
		"cross-region":     notYet("cross-region"),
		"tracker-failover": notYet("tracker-failover"),
	})
}
