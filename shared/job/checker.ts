import { parseDurationMs } from './duration.js';
import { JOB_LIMITS } from './spec.js';

/** One problem with a spec; `field` is a dotted path such as "retries.count". */
export interface JobSpecIssue {
  readonly field: string;
  readonly reason: string;
}

export type Fields = Record<string, unknown>;

export function isRecord(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Collects issues so that one call reports every bad field, not just the first. */
export class Checker {
  readonly errors: JobSpecIssue[] = [];

  fail(field: string, reason: string): undefined {
    this.errors.push({ field, reason });
    return undefined;
  }

  strict(input: Fields, allowed: readonly string[], path: string): void {
    for (const key of Object.keys(input)) {
      if (!allowed.includes(key)) this.fail(path + key, `unknown field; allowed: ${allowed.join(', ')}`);
    }
  }

  record(value: unknown, field: string): Fields | undefined {
    if (value === undefined) return {};
    return isRecord(value) ? value : this.fail(field, 'must be an object');
  }

  duration(value: unknown, field: string, fallback: number, minMs: number): number {
    if (value === undefined) return fallback;
    const parsed = parseDurationMs(value, { minMs, maxMs: JOB_LIMITS.durationMsMax });
    return parsed.ok ? parsed.ms : (this.fail(field, parsed.reason) ?? fallback);
  }

  integer(value: unknown, field: string, fallback: number, min: number, max: number): number {
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
      return this.fail(field, `must be an integer from ${min} to ${max} (got ${JSON.stringify(value)})`) ?? fallback;
    }
    return value;
  }

  boolean(value: unknown, field: string): boolean {
    if (value === undefined) return false;
    return typeof value === 'boolean' ? value : (this.fail(field, 'must be true or false') ?? false);
  }

  stringList(value: unknown, field: string, itemsMax: number): string[] {
    if (value === undefined) return [];
    if (!Array.isArray(value) || value.length > itemsMax || !value.every((v) => typeof v === 'string')) {
      return this.fail(field, `must be a list of at most ${itemsMax} strings`) ?? [];
    }
    return value as string[];
  }
}
