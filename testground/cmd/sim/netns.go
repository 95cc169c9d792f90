package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// nsPrefix starts the name of every namespace the runner makes:
// nsPrefix + PID + "-r" (the router) and nsPrefix + PID + "-iN" (instance N).
// The PID lets the start-up sweep delete only dead runs' leftovers.
const nsPrefix = "tgsim-"

type topo struct {
	base   string
	router string
	n      int
	made   []string
}

func (t *topo) instNS(i int) string { return fmt.Sprintf("%si%d", t.base, i) }
func instIP(i int) string           { return fmt.Sprintf("10.77.%d.2", i) }

const routerIP = "10.77.0.1"

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// sweep deletes namespaces (and with them their veths) of runs whose process
// is gone.
func sweep() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], nsPrefix) {
			continue
		}
		rest := strings.TrimPrefix(f[0], nsPrefix)
		pid, err := strconv.Atoi(strings.SplitN(rest, "-", 2)[0])
		if err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) == nil {
			continue // a live run's
		}
		fmt.Fprintf(os.Stderr, "sim: removing leftover namespace %s\n", f[0])
		run("ip", "netns", "delete", f[0])
	}
}

// newTopo makes a router namespace and n instance namespaces, each joined to
// the router by a veth pair: instance i is 10.77.i.2/24 behind 10.77.i.1;
// the router also holds 10.77.0.1 (the sync service) on its loopback.
func newTopo(n int) (*topo, error) {
	t := &topo{base: fmt.Sprintf("%s%d-", nsPrefix, os.Getpid()), n: n}
	t.router = t.base + "r"
	add := func(ns string) error {
		if err := run("ip", "netns", "add", ns); err != nil {
			return err
		}
		t.made = append(t.made, ns)
		return run("ip", "-n", ns, "link", "set", "lo", "up")
	}
	if err := add(t.router); err != nil {
		return t, err
	}
	if err := run("ip", "-n", t.router, "addr", "add", routerIP+"/32", "dev", "lo"); err != nil {
		return t, err
	}
	if err := run("ip", "netns", "exec", t.router, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"); err != nil {
		return t, err
	}
	for i := 1; i <= n; i++ {
		ns := t.instNS(i)
		if err := add(ns); err != nil {
			return t, err
		}
		v := fmt.Sprintf("v%d", i)
		for _, st := range [][]string{
			{"-n", t.router, "link", "add", v, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"-n", t.router, "addr", "add", fmt.Sprintf("10.77.%d.1/24", i), "dev", v},
			{"-n", t.router, "link", "set", v, "up"},
			{"-n", ns, "addr", "add", instIP(i) + "/24", "dev", "eth0"},
			{"-n", ns, "link", "set", "eth0", "up"},
			{"-n", ns, "route", "add", "default", "via", fmt.Sprintf("10.77.%d.1", i)},
		} {
			if err := run("ip", st...); err != nil {
				return t, err
			}
		}
	}
	return t, nil
}

// shapeLink rate-limits instance i's link in both directions with tbf (the
// router-side veth's egress is the instance's ingress). bitsPerSec 0 removes it.
func (t *topo) shapeLink(i int, bitsPerSec uint64) error {
	for _, dev := range [][2]string{{t.router, fmt.Sprintf("v%d", i)}, {t.instNS(i), "eth0"}} {
		run("tc", "-n", dev[0], "qdisc", "del", "dev", dev[1], "root")
		if bitsPerSec == 0 {
			continue
		}
		// burst: 10 ms at the rate, at least 32 KiB; queue bounded to 50 ms.
		burst := bitsPerSec / 8 / 100
		if burst < 32<<10 {
			burst = 32 << 10
		}
		if err := run("tc", "-n", dev[0], "qdisc", "add", "dev", dev[1], "root", "tbf",
			"rate", fmt.Sprintf("%dbit", bitsPerSec), "burst", strconv.FormatUint(burst, 10), "latency", "50ms"); err != nil {
			return err
		}
	}
	return nil
}

// close deletes every namespace made (their veths go with them).
func (t *topo) close() {
	for i := len(t.made) - 1; i >= 0; i-- {
		if err := run("ip", "netns", "delete", t.made[i]); err != nil {
			fmt.Fprintf(os.Stderr, "sim: cleanup: %v\n", err)
		}
	}
	t.made = nil
}
