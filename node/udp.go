package node

import (
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// MinUDPBuffer is the socket buffer size quic-go asks for (about 7.5 MB).
// Below it, QUIC throughput suffers under load and quic-go logs a warning.
const MinUDPBuffer = 7500000

// UDPBufferSysctl is the command that raises the kernel's limits enough.
const UDPBufferSysctl = "sysctl -w net.core.rmem_max=7500000 net.core.wmem_max=7500000"

// CheckUDPBuffers reads net.core.rmem_max and net.core.wmem_max from
// /proc/sys. If either is below MinUDPBuffer it logs one warning (one line
// for both values) with the sysctl command that fixes it. Call it once at
// startup, before New.
//
// It also sets QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true in the process
// environment, so quic-go does not print its own unstructured warning through
// the standard log package: this function has already reported the
// problem in the daemon's log. (quic-go may still get larger buffers when the
// process has CAP_NET_ADMIN, since it then forces them past the limit.)
// On systems without /proc it does nothing but set the variable.
func CheckUDPBuffers(log *slog.Logger) {
	checkUDPBuffers(log, "/proc/sys/net/core")
}

func checkUDPBuffers(log *slog.Logger, dir string) {
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	if log == nil {
		log = slog.Default()
	}
	rmem, rerr := readSysctlInt(filepath.Join(dir, "rmem_max"))
	wmem, werr := readSysctlInt(filepath.Join(dir, "wmem_max"))
	if rerr != nil || werr != nil {
		return // not Linux, or /proc not mounted: nothing to say
	}
	if rmem >= MinUDPBuffer && wmem >= MinUDPBuffer {
		return
	}
	log.Warn("UDP socket buffer limits are too small for fast QUIC transfers; raise them with: "+UDPBufferSysctl,
		"rmem_max", rmem, "wmem_max", wmem, "want", MinUDPBuffer, "fix", UDPBufferSysctl)
}

func readSysctlInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}
