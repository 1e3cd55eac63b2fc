import { describe, expect, it } from 'vitest';
import { formatGuardEvent, parseGuardEvent } from '../../worker/executor/run-guard-events.js';
import { formatGuardCommand, GuardState, parseGuardLine } from '../../worker/executor/run-guard-state.js';

describe('run guard decisions', () => {
  it('kills nothing before the worker sends a deadline, and every tracked group once it passes', () => {
    const state = new GuardState();
    state.apply({ kind: 'add', pgid: 100 });
    expect(state.check(10n ** 12n)).toEqual({ kill: [], nextCheckNs: null });
    state.apply({ kind: 'deadline', atNs: 5_000n });
    state.apply({ kind: 'add', pgid: 200 });
    state.apply({ kind: 'remove', pgid: 100 });
    expect(state.check(4_999n)).toEqual({ kill: [], nextCheckNs: 5_000n });
    expect(state.check(5_000n)).toEqual({ kill: [200], nextCheckNs: null });
    // Killed groups are forgotten; a renewal sets a later deadline for new runs.
    state.apply({ kind: 'deadline', atNs: 9_000n });
    expect(state.check(6_000n)).toEqual({ kill: [], nextCheckNs: 9_000n });
  });

  it('kills a group started after the deadline passed (a worker frozen between spawn and renewal)', () => {
    const state = new GuardState();
    state.apply({ kind: 'deadline', atNs: 1_000n });
    state.apply({ kind: 'add', pgid: 300 });
    expect(state.check(2_000n).kill).toEqual([300]);
  });

  it('hands every tracked group over when the worker is gone', () => {
    const state = new GuardState();
    state.apply({ kind: 'add', pgid: 7 });
    state.apply({ kind: 'add', pgid: 8 });
    expect(state.drain().sort()).toEqual([7, 8]);
    expect(state.drain()).toEqual([]);
  });

  it('reads back what the worker writes, and ignores lines that would signal init or everyone', () => {
    for (const command of [{ kind: 'deadline', atNs: 123456789012345678n }, { kind: 'add', pgid: 4242 }, { kind: 'remove', pgid: 4242 }] as const) {
      expect(parseGuardLine(formatGuardCommand(command))).toEqual(command);
    }
    expect(parseGuardLine('A 1')).toBeNull();
    expect(parseGuardLine('A 0')).toBeNull();
    expect(parseGuardLine('A -5')).toBeNull();
    expect(parseGuardLine('K 12')).toBeNull();
    expect(parseGuardLine('D')).toBeNull();
  });

  it('reads back the runs to start and the signals to send, and refuses malformed ones', () => {
    const request = { id: 7, argv: ['/bin/sh', '-c', 'echo "a\nb"'], env: { PATH: '/bin', X: 'é' }, cwd: '/tmp', tailBytesMax: 100 };
    expect(parseGuardLine(formatGuardCommand({ kind: 'spawn', request }))).toEqual({ kind: 'spawn', request });
    expect(parseGuardLine(formatGuardCommand({ kind: 'signal', id: 7, signal: 'SIGTERM' }))).toEqual({ kind: 'signal', id: 7, signal: 'SIGTERM' });
    expect(parseGuardLine('K 7 SIGSTOP')).toBeNull();
    expect(parseGuardLine('S {"id":1,"argv":[],"env":{},"tailBytesMax":1}')).toBeNull();
    expect(parseGuardLine('S {"id":1,"argv":["true"],"env":{"A":1},"tailBytesMax":1}')).toBeNull();
    expect(parseGuardLine('S not json')).toBeNull();
  });

  it('reads back what the guard answers: pid, output, end', () => {
    for (const event of [{ id: 1, pid: 4242 }, { id: 1, out: 'aGk=' }, { id: 1, exit: { code: 3, signal: null } },
      { id: 2, exit: { code: null, signal: null, error: 'spawn x ENOENT' } }] as const) {
      expect(parseGuardEvent(formatGuardEvent(event))).toEqual(event);
    }
    expect(parseGuardEvent('{"id":1,"exit":{"code":"3","signal":null}}')).toBeNull();
    expect(parseGuardEvent('{"pid":3}')).toBeNull();
  });
});
