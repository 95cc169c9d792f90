// Package metricstest reads single metric values out of a
// prometheus.Gatherer for tests that check a metric moved. It owns only
// these read helpers: it registers nothing and must not be imported by
// non-test code. (prometheus/testutil.ToFloat64 needs the collector itself;
// these helpers read what a registry really exposes, by name.)
package metricstest

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Value is the counter, gauge or untyped value of the series of name whose
// labels are exactly labels (nil for an unlabelled metric). A labelled
// series that was never created reads as 0. The test fails when name is not
// gathered, is a histogram or summary, or its series carry other label
// names than labels.
func Value(t testing.TB, g prometheus.Gatherer, name string, labels prometheus.Labels) float64 {
	t.Helper()
	m := series(t, g, name, labels)
	switch {
	case m == nil:
		return 0
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	case m.GetUntyped() != nil:
		return m.GetUntyped().GetValue()
	}
	t.Fatalf("%s%v is not a counter or gauge", name, labels)
	return 0
}

// HistCount is the sample count of the histogram series of name whose
// labels are exactly labels, with the same rules as Value.
func HistCount(t testing.TB, g prometheus.Gatherer, name string, labels prometheus.Labels) uint64 {
	t.Helper()
	m := series(t, g, name, labels)
	if m == nil {
		return 0
	}
	if m.GetHistogram() == nil {
		t.Fatalf("%s%v is not a histogram", name, labels)
	}
	return m.GetHistogram().GetSampleCount()
}

// series finds the series of name with exactly labels; nil when the metric
// is gathered with those label names but not that combination of values.
func series(t testing.TB, g prometheus.Gatherer, name string, labels prometheus.Labels) *dto.Metric {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				t.Fatalf("%s has labels %v, asked for %v", name, m.GetLabel(), labels)
			}
			match := true
			for _, lp := range m.GetLabel() {
				v, ok := labels[lp.GetName()]
				if !ok {
					t.Fatalf("%s has labels %v, asked for %v", name, m.GetLabel(), labels)
				}
				match = match && v == lp.GetValue()
			}
			if match {
				return m
			}
		}
		return nil
	}
	t.Fatalf("%s not gathered", name)
	return nil
}
