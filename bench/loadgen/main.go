// loadgen drives an etcd v3 endpoint (real etcd or `etcron store`) through etcd's own Go
// client (clientv3 3.4) and prints one JSON line with throughput and latency percentiles.
//
//	loadgen -endpoints 127.0.0.1:2379 -op put|get|getser|txn -clients 64 -conns 8 -n 20000 -keys 1000 -val 256
//	loadgen -endpoints 127.0.0.1:2379 -load 200000 -val 256      (writes 200000 distinct keys, op "load")
//	loadgen -op lease -keys 10000 ...        (keep-alives cycling over 10000 live leases)
//	loadgen -op watch -watchers 1000 -n 2000 (events/s delivered to 1000 watchers of one prefix)
//
// Every run is bounded: it stops after -n measured operations or after -duration, whichever
// comes first, and every request carries a -timeout deadline.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/pkg/logutil"
	"go.uber.org/zap"
)

type result struct {
	Op        string  `json:"op"`
	Clients   int     `json:"clients"`
	Ops       int64   `json:"ops"`
	Seconds   float64 `json:"seconds"`
	OpsPerSec float64 `json:"opsPerSec"`
	P50Ms     float64 `json:"p50Ms"`
	P99Ms     float64 `json:"p99Ms"`
	Errors    int64   `json:"errors"`
	Conns     int     `json:"conns"`
	FirstErr  string  `json:"firstError,omitempty"`
	TimedOut  bool    `json:"timedOut,omitempty"`
	// For -op watch: the watch responses that carried the events (fewer, larger ones cost a
	// client less).
	Responses int64 `json:"responses,omitempty"`
}

type config struct {
	op        string
	clients   int
	n         int64
	keys      int64
	prefix    string
	value     string
	timeout   time.Duration
	duration  time.Duration
	warmup    int64
	firstOnce sync.Once
	firstErr  atomic.Value
	leases    []clientv3.LeaseID
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "loadgen: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "comma-separated host:port list")
	op := flag.String("op", "put", "put | get (linearizable) | getser (serializable) | txn (compare version > 0, then put) | lease (keep-alive once over -keys leases) | watch (puts seen by -watchers)")
	watchers := flag.Int("watchers", 1000, "for -op watch: prefix watchers, spread over the connections")
	clients := flag.Int("clients", 64, "concurrent outstanding requests")
	conns := flag.Int("conns", 8, "gRPC connections (clientv3 clients) shared by the workers")
	n := flag.Int64("n", 20000, "measured operations")
	keys := flag.Int64("keys", 1000, "size of the key space the operations cycle through")
	vsize := flag.Int("val", 256, "value size in bytes")
	load := flag.Int64("load", 0, "instead of -op: write this many distinct keys of -val bytes (op \"load\")")
	prefix := flag.String("prefix", "loadgen/", "key prefix")
	timeout := flag.Duration("timeout", 10*time.Second, "deadline of each request")
	duration := flag.Duration("duration", 120*time.Second, "stop the measured phase after this long even if -n is not reached")
	warmup := flag.Int64("warmup", 0, "unmeasured operations before the measured phase")
	dialTimeout := flag.Duration("dial-timeout", 5*time.Second, "connection timeout")
	verbose := flag.Bool("v", false, "keep the client's warnings (one per failed request) on stderr")
	flag.Parse()

	switch *op {
	case "put", "get", "getser", "txn", "lease", "watch":
	default:
		fail("unknown -op %q", *op)
	}
	if *clients < 1 || *conns < 1 || *n < 1 || *keys < 1 || *vsize < 0 {
		fail("-clients, -conns, -n and -keys must be positive")
	}
	if *conns > *clients {
		*conns = *clients
	}

	eps := strings.Split(*endpoints, ",")
	logCfg := logutil.DefaultZapLoggerConfig
	if !*verbose {
		logCfg.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	}
	cs := make([]*clientv3.Client, *conns)
	for i := range cs {
		c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: *dialTimeout, LogConfig: &logCfg})
		if err != nil {
			fail("connect %s: %v", *endpoints, err)
		}
		cs[i] = c
	}
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()

	cfg := &config{
		op: *op, clients: *clients, n: *n, keys: *keys, prefix: *prefix,
		value: strings.Repeat("v", *vsize), timeout: *timeout, duration: *duration, warmup: *warmup,
	}

	var res result
	if cfg.op == "watch" {
		if *watchers < 1 {
			fail("-watchers must be positive")
		}
		if cfg.warmup > 0 {
			// A whole unmeasured fan-out first, on watchers of a sibling prefix that are gone
			// before the measured ones open: the servers' watch path is warm, as the other rows'
			// paths are after their warm-up operations.
			w := *cfg
			w.n = cfg.warmup
			w.prefix = strings.TrimSuffix(cfg.prefix, "/") + "-warmup/"
			w.duration = cfg.duration / 4
			w.runWatch(cs, *watchers)
		}
		res = cfg.runWatch(cs, *watchers)
	} else if *load > 0 {
		// Distinct keys 0..load-1, each written once; -duration bounds it as well.
		cfg.op, cfg.n, cfg.keys, cfg.warmup = "put", *load, *load, 0
		res = cfg.run(cs, "load")
	} else {
		if cfg.op == "lease" {
			cfg.leases = cfg.seedLeases(cs)
		} else if cfg.op != "put" {
			cfg.seed(cs) // reads and txn compares need existing keys
		}
		if cfg.warmup > 0 {
			w := *cfg
			w.n = cfg.warmup
			w.duration = cfg.duration / 4 // the warmup never dominates the run
			w.run(cs, "warmup")
		}
		res = cfg.run(cs, cfg.op)
	}
	res.Conns = len(cs)
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}

func (cfg *config) key(i int64) string {
	return fmt.Sprintf("%s%08d", cfg.prefix, i%cfg.keys)
}

func (cfg *config) noteErr(err error) {
	cfg.firstOnce.Do(func() { cfg.firstErr.Store(err.Error()) })
}

// seed writes every key of the key space once, with the same concurrency as the run.
func (cfg *config) seed(cs []*clientv3.Client) {
	errs, done := cfg.forEachKey(cs, func(ctx context.Context, c *clientv3.Client, i int64) error {
		_, err := c.Put(ctx, cfg.key(i), cfg.value)
		return err
	})
	if errs > 0 || done < cfg.keys {
		fail("seeding %d keys: %d errors, first: %v", cfg.keys, errs, cfg.firstErr.Load())
	}
}

// forEachKey calls fn once for each index of the key space, cfg.clients at a time, each call
// with a cfg.timeout deadline, all within cfg.duration; it returns the failed calls and the
// indexes reached.
func (cfg *config) forEachKey(cs []*clientv3.Client, fn func(context.Context, *clientv3.Client, int64) error) (int64, int64) {
	var next int64 = -1
	var errs int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(cfg.duration)
	for w := 0; w < cfg.clients; w++ {
		wg.Add(1)
		go func(c *clientv3.Client) {
			defer wg.Done()
			for time.Now().Before(deadline) {
				i := atomic.AddInt64(&next, 1)
				if i >= cfg.keys {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
				err := fn(ctx, c, i)
				cancel()
				if err != nil {
					atomic.AddInt64(&errs, 1)
					cfg.noteErr(err)
				}
			}
		}(cs[w%len(cs)])
	}
	wg.Wait()
	reached := atomic.LoadInt64(&next)
	if reached > cfg.keys {
		reached = cfg.keys
	}
	return errs, reached
}

// run performs cfg.n operations (or fewer if cfg.duration passes) with cfg.clients workers.
func (cfg *config) run(cs []*clientv3.Client, label string) result {
	var next int64 = -1
	var errs, done int64
	lat := make([][]int64, cfg.clients) // microseconds, per worker: no sharing on the hot path
	// When each request ended (Unix microseconds), kept only for dumpLatencies.
	latencyFile := os.Getenv("LOADGEN_LATENCIES")
	ends := make([][]int64, cfg.clients)
	per := cfg.n/int64(cfg.clients) + 1
	var wg sync.WaitGroup
	t0 := time.Now()
	deadline := t0.Add(cfg.duration)
	var timedOut int32
	for w := 0; w < cfg.clients; w++ {
		lat[w] = make([]int64, 0, per)
		if latencyFile != "" {
			ends[w] = make([]int64, 0, per)
		}
		wg.Add(1)
		go func(w int, c *clientv3.Client) {
			defer wg.Done()
			for {
				i := atomic.AddInt64(&next, 1)
				if i >= cfg.n {
					return
				}
				if i%64 == 0 && time.Now().After(deadline) {
					atomic.StoreInt32(&timedOut, 1)
					return
				}
				key := cfg.key(i)
				ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
				s := time.Now()
				var err error
				switch cfg.op {
				case "put":
					_, err = c.Put(ctx, key, cfg.value)
				case "get":
					_, err = c.Get(ctx, key)
				case "getser":
					_, err = c.Get(ctx, key, clientv3.WithSerializable())
				case "lease":
					var r *clientv3.LeaseKeepAliveResponse
					r, err = c.KeepAliveOnce(ctx, cfg.leases[i%int64(len(cfg.leases))])
					if err == nil && r.TTL <= 0 {
						err = fmt.Errorf("lease %x expired during the run", int64(r.ID))
					}
				case "txn":
					var r *clientv3.TxnResponse
					r, err = c.Txn(ctx).
						If(clientv3.Compare(clientv3.Version(key), ">", 0)).
						Then(clientv3.OpPut(key, cfg.value)).
						Commit()
					if err == nil && !r.Succeeded {
						err = fmt.Errorf("txn compare failed on %s (key should exist)", key)
					}
				}
				d := time.Since(s)
				cancel()
				if err != nil {
					atomic.AddInt64(&errs, 1)
					cfg.noteErr(err)
					continue
				}
				atomic.AddInt64(&done, 1)
				lat[w] = append(lat[w], d.Microseconds())
				if latencyFile != "" {
					ends[w] = append(ends[w], s.Add(d).UnixMicro())
				}
			}
		}(w, cs[w%len(cs)])
	}
	wg.Wait()
	secs := time.Since(t0).Seconds()

	if latencyFile != "" {
		dumpLatencies(latencyFile, lat, ends)
	}
	all := make([]int64, 0, done)
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	res := result{
		Op: label, Clients: cfg.clients, Ops: done, Seconds: round3(secs),
		OpsPerSec: math.Round(float64(done) / secs), P50Ms: percentile(all, 0.50), P99Ms: percentile(all, 0.99),
		Errors: errs, TimedOut: timedOut == 1,
	}
	if e, ok := cfg.firstErr.Load().(string); ok {
		res.FirstErr = e
	}
	return res
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// dumpLatencies writes every measured request to the file LOADGEN_LATENCIES names: one line each,
// "<end, Unix microseconds> <latency, microseconds>", worker by worker. With one client it is a
// time series, to line slow requests up with what the servers logged at that moment.
func dumpLatencies(path string, lat, ends [][]int64) {
	var b strings.Builder
	for w := range lat {
		for i, v := range lat[w] {
			fmt.Fprintf(&b, "%d %d\n", ends[w][i], v)
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: writing latencies:", err)
	}
}
