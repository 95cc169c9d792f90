package content

import (
	"net/http"
	"strings"
	"testing"
)

func TestCheckHeader(t *testing.T) {
	for _, tc := range []struct {
		h    http.Header
		want string
	}{
		{http.Header{"Authorization": {"Bearer x"}, "X-A": {"1", "2"}}, ""},
		{nil, ""},
		{http.Header{"X-A": {"b\r\nEvil: 1"}}, "control characters"},
		{http.Header{"X-A": {"b\nc"}}, "control characters"},
		{http.Header{"X-A": {"b\x00"}}, "control characters"},
		{http.Header{"Bad Name": {"x"}}, "not a valid token"},
		{http.Header{"X\r\nEvil": {"x"}}, "not a valid token"},
		{http.Header{"": {"x"}}, "not a valid token"},
		{http.Header{"X-Big": {strings.Repeat("a", MaxHeaderBytes)}}, "larger than"},
	} {
		err := CheckHeader(tc.h)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%.80v: err = %v, want %q", tc.h, err, tc.want)
		}
	}
}
