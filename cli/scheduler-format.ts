/** Output helpers: aligned tables for people, JSON for scripts (`-o json`). */

export type OutputFormat = 'table' | 'json';

export function parseOutputFormat(value: string): OutputFormat {
  if (value === 'table' || value === 'json') return value;
  throw new Error(`--output must be table or json (got ${JSON.stringify(value)})`);
}

export type Cell = string | number | boolean | null | undefined;

/** Renders rows under headers, columns padded to their widest cell; empty cells show as '-'. */
export function renderTable(headers: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const text = rows.map((row) => headers.map((_, i) => cellText(row[i])));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [line(headers), ...text.map(line)].join('\n') + '\n';
}

function cellText(cell: Cell): string {
  if (cell === null || cell === undefined || cell === '') return '-';
  return String(cell);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** "2026-11-29T18:00:00.000Z" → "2026-11-29 18:00:00Z": shorter in tables, still UTC. */
export function shortTime(ms: number | undefined | null): string {
  if (ms === undefined || ms === null) return '-';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, 'Z');
}

export function durationText(startMs: number | undefined, endMs: number | undefined): string {
  if (startMs === undefined || endMs === undefined) return '-';
  const ms = endMs - startMs;
  return Math.abs(ms) < 10_000 ? `${ms}ms` : `${(ms / 1000).toFixed(1)}s`;
}

/** `toMs` relative to `fromMs`, signed: "+850ms", "+12.0s", "-3ms" (a worker's clock ahead). */
export function offsetText(fromMs: number, toMs: number | undefined): string {
  if (toMs === undefined || !Number.isFinite(fromMs)) return '-';
  return `${toMs >= fromMs ? '+' : ''}${durationText(fromMs, toMs)}`;
}
