import { describe, expect, it } from 'vitest';
import {
  CounterVec, HistogramVec, renderFamilies, type Family,
} from '../../shared/metrics/registry.js';
import { reasonClass } from '../../shared/metrics/scheduler-metrics.js';
import { parsePrometheusText } from '../support/prometheus-text.js';

// The exposition of labeled families (#13): what a Prometheus server parses from /metrics.

describe('labeled metric families', () => {
  it('renders counters by label set, one series per set, label values escaped', () => {
    const claims = new CounterVec();
    claims.inc({ result: 'won' });
    claims.inc({ result: 'won' }, 2);
    claims.inc({ result: 'say "hi"\n' });
    const family: Family = {
      name: 'etcron_claims_total', help: 'Claims.', type: 'counter',
      collect: () => claims.samples(),
    };
    expect(renderFamilies([family])).toBe([
      '# HELP etcron_claims_total Claims.',
      '# TYPE etcron_claims_total counter',
      'etcron_claims_total{result="say \\"hi\\"\\n"} 1',
      'etcron_claims_total{result="won"} 3',
      '',
    ].join('\n'));
    expect(claims.get({ result: 'won' })).toBe(3);
    expect(claims.get({ result: 'taken' })).toBe(0);
  });

  it('renders histograms by label set with cumulative buckets and le last', () => {
    const latency = new HistogramVec([0.01, 0.1]);
    latency.observe({ method: 'Txn' }, 0.005);
    latency.observe({ method: 'Txn' }, 0.05);
    latency.observe({ method: 'Txn' }, 3);
    latency.observe({ method: 'Range' }, 0.01);
    const family: Family = {
      name: 'etcron_store_request_duration_seconds', help: 'Requests.', type: 'histogram',
      collect: () => latency.entries(),
    };
    const text = renderFamilies([family]);
    expect(text).toContain([
      'etcron_store_request_duration_seconds_bucket{method="Txn",le="0.01"} 1',
      'etcron_store_request_duration_seconds_bucket{method="Txn",le="0.1"} 2',
      'etcron_store_request_duration_seconds_bucket{method="Txn",le="+Inf"} 3',
      'etcron_store_request_duration_seconds_sum{method="Txn"} 3.055',
      'etcron_store_request_duration_seconds_count{method="Txn"} 3',
    ].join('\n'));
    const samples = parsePrometheusText(text);
    const range = 'etcron_store_request_duration_seconds_bucket{method="Range",le="0.01"}';
    expect(samples.get(range)).toBe(1);
    // Series of one family come sorted by label set: Range before Txn.
    expect(text.indexOf('method="Range"')).toBeLessThan(text.indexOf('method="Txn"'));
  });

  it('sorts not-started reasons into a few label values', () => {
    expect(reasonClass('job paused')).toBe('paused');
    expect(reasonClass('overlap Forbid: a@x#1 still running')).toBe('overlap');
    expect(reasonClass('catch-up-cap: more than 3 missed slots in the catch-up window'))
      .toBe('catch-up-cap');
    expect(reasonClass('outside-catch-up-window: no worker started it within 5000 ms'))
      .toBe('start-deadline');
    expect(reasonClass(undefined)).toBe('unknown');
  });
});
