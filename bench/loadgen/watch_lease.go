package main

// The watch fan-out and lease rows: many watchers on one prefix, and keep-alives over many live
// leases. Both stay bounded by -n and -duration like the other operations.

import (
	"context"
	"math"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/clientv3"
)

// leaseTTLSeconds outlives any bounded run, so no lease expires while it is measured.
const leaseTTLSeconds = 600

// seedLeases grants cfg.keys leases with cfg.clients concurrent grants; the keep-alive run
// cycles through them.
func (cfg *config) seedLeases(cs []*clientv3.Client) []clientv3.LeaseID {
	ids := make([]clientv3.LeaseID, cfg.keys)
	errs, done := cfg.forEachKey(cs, func(ctx context.Context, c *clientv3.Client, i int64) error {
		r, err := c.Grant(ctx, leaseTTLSeconds)
		if err == nil {
			ids[i] = r.ID
		}
		return err
	})
	if errs > 0 || done < cfg.keys {
		fail("granting %d leases: %d errors, first: %v", cfg.keys, errs, cfg.firstErr.Load())
	}
	return ids
}

// runWatch opens `watchers` prefix watches spread over the connections, then puts cfg.n values
// under the prefix with cfg.clients writers. Each value carries its send time, so every event
// gives a delivery latency; throughput is events delivered per second.
func (cfg *config) runWatch(cs []*clientv3.Client, watchers int) result {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration)
	defer cancel()
	expected := cfg.n * int64(watchers)
	var received, responses int64
	allIn := make(chan struct{})
	created := make(chan struct{}, watchers)
	lat := make([][]int64, watchers)
	var wg sync.WaitGroup
	for w := 0; w < watchers; w++ {
		wg.Add(1)
		go func(w int, c *clientv3.Client) {
			defer wg.Done()
			wch := c.Watch(clientv3.WithRequireLeader(ctx), cfg.prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
			for resp := range wch {
				if resp.Created {
					created <- struct{}{}
				}
				if len(resp.Events) > 0 {
					atomic.AddInt64(&responses, 1)
				}
				for _, ev := range resp.Events {
					sent, err := strconv.ParseInt(string(ev.Kv.Value), 10, 64)
					if err == nil {
						lat[w] = append(lat[w], (time.Now().UnixNano()-sent)/1000)
					}
					if atomic.AddInt64(&received, 1) == expected {
						close(allIn)
					}
				}
			}
		}(w, cs[w%len(cs)])
	}
	for i := 0; i < watchers; i++ {
		select {
		case <-created:
		case <-ctx.Done():
			fail("only %d of %d watchers were created in %v", i, watchers, cfg.duration)
		}
	}
	t0 := time.Now()
	var next int64 = -1
	var errs int64
	var writers sync.WaitGroup
	for w := 0; w < cfg.clients; w++ {
		writers.Add(1)
		go func(c *clientv3.Client) {
			defer writers.Done()
			for ctx.Err() == nil {
				i := atomic.AddInt64(&next, 1)
				if i >= cfg.n {
					return
				}
				pctx, pcancel := context.WithTimeout(ctx, cfg.timeout)
				_, err := c.Put(pctx, cfg.key(i), strconv.FormatInt(time.Now().UnixNano(), 10))
				pcancel()
				if err != nil {
					atomic.AddInt64(&errs, 1)
					cfg.noteErr(err)
				}
			}
		}(cs[w%len(cs)])
	}
	writers.Wait()
	timedOut := false
	select {
	case <-allIn:
	case <-ctx.Done():
		timedOut = true
	}
	secs := time.Since(t0).Seconds()
	got := atomic.LoadInt64(&received)
	cancel()
	wg.Wait()
	all := make([]int64, 0, got)
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	res := result{
		Op: "watch", Clients: cfg.clients, Ops: got, Seconds: round3(secs),
		OpsPerSec: math.Round(float64(got) / secs), P50Ms: percentile(all, 0.50), P99Ms: percentile(all, 0.99),
		Errors: errs + (expected - got), TimedOut: timedOut, Responses: atomic.LoadInt64(&responses),
	}
	if e, ok := cfg.firstErr.Load().(string); ok {
		res.FirstErr = e
	}
	return res
}

// percentile of sorted microsecond samples, in milliseconds.
func percentile(sorted []int64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	idx := int(math.Ceil(q*float64(len(sorted)))) - 1
	if idx < 0 {
		idx = 0
	}
	return math.Round(float64(sorted[idx])) / 1000
}
