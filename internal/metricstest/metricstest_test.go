package metricstest

import (
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestValueAndHistCount(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "c_total", Help: "h"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "g", Help: "h"})
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "v_total", Help: "h"}, []string{"a", "b"})
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "h_seconds", Help: "h"}, []string{"kind"})
	f := prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "f_total", Help: "h"}, func() float64 { return 7 })
	reg.MustRegister(c, g, v, h, f)
	c.Add(2)
	g.Set(-3)
	v.WithLabelValues("x", "y").Add(5)
	h.WithLabelValues("blob").Observe(1)
	h.WithLabelValues("blob").Observe(2)

	for name, want := range map[string]float64{"c_total": 2, "g": -3, "f_total": 7} {
		if got := Value(t, reg, name, nil); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := Value(t, reg, "v_total", prometheus.Labels{"b": "y", "a": "x"}); got != 5 {
		t.Errorf("v_total{x,y} = %v, want 5", got)
	}
	if got := Value(t, reg, "v_total", prometheus.Labels{"a": "x", "b": "z"}); got != 0 {
		t.Errorf("untouched v_total{x,z} = %v, want 0", got)
	}
	if got := HistCount(t, reg, "h_seconds", prometheus.Labels{"kind": "blob"}); got != 2 {
		t.Errorf("h_seconds{blob} count = %v, want 2", got)
	}
	if got := HistCount(t, reg, "h_seconds", prometheus.Labels{"kind": "other"}); got != 0 {
		t.Errorf("untouched h_seconds{other} count = %v, want 0", got)
	}
}

// Misuse fails the test: an unknown name, the wrong label names, the
// wrong metric type.
func TestMisuseFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "v_total", Help: "h"}, []string{"a"})
	reg.MustRegister(v)
	v.WithLabelValues("x").Inc()
	for what, fn := range map[string]func(tb testing.TB){
		"unknown name":     func(tb testing.TB) { Value(tb, reg, "nope", nil) },
		"labels missing":   func(tb testing.TB) { Value(tb, reg, "v_total", nil) },
		"other label name": func(tb testing.TB) { Value(tb, reg, "v_total", prometheus.Labels{"b": "x"}) },
		"not a histogram":  func(tb testing.TB) { HistCount(tb, reg, "v_total", prometheus.Labels{"a": "x"}) },
	} {
		if !fails(fn) {
			t.Errorf("%s: did not fail", what)
		}
	}
}

// fails runs fn with a recording TB and reports whether it called Fatal.
func fails(fn func(testing.TB)) bool {
	r := &recorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(r)
	}()
	<-done
	return r.failed
}

type recorder struct {
	testing.TB
	failed bool
}

func (r *recorder) Helper() {}
func (r *recorder) Fatal(...any) {
	r.failed = true
	runtime.Goexit()
}
func (r *recorder) Fatalf(string, ...any) {
	r.failed = true
	runtime.Goexit()
}
