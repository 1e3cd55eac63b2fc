/**
 * A minimal Prometheus text-format registry. Hot paths touch only plain number fields
 * (`counter.value++`, one bucket search for a histogram); formatting happens at scrape time.
 */
export type Labels = Readonly<Record<string, string>>;

export class Counter {
  value = 0;

  inc(by = 1): void {
    this.value += by;
  }
}

/** Cumulative-bucket histogram with fixed upper bounds, as Prometheus' client keeps them. */
export class Histogram {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    this.sum += value;
    this.count++;
    for (let i = 0; i < this.bounds.length; i++) {
      if (value <= (this.bounds[i] as number)) {
        this.counts[i] = (this.counts[i] as number) + 1;
        return;
      }
    }
  }
}

/** Bounds start, start·factor, … (count of them), as Go's prometheus.ExponentialBuckets. */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => start * factor ** i);
}

/**
 * A sample value as Prometheus' Go client writes it (strconv.FormatFloat(v, 'g', -1, 64)): the
 * shortest digits, in exponent form from 1e6 up or below 1e-4 (2.147483648e+09, 3.05e+07).
 */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  if (value === 0) return '0';
  const [mantissa = '0', exponentText = '0'] = value.toExponential().split('e');
  const exponent = Number(exponentText);
  if (exponent >= -4 && exponent < 6) return String(value);
  const digits = String(Math.abs(exponent)).padStart(2, '0');
  return `${mantissa}e${exponent < 0 ? '-' : '+'}${digits}`;
}

function formatLabels(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return '';
  const escape = (v: string): string =>
    v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
  return `{${keys.map((k) => `${k}="${escape(labels[k] ?? '')}"`).join(',')}}`;
}

export type Sample = readonly [labels: Labels, value: number];
export type LabeledHistogram = readonly [labels: Labels, histogram: Histogram];

/** Counters by label values; a label set appears once it was first counted. */
export class CounterVec {
  private readonly counters = new Map<string, { labels: Labels; counter: Counter }>();

  inc(labels: Labels, by = 1): void {
    const key = labelKey(labels);
    let entry = this.counters.get(key);
    if (entry === undefined) {
      entry = { labels, counter: new Counter() };
      this.counters.set(key, entry);
    }
    entry.counter.inc(by);
  }

  /** Current value of one label set (0 when never counted). */
  get(labels: Labels): number {
    return this.counters.get(labelKey(labels))?.counter.value ?? 0;
  }

  samples(): Sample[] {
    return [...this.counters.values()].map((e) => [e.labels, e.counter.value] as const);
  }
}

/** Histograms by label values, all with the same bounds. */
export class HistogramVec {
  private readonly histograms = new Map<string, { labels: Labels; histogram: Histogram }>();

  constructor(readonly bounds: readonly number[]) {}

  observe(labels: Labels, value: number): void {
    const key = labelKey(labels);
    let entry = this.histograms.get(key);
    if (entry === undefined) {
      entry = { labels, histogram: new Histogram(this.bounds) };
      this.histograms.set(key, entry);
    }
    entry.histogram.observe(value);
  }

  entries(): LabeledHistogram[] {
    return [...this.histograms.values()].map((e) => [e.labels, e.histogram] as const);
  }
}

/** One string per label set, whatever the key order; counted on every start, so kept cheap. */
function labelKey(labels: Labels): string {
  const names = Object.keys(labels);
  if (names.length > 1) names.sort();
  let key = '';
  for (const name of names) key += `${name}\u0000${labels[name] ?? ''}\u0001`;
  return key;
}

/** One metric family at scrape time: its samples are computed by `collect`. */
export interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  /** Samples; for a histogram, one unlabeled Histogram or several labeled ones. */
  collect(): readonly Sample[] | Histogram | readonly LabeledHistogram[];
}

function histogramLines(name: string, labels: Labels, histogram: Histogram): string[] {
  // `le` goes last, after the family's own labels, as Prometheus' clients write it.
  const base = formatLabels(labels);
  const prefix = base === '' ? '{' : `${base.slice(0, -1)},`;
  const lines: string[] = [];
  let cumulative = 0;
  histogram.bounds.forEach((bound, i) => {
    cumulative += histogram.counts[i] as number;
    lines.push(`${name}_bucket${prefix}le="${formatValue(bound)}"} ${cumulative}`);
  });
  lines.push(`${name}_bucket${prefix}le="+Inf"} ${histogram.count}`);
  lines.push(
    `${name}_sum${base} ${formatValue(histogram.sum)}`,
    `${name}_count${base} ${histogram.count}`,
  );
  return lines;
}

export function renderFamilies(families: readonly Family[]): string {
  const lines: string[] = [];
  for (const family of [...families].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`);
    const collected = family.collect();
    if (collected instanceof Histogram) {
      lines.push(...histogramLines(family.name, {}, collected));
      continue;
    }
    if (family.type === 'histogram') {
      const labeled = [...(collected as readonly LabeledHistogram[])];
      labeled.sort((a, b) => (formatLabels(a[0]) < formatLabels(b[0]) ? -1 : 1));
      for (const [labels, histogram] of labeled) {
        lines.push(...histogramLines(family.name, labels, histogram));
      }
      continue;
    }
    const samples = [...(collected as readonly Sample[])].map(
      ([labels, value]) => `${family.name}${formatLabels(labels)} ${formatValue(value)}`,
    );
    lines.push(...samples.sort());
  }
  return `${lines.join('\n')}\n`;
}
