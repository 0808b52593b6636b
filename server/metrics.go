package server

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics count requests. The model label is the base model's name or
// an adapter's, only once it is known to exist, so clients cannot grow the
// series without bound by sending made-up names.
type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lorakit_http_requests_total",
			Help: "HTTP requests by endpoint, model (base or adapter) and status."}, []string{"endpoint", "model", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "lorakit_http_request_seconds",
			Help: "HTTP request duration (a whole stream for streaming requests).", Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)},
			[]string{"endpoint"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *httpMetrics) observe(endpoint, model string, status int, d time.Duration) {
	m.requests.WithLabelValues(endpoint, model, strconv.Itoa(status)).Inc()
	m.duration.WithLabelValues(endpoint).Observe(d.Seconds())
}
