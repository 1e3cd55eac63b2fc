import { describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { outputDelta } from '../../master/log-stream.js';
import { parseListenAddress } from '../../cli/scheduler-daemon-commands.js';
import { specFromFlags } from '../../cli/scheduler-job-flags.js';
import { offsetText, renderTable } from '../../cli/scheduler-format.js';
import { parseApiUrls, CliError } from '../../cli/scheduler-api-client.js';
import { readJobFile } from '../../cli/scheduler-job-commands.js';
import { parseJobSpec } from '../../shared/job/index.js';

// Pure pieces of the CLI and the log follower, checked without processes.

describe('outputDelta (logs --follow over a sliding output tail)', () => {
  it('prints only what was appended', () => {
    expect(outputDelta('a\n', 'a\nb\n')).toBe('b\n');
    expect(outputDelta('', 'x')).toBe('x');
    expect(outputDelta('same', 'same')).toBe('');
  });
  it('finds the continuation when the window slid past the start', () => {
    expect(outputDelta('0123456789', '56789abc')).toBe('abc');
    const previous = 'x'.repeat(300) + 'line 1\n';
    expect(outputDelta(previous, previous.slice(100) + 'line 2\n')).toBe('line 2\n');
  });
  it('marks a gap when old and new no longer overlap', () => {
    expect(outputDelta('old text', 'entirely new')).toBe('\n[... output skipped ...]\nentirely new');
  });
});

describe('flags', () => {
  it('parses listen addresses and refuses bad ones', () => {
    expect(parseListenAddress('127.0.0.1:7070')).toEqual({ host: '127.0.0.1', port: 7070 });
    expect(parseListenAddress('http://0.0.0.0:80/')).toEqual({ host: '0.0.0.0', port: 80 });
    expect(parseListenAddress(':9000')).toEqual({ host: '127.0.0.1', port: 9000 });
    expect(parseListenAddress('[::1]:7070')).toEqual({ host: '::1', port: 7070 });
    expect(() => parseListenAddress('localhost:http')).toThrow(CliError);
    expect(() => parseListenAddress('127.0.0.1:70000')).toThrow(/--api/);
  });

  it('maps job add flags onto a spec the parser accepts, leaving unset flags to defaults', () => {
    const raw = specFromFlags('nightly', {
      schedule: '0 0 * * *', command: 'true', timeout: '30s', retries: '3', retryBackoff: '2s', tags: 'a, b,',
      env: ['A=1', 'B=x=y'], catchUpWindow: '1h', catchUpMax: '5', lateStart: '2m', historyCount: '10', paused: true,
    });
    expect(raw).toEqual({
      name: 'nightly', schedule: '0 0 * * *', command: 'true', timeoutMs: '30s',
      retries: { count: 3, backoffInitialMs: '2s' }, tags: ['a', 'b'], env: { A: '1', B: 'x=y' },
      catchUp: { windowMs: '1h', max: 5, lateStartMs: '2m' }, history: { countMax: 10 }, paused: true,
    });
    const parsed = parseJobSpec(raw);
    expect(parsed.ok && parsed.spec.retries).toMatchObject({ count: 3, backoffInitialMs: 2_000, backoffMaxMs: 60_000 });
    expect(parsed.ok && parsed.spec.catchUp).toEqual({ windowMs: 3_600_000, max: 5, lateStartMs: 120_000 });
    // A non-integer count is passed through as typed, for the parser to name the field.
    const bad = parseJobSpec(specFromFlags('x', { schedule: '@hourly', command: 'true', retries: '1.5' }));
    expect(bad.ok ? [] : bad.errors.map((e) => e.field)).toEqual(['retries.count']);
    expect(() => specFromFlags('x', { env: ['NOEQUALS'] })).toThrow(/KEY=VALUE/);
  });

  it('maps the --http-* flags onto an HTTP job spec', () => {
    const parsed = parseJobSpec(specFromFlags('hook', {
      schedule: '@every 10s', httpUrl: 'http://127.0.0.1:8080/run', httpMethod: 'post',
      httpHeader: ['Authorization: Bearer abc:def', 'X-Team:ops'], httpBody: '{}', httpExpectStatus: '200, 204',
    }));
    expect(parsed.ok && parsed.spec.http).toEqual({
      method: 'POST', url: 'http://127.0.0.1:8080/run', headers: { authorization: 'Bearer abc:def', 'x-team': 'ops' },
      body: '{}', expectStatus: [200, 204],
    });
    expect(() => specFromFlags('x', { schedule: '@hourly', httpMethod: 'POST' })).toThrow(/need --http-url/);
    expect(() => specFromFlags('x', { schedule: '@hourly', httpUrl: 'http://a.test/', httpHeader: ['novalue'] })).toThrow(/Name: value/);
  });

  it('reads API URLs from the flag, then ETCRON_API, then the default', () => {
    const saved = process.env['ETCRON_API'];
    try {
      delete process.env['ETCRON_API'];
      expect(parseApiUrls(undefined)).toEqual(['http://127.0.0.1:7070']);
      process.env['ETCRON_API'] = '10.0.0.1:7070, http://10.0.0.2:7070/';
      expect(parseApiUrls(undefined)).toEqual(['http://10.0.0.1:7070', 'http://10.0.0.2:7070']);
      expect(parseApiUrls('http://h:1')).toEqual(['http://h:1']);
      expect(() => parseApiUrls(' , ')).toThrow(/no master API URL/);
    } finally {
      if (saved === undefined) delete process.env['ETCRON_API'];
      else process.env['ETCRON_API'] = saved;
    }
  });
});

describe('output and files', () => {
  it('aligns table columns and shows empty cells as -', () => {
    expect(renderTable(['NAME', 'N'], [['a', 1], ['long-name', null]])).toBe('NAME       N\na          1\nlong-name  -\n');
  });

  it('shows how long after its slot a run started, signed', () => {
    expect([offsetText(1_000, 1_850), offsetText(1_000, 13_000), offsetText(1_000, 997), offsetText(1_000, undefined)])
      .toEqual(['+850ms', '+12.0s', '-3ms', '-']);
  });

  it('reads jobs from JSON, YAML lists, YAML documents and {jobs: [...]}', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'etcron-jobfile-'));
    try {
      const write = (name: string, text: string): string => {
        writeFileSync(join(dir, name), text);
        return join(dir, name);
      };
      expect(await readJobFile(write('one.json', '{"name":"a"}'))).toEqual([{ name: 'a' }]);
      expect(await readJobFile(write('list.yaml', '- name: a\n- name: b\n'))).toEqual([{ name: 'a' }, { name: 'b' }]);
      expect(await readJobFile(write('docs.yaml', 'name: a\n---\nname: b\n'))).toEqual([{ name: 'a' }, { name: 'b' }]);
      expect(await readJobFile(write('wrapped.yml', 'jobs:\n  - name: a\n'))).toEqual([{ name: 'a' }]);
      await expect(readJobFile(write('broken.yaml', 'name: [a\n'))).rejects.toThrow(/document 1/);
      await expect(readJobFile(write('empty.yaml', ''))).rejects.toThrow(/no job specs/);
      await expect(readJobFile(join(dir, 'missing.yaml'))).rejects.toThrow(/cannot read .*ENOENT/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
