package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/testground/sdk-go/network"
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

// shapeLink rate-limits instance i's link in both directions (the
// router-side veth's egress is the instance's ingress). Without rules: one
// tbf at bitsPerSec (0 removes it). With rules (network.LinkRule, one per
// subnet): an htb tree on each end, capped at bitsPerSec in total, with one
// class per distinct rule bandwidth that every subnet of that bandwidth
// shares (a u32 filter on the destination on the instance side, on the
// source on the router side). Rules' latency/jitter/loss are applied by the
// plan in user space, like the default's.
func (t *topo) shapeLink(i int, bitsPerSec uint64, rules []network.LinkRule) error {
	for side, dev := range [][2]string{{t.router, fmt.Sprintf("v%d", i)}, {t.instNS(i), "eth0"}} {
		run("tc", "-n", dev[0], "qdisc", "del", "dev", dev[1], "root")
		if len(rules) > 0 {
			match := "src"
			if side == 1 {
				match = "dst"
			}
			if err := t.htb(dev[0], dev[1], match, bitsPerSec, rules); err != nil {
				return err
			}
			continue
		}
		if bitsPerSec == 0 {
			continue
		}
		if err := run("tc", "-n", dev[0], "qdisc", "add", "dev", dev[1], "root", "tbf",
			"rate", fmt.Sprintf("%dbit", bitsPerSec), "burst", strconv.FormatUint(burst(bitsPerSec), 10), "latency", "50ms"); err != nil {
			return err
		}
	}
	return nil
}

// burst: 10 ms at the rate, at least 32 KiB (tbf's queue is bounded to 50 ms).
func burst(bitsPerSec uint64) uint64 {
	return max(bitsPerSec/8/100, 32<<10)
}

func (t *topo) htb(ns, dev, match string, total uint64, rules []network.LinkRule) error {
	if total == 0 {
		total = 10_000_000_000
	}
	tc := func(args ...string) error { return run("tc", append([]string{"-n", ns}, args...)...) }
	leaf := func(class string, rate uint64) error {
		r := fmt.Sprintf("%dbit", rate)
		if err := tc("class", "add", "dev", dev, "parent", "1:1", "classid", class, "htb", "rate", r, "ceil", r,
			"burst", strconv.FormatUint(burst(rate), 10)); err != nil {
			return err
		}
		// queue: 100 ms at the class rate, at least 512 KiB (veth hands htb
		// GSO super-packets of up to 64 KiB; a smaller byte limit drops them
		// and stalls TCP)
		return tc("qdisc", "add", "dev", dev, "parent", class, "bfifo", "limit", strconv.FormatUint(max(rate/8/10, 512<<10), 10))
	}
	r := fmt.Sprintf("%dbit", total)
	if err := tc("qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10"); err != nil {
		return err
	}
	if err := tc("class", "add", "dev", dev, "parent", "1:", "classid", "1:1", "htb", "rate", r, "ceil", r,
		"burst", strconv.FormatUint(burst(total), 10)); err != nil {
		return err
	}
	if err := leaf("1:10", total); err != nil {
		return err
	}
	classes := map[uint64]string{}
	for _, rl := range rules {
		rate := rl.Bandwidth * 8
		if rate == 0 || rate > total {
			rate = total
		}
		c, ok := classes[rate]
		if !ok {
			c = fmt.Sprintf("1:%d", 20+len(classes))
			classes[rate] = c
			if err := leaf(c, rate); err != nil {
				return err
			}
		}
		if err := tc("filter", "add", "dev", dev, "parent", "1:", "protocol", "ip", "prio", "1", "u32",
			"match", "ip", match, rl.Subnet.String(), "flowid", c); err != nil {
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
