const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const DURATION_PATTERN = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/;

export type DurationResult = { ok: true; ms: number } | { ok: false; reason: string };

/**
 * A duration is a number of milliseconds or a string with a unit ("500ms", "10s", "2m", "1h",
 * "1d"). A bare numeric string like "10" is rejected: its unit would be a guess.
 */
export function parseDurationMs(input: unknown, options: { minMs: number; maxMs: number }): DurationResult {
  let ms: number;
  if (typeof input === 'number') {
    ms = input;
  } else if (typeof input === 'string') {
    const match = DURATION_PATTERN.exec(input.trim());
    const unit = match?.[2];
    if (match === null || unit === undefined) {
      return { ok: false, reason: `must be milliseconds or a duration like "10s", "500ms", "2m", "1h" (got ${JSON.stringify(input)})` };
    }
    ms = Number(match[1]) * (UNIT_MS[unit] ?? Number.NaN);
  } else {
    return { ok: false, reason: `must be a number of milliseconds or a duration string (got ${typeof input})` };
  }
  if (!Number.isFinite(ms) || !Number.isSafeInteger(Math.round(ms))) {
    return { ok: false, reason: `must be a finite number of milliseconds (got ${String(input)})` };
  }
  ms = Math.round(ms);
  if (ms < options.minMs || ms > options.maxMs) {
    return { ok: false, reason: `must be between ${options.minMs} ms and ${options.maxMs} ms (got ${ms} ms)` };
  }
  return { ok: true, ms };
}
