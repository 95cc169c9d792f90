//go:build race

package sim

// raceEnabled: the race detector slows the simulated network's per-packet
// work about sevenfold, so the scenarios move fewer bytes under it.
const raceEnabled = true
