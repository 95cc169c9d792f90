package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// ChromiumPath is Debian's chromium (package chromium).
const ChromiumPath = "/usr/bin/chromium"

// Browser is a headless Chromium driven over the DevTools protocol
// (chromedp), with one tab. It records what a page should never produce:
// console errors, uncaught exceptions, failed requests and HTTP errors.
// Close ends Chromium and every process it started.
type Browser struct {
	dir    string // its own --user-data-dir: marks its processes
	pgid   int
	logf   *os.File
	cancel context.CancelFunc // the tab (graceful close)
	alloc  context.CancelFunc // the process
	tab    context.Context

	mu       sync.Mutex
	problems []string
}

// StartBrowser starts Chromium with a fresh profile in dir (created; its
// output goes to dir/chromium.log). The flags keep it from reaching for the
// network on its own, which makes it hang on a closed network.
func StartBrowser(dir string) (*Browser, error) {
	if _, err := os.Stat(ChromiumPath); err != nil {
		return nil, fmt.Errorf("chromium not installed (make deps): %w", err)
	}
	profile := filepath.Join(dir, "profile")
	if err := os.MkdirAll(profile, 0o700); err != nil {
		return nil, err
	}
	lf, err := os.Create(filepath.Join(dir, "chromium.log"))
	if err != nil {
		return nil, err
	}
	b := &Browser{dir: profile, logf: lf}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ChromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-breakpad", true), // no crashpad handler (it daemonizes)
		chromedp.Flag("disable-crash-reporter", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(lf),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			// Its own process group, so Close can end the helpers
			// (zygote, renderer, utility) with it; killed if we die.
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		}),
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, cancel := chromedp.NewContext(actx)
	b.tab, b.cancel, b.alloc = tab, cancel, acancel
	chromedp.ListenTarget(tab, b.observe)
	// The first Run starts the browser, which lives as long as the context
	// of that call: the tab's, not one with a timeout (chromedp gives up by
	// itself when Chromium does not report its DevTools address in 20 s).
	if err := chromedp.Run(tab, network.Enable(), log.Enable(), runtime.Enable()); err != nil {
		b.Close()
		return nil, fmt.Errorf("starting chromium: %w", err)
	}
	if p := chromedp.FromContext(tab).Browser.Process(); p != nil {
		b.pgid = p.Pid
	}
	return b, nil
}

func (b *Browser) observe(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.APITypeError || ev.Type == runtime.APITypeAssert || ev.Type == runtime.APITypeWarning {
			var args []string
			for _, a := range ev.Args {
				args = append(args, strings.Trim(string(a.Value), `"`)+a.Description)
			}
			b.problem("console.%s: %s", ev.Type, strings.Join(args, " "))
		}
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		msg := d.Text
		if d.Exception != nil {
			msg += " " + d.Exception.Description
		}
		b.problem("exception: %s (%s:%d)", msg, d.URL, d.LineNumber)
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.LevelError || ev.Entry.Level == log.LevelWarning {
			b.problem("log %s (%s): %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
		}
	case *network.EventLoadingFailed:
		b.problem("request failed: %s %s (canceled %v, blocked %q)", ev.Type, ev.ErrorText, ev.Canceled, ev.BlockedReason)
	case *network.EventResponseReceived:
		if ev.Response.Status >= 400 {
			b.problem("HTTP %d for %s", ev.Response.Status, ev.Response.URL)
		}
	}
}

func (b *Browser) problem(format string, args ...any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.problems) < 100 {
		b.problems = append(b.problems, fmt.Sprintf(format, args...))
	}
}

// Problems returns the console errors and warnings, exceptions, failed
// requests and HTTP errors seen so far.
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// Run runs chromedp actions in the tab within timeout.
func (b *Browser) Run(timeout time.Duration, actions ...chromedp.Action) error {
	ctx, cancel := context.WithTimeout(b.tab, timeout)
	defer cancel()
	return chromedp.Run(ctx, actions...)
}

// Close closes Chromium gracefully, then kills whatever is left of its
// process group, and waits until no process with its profile remains. It
// reports any that survive 10 s.
func (b *Browser) Close() error {
	b.cancel() // closes the browser over the protocol and waits
	b.alloc()  // kills the process if it is still there, waits for it
	defer b.logf.Close()
	if b.pgid > 0 {
		// Its helpers end on their own once the browser is gone; give them
		// a moment (killing a parent first leaves orphans for init to
		// reap), then kill what is left of the group.
		for end := time.Now().Add(3 * time.Second); len(inGroup(b.pgid)) > 0 && time.Now().Before(end); {
			time.Sleep(50 * time.Millisecond)
		}
		_ = syscall.Kill(-b.pgid, syscall.SIGKILL)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		left := append(processesWith(b.dir), inGroup(b.pgid)...)
		if len(left) == 0 {
			return nil
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("chromium processes still running after Close: %v", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// processesWith lists the live processes whose command line contains s
// (here a profile dir no other process names; a zombie's is empty).
func processesWith(s string) []int {
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmd, []byte(s)) {
			continue
		}
		out = append(out, pid)
	}
	return out
}

// inGroup lists the live (not zombie) processes in process group pgid.
func inGroup(pgid int) []int {
	if pgid <= 0 {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parens.
		i := bytes.LastIndexByte(st, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(st[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			out = append(out, pid)
		}
	}
	return out
}
