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

/** One metric family at scrape time: its samples are computed by `collect`. */
export interface Family {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  collect(): readonly Sample[] | Histogram;
}

export function renderFamilies(families: readonly Family[]): string {
  const lines: string[] = [];
  for (const family of [...families].sort((a, b) => (a.name < b.name ? -1 : 1))) {
    lines.push(`# HELP ${family.name} ${family.help}`, `# TYPE ${family.name} ${family.type}`);
    const collected = family.collect();
    if (collected instanceof Histogram) {
      let cumulative = 0;
      collected.bounds.forEach((bound, i) => {
        cumulative += collected.counts[i] as number;
        lines.push(`${family.name}_bucket{le="${formatValue(bound)}"} ${cumulative}`);
      });
      lines.push(`${family.name}_bucket{le="+Inf"} ${collected.count}`);
      lines.push(
        `${family.name}_sum ${formatValue(collected.sum)}`,
        `${family.name}_count ${collected.count}`,
      );
      continue;
    }
    const samples = [...collected].map(
      ([labels, value]) => `${family.name}${formatLabels(labels)} ${formatValue(value)}`,
    );
    lines.push(...samples.sort());
  }
  return `${lines.join('\n')}\n`;
}
