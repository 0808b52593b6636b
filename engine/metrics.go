package engine

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus series. A nil *Metrics records nothing,
// so tests and benchmarks need not set one up.
//
// Only the request-token counters carry an adapter label: histograms per
// adapter would multiply series by hundreds of adapters for little insight.
type Metrics struct {
	queueDepth     prometheus.Gauge
	active         prometheus.Gauge
	kvReserved     prometheus.Gauge
	kvBudget       prometheus.Gauge
	batchSize      prometheus.Histogram
	stepTokens     prometheus.Histogram
	stepSeconds    prometheus.Histogram
	ttft           prometheus.Histogram
	interToken     prometheus.Histogram
	promptTokens   *prometheus.CounterVec
	genTokens      *prometheus.CounterVec
	finished       *prometheus.CounterVec
	adapterLoads   prometheus.Counter
	loadFailures   prometheus.Counter
	loadSeconds    prometheus.Histogram
	evictions      prometheus.Counter
	hits           prometheus.Counter
	misses         prometheus.Counter
	adaptersLoaded prometheus.Gauge
	adapterBytes   prometheus.Gauge
}

// latencyBuckets span 1 ms to ~30 s: TTFT under load and per-token latency
// of a 2-core CPU both land in this range.
var latencyBuckets = prometheus.ExponentialBuckets(0.001, 2, 16)

// NewMetrics creates the engine's series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lorakit_queue_depth", Help: "Requests waiting for a batch slot."}),
		active:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "lorakit_active_sequences", Help: "Sequences in the running batch."}),
		kvReserved: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lorakit_kv_cache_reserved_bytes", Help: "KV cache memory reserved by running sequences (worst case of each)."}),
		kvBudget:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "lorakit_kv_cache_budget_bytes", Help: "KV cache memory budget."}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lorakit_batch_size", Help: "Sequences per forward step.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}}),
		stepTokens: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lorakit_step_tokens", Help: "Tokens (prefill and decode) per forward step.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		stepSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lorakit_step_seconds", Help: "Duration of one forward step.", Buckets: latencyBuckets}),
		ttft: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lorakit_time_to_first_token_seconds",
			Help: "From submission (after the adapter is loaded) to the first generated token.", Buckets: latencyBuckets}),
		interToken: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lorakit_inter_token_latency_seconds",
			Help: "Time between consecutive generated tokens of a sequence.", Buckets: latencyBuckets}),
		promptTokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lorakit_prompt_tokens_total", Help: "Prompt tokens processed."}, []string{"adapter"}),
		genTokens:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lorakit_generation_tokens_total", Help: "Tokens generated."}, []string{"adapter"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lorakit_sequences_finished_total",
			Help: "Sequences that left the engine, by reason (stop, length, cancelled, error, shutdown)."}, []string{"reason"}),
		adapterLoads: prometheus.NewCounter(prometheus.CounterOpts{Name: "lorakit_adapter_loads_total", Help: "Adapters read from disk."}),
		loadFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "lorakit_adapter_load_failures_total", Help: "Adapter loads that failed."}),
		loadSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lorakit_adapter_load_seconds", Help: "Time to read and check an adapter.",
			Buckets: latencyBuckets}),
		evictions:      prometheus.NewCounter(prometheus.CounterOpts{Name: "lorakit_adapter_evictions_total", Help: "Adapters dropped from the LRU."}),
		hits:           prometheus.NewCounter(prometheus.CounterOpts{Name: "lorakit_adapter_cache_hits_total", Help: "Adapter lookups served from memory."}),
		misses:         prometheus.NewCounter(prometheus.CounterOpts{Name: "lorakit_adapter_cache_misses_total", Help: "Adapter lookups that had to load."}),
		adaptersLoaded: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lorakit_adapters_loaded", Help: "Adapters held in memory."}),
		adapterBytes:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "lorakit_adapters_loaded_bytes", Help: "Memory of the adapters held (A and B matrices)."}),
	}
	reg.MustRegister(m.queueDepth, m.active, m.kvReserved, m.kvBudget, m.batchSize, m.stepTokens, m.stepSeconds, m.ttft, m.interToken,
		m.promptTokens, m.genTokens, m.finished, m.adapterLoads, m.loadFailures, m.loadSeconds, m.evictions, m.hits, m.misses,
		m.adaptersLoaded, m.adapterBytes)
	return m
}

func (m *Metrics) setDepth(depth int) {
	if m != nil {
		m.queueDepth.Set(float64(depth))
	}
}

func (m *Metrics) setBatch(active int, kvReserved int64) {
	if m == nil {
		return
	}
	m.active.Set(float64(active))
	m.kvReserved.Set(float64(kvReserved))
}

func (m *Metrics) setKVBudget(b int64) {
	if m != nil {
		m.kvBudget.Set(float64(b))
	}
}

func (m *Metrics) step(seqs, tokens int, d time.Duration) {
	if m == nil {
		return
	}
	m.batchSize.Observe(float64(seqs))
	m.stepTokens.Observe(float64(tokens))
	m.stepSeconds.Observe(d.Seconds())
}

func (m *Metrics) firstToken(d time.Duration) {
	if m != nil {
		m.ttft.Observe(d.Seconds())
	}
}

func (m *Metrics) nextToken(d time.Duration) {
	if m != nil {
		m.interToken.Observe(d.Seconds())
	}
}

func (m *Metrics) tokens(adapter string, prompt, generated int) {
	if m == nil {
		return
	}
	if adapter == "" {
		adapter = "base"
	}
	m.promptTokens.WithLabelValues(adapter).Add(float64(prompt))
	m.genTokens.WithLabelValues(adapter).Add(float64(generated))
}

func (m *Metrics) finish(reason string) {
	if m != nil {
		m.finished.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) adapterLoad(d time.Duration, err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.loadFailures.Inc()
		return
	}
	m.adapterLoads.Inc()
	m.loadSeconds.Observe(d.Seconds())
}

func (m *Metrics) lookup(hit bool) {
	if m == nil {
		return
	}
	if hit {
		m.hits.Inc()
	} else {
		m.misses.Inc()
	}
}

func (m *Metrics) evicted() {
	if m != nil {
		m.evictions.Inc()
	}
}

func (m *Metrics) setAdapters(n int, bytes int64) {
	if m == nil {
		return
	}
	m.adaptersLoaded.Set(float64(n))
	m.adapterBytes.Set(float64(bytes))
}
