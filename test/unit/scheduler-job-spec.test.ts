import { describe, expect, it } from 'vitest';
import { parseJobSpec, serializeJobSpec, deserializeJobSpec } from '../../shared/job/index.js';
import { lockKey, parseRunKey, prefixEnd, runKey, validateJobName } from '../../shared/keys.js';

const base = { name: 'backup', schedule: '*/5 * * * * *', command: 'echo hi' };

function fieldsOf(input: unknown): string[] {
  const result = parseJobSpec(input);
  return result.ok ? [] : result.errors.map((e) => e.field);
}

describe('job spec parsing (bad scheduler inputs get a clear error)', () => {
  it('accepts a minimal spec and fills defaults', () => {
    const result = parseJobSpec(base);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.spec.timezone).toBe('UTC');
    expect(result.spec.overlap).toBe('Allow');
    expect(result.spec.outputTailBytesMax).toBe(256 * 1024);
    expect(deserializeJobSpec(serializeJobSpec(result.spec))).toEqual(result);
  });

  it.each([
    [''], ['* * * *'], ['* * * * * * * *'], ['60 * * * * *'], ['5-1 * * * *'], ['* * * * MON-FOO'], ['x'.repeat(10_000)],
    ['*/0 * * * * *'], ['@every 0s'], ['@every -1s'], ['0 0 30 2 *'], ['@fortnightly'],
  ])('rejects schedule %j naming the field', (schedule) => {
    const started = Date.now();
    expect(fieldsOf({ ...base, schedule })).toEqual(['schedule']);
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it.each([['Mars/Phobos'], [''], ['UTC+25'], ['../../etc/passwd'], ['Europe/Paris ']])('rejects time zone %j', (timezone) => {
    expect(fieldsOf({ ...base, timezone })).toEqual(['timezone']);
  });

  it('keeps preferWorkers in the given order, leaves it out when empty, and rejects bad ids', () => {
    const result = parseJobSpec({ ...base, preferWorkers: ['w2', 'w1'] });
    expect(result.ok && result.spec.preferWorkers).toEqual(['w2', 'w1']);
    const none = parseJobSpec({ ...base, preferWorkers: [] });
    expect(none.ok && 'preferWorkers' in none.spec).toBe(false);
    expect(fieldsOf({ ...base, preferWorkers: ['a/b'] })).toEqual(['preferWorkers']);
    expect(fieldsOf({ ...base, preferWorkers: ['w1', 'w1'] })).toEqual(['preferWorkers']);
    expect(fieldsOf({ ...base, preferWorkers: 'w1' })).toEqual(['preferWorkers']);
  });

  it('stores a case-insensitive time zone in its canonical spelling', () => {
    const result = parseJobSpec({ ...base, timezone: 'europe/paris' });
    expect(result.ok && result.spec.timezone).toBe('Europe/Paris');
  });

  it.each([[''], ['a/b'], ['..'], ['a\u0000b'], ['x'.repeat(129)], [42]])('rejects job name %j', (name) => {
    expect(fieldsOf({ ...base, name })).toEqual(['name']);
  });

  it('rejects unknown fields and unknown overlap policies, listing the valid values', () => {
    expect(fieldsOf({ name: 'a', schedul: '* * * * *', command: 'x' })).toEqual(expect.arrayContaining(['schedul', 'schedule']));
    const result = parseJobSpec({ ...base, overlap: 'Queue' });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors[0]?.reason).toContain('Allow, Forbid, Replace, BufferOne');
  });

  it.each([['10'], [-1], [0], [1e309], [2 ** 53 + 1], [true]])('rejects timeout %j with its range', (timeoutMs) => {
    const result = parseJobSpec({ ...base, timeoutMs });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors.map((e) => e.field)).toEqual(['timeoutMs']);
  });

  it('accepts durations with units and rejects a 1 MiB command', () => {
    const result = parseJobSpec({ ...base, timeoutMs: '1.5s', catchUp: { windowMs: '2m', max: 3 } });
    expect(result.ok && [result.spec.timeoutMs, result.spec.catchUp.windowMs]).toEqual([1_500, 120_000]);
    expect(fieldsOf({ ...base, command: 'x'.repeat(1024 * 1024) })).toEqual(['command']);
    expect(fieldsOf({ ...base, argv: ['ls'] })).toEqual(['argv']);
    expect(fieldsOf({ ...base, retries: { count: 2, backof: 1 } })).toEqual(['retries.backof']);
  });
});

describe('key layout', () => {
  it('builds and parses run and lock keys in slot order', () => {
    const slot = Date.parse('2026-03-08T07:00:00Z');
    expect(runKey('backup', slot)).toBe('/cron/runs/backup/2026-03-08T07:00:00.000Z');
    expect(lockKey('backup', slot, 'w1')).toBe('/cron/lock/backup/2026-03-08T07:00:00.000Z~w1');
    expect(parseRunKey(lockKey('backup', slot, 'w1'))).toEqual({ job: 'backup', slot: '2026-03-08T07:00:00.000Z', slotMs: slot, broadcastWorker: 'w1' });
    expect(runKey('b', slot) < runKey('b', slot + 1000)).toBe(true);
    expect(prefixEnd('/cron/runs/b/').toString()).toBe('/cron/runs/b0');
    expect(validateJobName('a.b-c_1').ok).toBe(true);
  });
});

describe('HTTP job specs', () => {
  const http = { name: 'hook', schedule: '@every 10s' };

  it('normalizes a minimal request: GET, no headers, any 2xx, and a default timeout', () => {
    const result = parseJobSpec({ ...http, http: { url: 'https://example.test/run' } });
    expect(result.ok && result.spec.http).toEqual({ method: 'GET', url: 'https://example.test/run', headers: {} });
    expect(result.ok && result.spec.timeoutMs).toBe(60_000);
    if (result.ok) expect(deserializeJobSpec(serializeJobSpec(result.spec))).toEqual(result);
  });

  it('keeps method, lower-cased header names, body and sorted statuses', () => {
    const result = parseJobSpec({
      ...http, timeoutMs: '5s',
      http: { method: 'post', url: 'http://127.0.0.1:9/x', headers: { Authorization: 'Bearer t' }, body: '{}', expectStatus: [204, 200, 204] },
    });
    expect(result.ok && result.spec.http).toEqual({
      method: 'POST', url: 'http://127.0.0.1:9/x', headers: { authorization: 'Bearer t' }, body: '{}', expectStatus: [200, 204],
    });
    expect(result.ok && result.spec.timeoutMs).toBe(5_000);
  });

  it.each([
    [{ url: 'ftp://example.test/' }, 'http.url'],
    [{ url: 'not a url' }, 'http.url'],
    [{ url: 'http://user:pw@example.test/' }, 'http.url'],
    [{}, 'http.url'],
    [{ url: 'http://a.test/', method: 'BREW' }, 'http.method'],
    [{ url: 'http://a.test/', body: 'x' }, 'http.body'],
    [{ url: 'http://a.test/', headers: { 'X-Etcron-Fence': '9' } }, 'http.headers.X-Etcron-Fence'],
    [{ url: 'http://a.test/', headers: { Host: 'b.test' } }, 'http.headers.Host'],
    [{ url: 'http://a.test/', headers: { 'bad name': 'x' } }, 'http.headers.bad name'],
    [{ url: 'http://a.test/', headers: { 'X-A': 'a\r\nX-B: b' } }, 'http.headers.X-A'],
    [{ url: 'http://a.test/', expectStatus: [99] }, 'http.expectStatus'],
    [{ url: 'http://a.test/', redirect: true }, 'http.redirect'],
  ])('rejects http %j naming %s', (request, field) => {
    expect(fieldsOf({ ...http, http: request })).toEqual([field]);
  });

  it('takes exactly one of command, argv and http; env and cwd belong to processes', () => {
    expect(fieldsOf({ ...http, command: 'true', http: { url: 'http://a.test/' } })).toEqual(['http']);
    expect(fieldsOf({ ...http })).toEqual(['command']);
    expect(fieldsOf({ ...http, env: { A: '1' }, http: { url: 'http://a.test/' } })).toEqual(['env']);
    expect(fieldsOf({ ...http, cwd: '/tmp', http: { url: 'http://a.test/' } })).toEqual(['cwd']);
  });
});

describe('alert specs', () => {
  const job = { name: 'a', schedule: '@hourly', command: 'true' };

  it('defaults the states, orders them, and keeps webhook headers lower-cased', () => {
    const result = parseJobSpec({ ...job, alerts: { on: ['missed', 'failed', 'missed'], webhook: { url: 'https://hooks.test/x', headers: { 'X-Key': 'k' } } } });
    expect(result.ok && result.spec.alerts).toEqual({ on: ['failed', 'missed'], webhook: { url: 'https://hooks.test/x', headers: { 'x-key': 'k' } } });
    const defaults = parseJobSpec({ ...job, alerts: { command: 'notify' } });
    expect(defaults.ok && defaults.spec.alerts).toEqual({ on: ['failed', 'timeout', 'lost', 'missed'], command: 'notify' });
  });

  it.each([
    [{}, 'alerts'],
    [{ on: ['exploded'], command: 'x' }, 'alerts.on'],
    [{ webhook: { url: 'ftp://x/' } }, 'alerts.webhook.url'],
    [{ webhook: { url: 'http://x/', headers: { A: 'a\nb' } } }, 'alerts.webhook.headers'],
    [{ command: '' }, 'alerts.command'],
    [{ command: 'x', email: 'me@x' }, 'alerts.email'],
  ])('rejects alerts %j naming %s', (alerts, field) => {
    expect(fieldsOf({ ...job, alerts })).toContain(field);
  });
});

describe('dependent job specs', () => {
  it('takes after: {job, on} (on defaults to success) and a @triggered schedule with no slots of its own', () => {
    const result = parseJobSpec({ name: 'child', schedule: '@triggered', command: 'true', after: { job: 'parent' } });
    expect(result.ok && result.spec.after).toEqual({ job: 'parent', on: 'success' });
    expect(result.ok && result.spec.schedule).toBe('@triggered');
  });

  it.each([
    [{ job: 'child' }, 'after.job'],
    [{ job: '../x' }, 'after.job'],
    [{ job: 'p', on: 'sometimes' }, 'after.on'],
    [{ job: 'p', when: 'x' }, 'after.when'],
  ])('rejects after %j naming %s', (after, field) => {
    expect(fieldsOf({ name: 'child', schedule: '@triggered', command: 'true', after })).toContain(field);
  });
});
