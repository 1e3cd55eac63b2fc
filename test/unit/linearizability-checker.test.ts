// The cluster checkers of test/support/cluster-linearizability.ts must reject what is not
// linearizable (a checker that cannot fail proves nothing) and accept what is,
// including histories with unknown (timed-out) results. Issue 4.
import { describe, expect, it } from 'vitest';
import {
  checkLinearizable, checkRevisionOrder, checkWatchEvents, searchKey,
  type HistoryOp, type LogEvent, type OpInput, type OpOutput,
} from '../support/cluster-linearizability.js';

let nextId = 0;

function ok(client: number, input: OpInput, callNs: number, returnNs: number, output: OpOutput): HistoryOp {
  return { id: nextId++, client, input, callNs, returnNs, status: 'ok', output };
}

function unknown(client: number, input: OpInput, callNs: number): HistoryOp {
  return { id: nextId++, client, input, callNs, returnNs: Infinity, status: 'unknown', output: null };
}

function failed(client: number, input: OpInput, callNs: number, returnNs: number): HistoryOp {
  return { id: nextId++, client, input, callNs, returnNs, status: 'failed', output: null };
}

const put = (c: number, key: string, value: string, call: number, ret: number, revision: number) =>
  ok(c, { kind: 'put', key, value }, call, ret, { kind: 'put', revision });

const get = (c: number, key: string, call: number, ret: number, revision: number,
  value: string | null, version: number, modRevision: number) =>
  ok(c, { kind: 'get', key }, call, ret, { kind: 'get', revision, value, version, modRevision });

const cas = (c: number, key: string, expectVersion: number, value: string, call: number, ret: number,
  revision: number, succeeded: boolean) =>
  ok(c, { kind: 'cas', key, expectVersion, value }, call, ret, { kind: 'cas', revision, succeeded });

const event = (revision: number, key: string, value: string, version: number): LogEvent =>
  ({ revision, key, value, version, createRevision: 0 });

function expectAccepted(history: HistoryOp[], log: LogEvent[]): void {
  const a = checkRevisionOrder(history, log);
  expect(a.violations).toEqual([]);
  expect(checkLinearizable(history).verdict).toBe('linearizable');
}

describe('accepts linearizable histories', () => {
  it('sequential puts and reads', () => {
    const history = [
      put(1, 'x', 'a', 0, 1, 2),
      get(2, 'x', 2, 3, 2, 'a', 1, 2),
      put(1, 'x', 'b', 4, 5, 3),
      get(2, 'x', 6, 7, 3, 'b', 2, 3),
    ];
    expectAccepted(history, [event(2, 'x', 'a', 1), event(3, 'x', 'b', 2)]);
  });

  it('a read concurrent with a write may see either side', () => {
    const history = [
      put(1, 'x', 'a', 0, 10, 2),
      get(2, 'x', 1, 2, 1, null, 0, 0),
      get(3, 'x', 3, 4, 2, 'a', 1, 2),
      get(2, 'x', 5, 6, 1, null, 0, 0), // not yet: the put has not returned
    ];
    // The last read goes back in revision after a read that saw the put: not linearizable.
    expect(checkLinearizable(history).verdict).toBe('not-linearizable');
    expect(checkRevisionOrder(history, [event(2, 'x', 'a', 1)]).isOk).toBe(false);
    expectAccepted(history.slice(0, 3), [event(2, 'x', 'a', 1)]);
  });

  it('an unknown put that happened, seen by a later read', () => {
    const history = [
      unknown(1, { kind: 'put', key: 'x', value: 'a' }, 0),
      get(2, 'x', 5, 6, 2, 'a', 1, 2),
    ];
    expectAccepted(history, [event(2, 'x', 'a', 1)]);
  });

  it('an unknown put that never happened', () => {
    const history = [
      unknown(1, { kind: 'put', key: 'x', value: 'a' }, 0),
      get(2, 'x', 5, 6, 1, null, 0, 0),
      put(2, 'x', 'b', 7, 8, 2),
      get(2, 'x', 9, 10, 2, 'b', 1, 2),
    ];
    expectAccepted(history, [event(2, 'x', 'b', 1)]);
  });

  it('unknown CAS ops, one applied and one not, and a definite failure with no effect', () => {
    const history = [
      put(1, 'x', 'a', 0, 1, 2),
      unknown(1, { kind: 'cas', key: 'x', expectVersion: 1, value: 'b' }, 2),
      unknown(2, { kind: 'cas', key: 'x', expectVersion: 1, value: 'c' }, 3),
      failed(3, { kind: 'put', key: 'x', value: 'd' }, 3, 4),
      get(3, 'x', 10, 11, 3, 'c', 2, 3),
      cas(3, 'x', 1, 'e', 12, 13, 3, false),
    ];
    expectAccepted(history, [event(2, 'x', 'a', 1), event(3, 'x', 'c', 2)]);
  });

  it('random histories generated from the model with overlapping intervals', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const { history, log } = generate(seed, 120);
      expectAccepted(history, log);
    }
  });
});

describe('rejects non-linearizable histories', () => {
  it('a stale read after a completed write (old revision)', () => {
    const history = [put(1, 'x', 'a', 0, 1, 2), get(2, 'x', 2, 3, 1, null, 0, 0)];
    const log = [event(2, 'x', 'a', 1)];
    expect(checkRevisionOrder(history, log).violations.join('\n')).toMatch(/stale read/);
    expect(checkLinearizable(history).verdict).toBe('not-linearizable');
  });

  it('a stale read that reports a current revision', () => {
    const history = [put(1, 'x', 'a', 0, 1, 2), get(2, 'x', 2, 3, 2, null, 0, 0)];
    expect(checkRevisionOrder(history, [event(2, 'x', 'a', 1)]).violations.join('\n'))
      .toMatch(/does not match the log/);
    expect(checkLinearizable(history).verdict).toBe('not-linearizable');
  });

  it('a lost write', () => {
    const history = [
      put(1, 'x', 'a', 0, 1, 2),
      put(1, 'x', 'b', 2, 3, 3),
      get(2, 'x', 4, 5, 3, 'a', 1, 2),
    ];
    expect(checkRevisionOrder(history, [event(2, 'x', 'a', 1)]).violations.join('\n'))
      .toMatch(/lost acknowledged write/);
    expect(checkLinearizable(history).verdict).toBe('not-linearizable');
  });

  it('two CAS wins from one version', () => {
    const history = [
      put(1, 'x', 'a', 0, 1, 2),
      cas(1, 'x', 1, 'b', 2, 3, 3, true),
      cas(2, 'x', 1, 'c', 2, 4, 4, true),
    ];
    const log = [event(2, 'x', 'a', 1), event(3, 'x', 'b', 2), event(4, 'x', 'c', 3)];
    expect(checkRevisionOrder(history, log).violations.join('\n')).toMatch(/succeeded though/);
    expect(checkLinearizable(history).verdict).toBe('not-linearizable');
  });

  it('a value never written', () => {
    const history = [put(1, 'x', 'a', 0, 1, 2), get(2, 'x', 2, 3, 2, 'zzz', 1, 2)];
    expect(checkRevisionOrder(history, [event(2, 'x', 'a', 1)]).isOk).toBe(false);
    expect(checkLinearizable(history).verdict).toBe('not-linearizable');
  });

  it('a value in the log that no client wrote, or that a failed op wrote', () => {
    const history = [failed(1, { kind: 'put', key: 'x', value: 'a' }, 0, 1)];
    const log = [event(2, 'x', 'a', 1), event(3, 'x', 'ghost', 2)];
    const violations = checkRevisionOrder(history, log).violations.join('\n');
    expect(violations).toMatch(/reported no effect/);
    expect(violations).toMatch(/no client wrote/);
  });

  it('a revision going backwards between writes, and between reads', () => {
    const writes = [put(1, 'x', 'a', 0, 1, 5), put(2, 'y', 'b', 2, 3, 4)];
    const log = [event(4, 'y', 'b', 1), event(5, 'x', 'a', 1)];
    expect(checkRevisionOrder(writes, log).violations.join('\n')).toMatch(/write revision 4/);
    const reads = [...writes, get(3, 'x', 4, 5, 5, 'a', 1, 5), get(3, 'x', 6, 7, 4, null, 0, 0)];
    expect(checkRevisionOrder(reads, log).violations.join('\n')).toMatch(/stale read: revision 4/);
  });

  it('a failed CAS whose compare held', () => {
    const history = [put(1, 'x', 'a', 0, 1, 2), cas(1, 'x', 1, 'b', 2, 3, 2, false)];
    expect(checkRevisionOrder(history, [event(2, 'x', 'a', 1)]).isOk).toBe(false);
    expect(checkLinearizable(history).verdict).toBe('not-linearizable');
  });

  it('mutants of random valid histories: a read made stale', () => {
    let rejectedByA = 0;
    let rejectedByB = 0;
    let mutants = 0;
    for (let seed = 1; seed <= 30; seed++) {
      const { history, log, staleReads } = generate(seed, 120);
      const mutant = staleReads[0];
      if (mutant === undefined) continue;
      mutants += 1;
      const mutated = history.map((op) => (op.id === mutant.id ? mutant : op));
      if (!checkRevisionOrder(mutated, log).isOk) rejectedByA += 1;
      if (checkLinearizable(mutated).verdict === 'not-linearizable') rejectedByB += 1;
    }
    expect(mutants).toBeGreaterThan(15);
    expect(rejectedByA).toBe(mutants);
    expect(rejectedByB).toBe(mutants);
  });

  it('a bounded search that gives up says unknown, not linearizable', () => {
    const { history } = generate(7, 200);
    const result = searchKey('k0', history.filter((op) => op.input.key === 'k0'), 10);
    expect(result.verdict).toBe('unknown');
    expect(checkLinearizable(history, { stepsMaxPerKey: 10 }).verdict).toBe('unknown');
  });
});

describe('watch validation', () => {
  const log = [event(2, 'p/a', 'a', 1), event(3, 'p/b', 'b', 1), event(4, 'q/c', 'c', 1), event(5, 'p/a', 'd', 2)];
  const all = [
    { revision: 2, key: 'p/a', value: 'a' }, { revision: 3, key: 'p/b', value: 'b' },
    { revision: 5, key: 'p/a', value: 'd' },
  ];
  it('accepts the exact slice of the log', () => {
    expect(checkWatchEvents(all, log, 'p/', 1).violations).toEqual([]);
    expect(checkWatchEvents(all.slice(1), log, 'p/', 3).violations).toEqual([]);
  });
  it('rejects a gap, a duplicate and a reordering', () => {
    expect(checkWatchEvents([all[0]!, all[2]!], log, 'p/', 1).isOk).toBe(false);
    expect(checkWatchEvents([all[0]!, all[1]!, all[1]!, all[2]!], log, 'p/', 1).violations.join())
      .toMatch(/duplicate/);
    expect(checkWatchEvents([all[1]!, all[0]!, all[2]!], log, 'p/', 1).isOk).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------

function seeded(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 0x1_0000_0000;
  };
}

/**
 * A linearizable history by construction: ops run on the model at points 10 ns apart, each
 * call up to 25 ns before and each return up to 25 ns after its point, so intervals overlap.
 * Also returns, for mutation, reads rewritten to return a value overwritten before they began.
 */
function generate(seed: number, count: number): { history: HistoryOp[]; log: LogEvent[]; staleReads: HistoryOp[] } {
  const random = seeded(seed);
  const keys = ['k0', 'k1'];
  const state = new Map<string, { value: string; version: number; modRevision: number; callNs: number; returnNs: number }[]>();
  let revision = 1;
  const history: HistoryOp[] = [];
  const log: LogEvent[] = [];
  const staleReads: HistoryOp[] = [];
  for (let i = 0; i < count; i++) {
    const point = 100 + i * 10;
    const callNs = point - Math.floor(random() * 25);
    const returnNs = point + Math.floor(random() * 25);
    const client = i % 5;
    const key = keys[Math.floor(random() * keys.length)] as string;
    const versions = state.get(key) ?? [];
    const current = versions[versions.length - 1];
    const roll = random();
    if (roll < 0.4) {
      const value = current?.value ?? null;
      history.push(get(client, key, callNs, returnNs, revision, value, current?.version ?? 0, current?.modRevision ?? 0));
      // A read that returns a value overwritten, strictly in real time, before the read began:
      // old returned before newer was called, and newer returned before the read was called.
      let completed = -1;
      versions.forEach((v, index) => { if (v.returnNs < callNs) completed = index; });
      const newer = versions[completed];
      const old = versions[completed - 1];
      if (old !== undefined && newer !== undefined && old.returnNs < newer.callNs) {
        staleReads.push({ ...(history[history.length - 1] as HistoryOp),
          output: { kind: 'get', revision: old.modRevision, value: old.value, version: old.version, modRevision: old.modRevision } });
      }
      continue;
    }
    const value = `s${seed}-${i}`;
    const isCas = roll < 0.7;
    const expectVersion = isCas && random() < 0.5 ? (current?.version ?? 0) : (current?.version ?? 0) + 1;
    const holds = !isCas || expectVersion === (current?.version ?? 0);
    if (holds) {
      revision += 1;
      const version = (current?.version ?? 0) + 1;
      versions.push({ value, version, modRevision: revision, callNs, returnNs });
      state.set(key, versions);
      log.push(event(revision, key, value, version));
    }
    const isUnknown = random() < 0.1;
    const input: OpInput = isCas ? { kind: 'cas', key, expectVersion, value } : { kind: 'put', key, value };
    if (isUnknown) {
      history.push(unknown(client, input, callNs));
      if (holds) (versions[versions.length - 1] as { returnNs: number }).returnNs = Infinity;
    } else {
      history.push(isCas ? cas(client, key, expectVersion, value, callNs, returnNs, revision, holds)
        : put(client, key, value, callNs, returnNs, revision));
    }
  }
  return { history, log, staleReads };
}
