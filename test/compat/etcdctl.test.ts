// The walkthrough a user follows with real etcdctl 3.4, run against a real etcd and against the
// subject side by side; the normalised transcripts (commands, stdout, the "Error:" lines, exit
// codes) must be identical. Concurrency properties (lock exclusion, election hand-over) are
// checked on each side and written into the transcript, so a failure shows up in the diff.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CtlProcess, Transcript, etcdctl, normalizeTranscript, transcriptDifferences,
} from '../support/compat-etcdctl.js';
import { disposeStores, startReference, startSubject, subjectKind, tempDir } from '../support/compat-subject.js';
import type { StoreProcess } from '../support/etcd-process.js';
import { waitFor } from '../support/ports.js';

/** One side of a walkthrough: runs etcdctl against its store and records the transcript. */
class Ctl {
  readonly transcript = new Transcript();
  private readonly processes: CtlProcess[] = [];

  constructor(readonly store: StoreProcess) {}

  async run(args: readonly string[], stdin?: string): Promise<string> {
    const result = await etcdctl(this.store, args, stdin);
    this.transcript.record(args, result, stdin === undefined ? '' : `stdin ${JSON.stringify(stdin)}`);
    return result.stdout;
  }

  spawn(args: readonly string[]): CtlProcess {
    const process = new CtlProcess(this.store, args);
    this.processes.push(process);
    return process;
  }

  async stop(process: CtlProcess, signal: NodeJS.Signals = 'SIGINT'): Promise<void> {
    this.transcript.record(process.args, await process.stop(signal), `stopped with ${signal}`);
  }

  note(text: string): void {
    this.transcript.note(text);
  }

  /** The store's current revision, read with etcdctl's JSON output. */
  async revision(): Promise<number> {
    const result = await etcdctl(this.store, ['get', 'revision-probe', '-w', 'json']);
    const match = /"revision":(\d+)/.exec(result.stdout);
    if (match === null) throw new Error(`no revision in ${result.stdout} ${result.stderr}`);
    return Number(match[1]);
  }

  async killAll(): Promise<void> {
    for (const process of this.processes) await process.stop('SIGKILL');
  }
}

type Scenario = (ctl: Ctl) => Promise<void>;

async function compare(scenario: Scenario, timeoutMs = 60_000): Promise<void> {
  let reference: StoreProcess | undefined;
  let subject: StoreProcess | undefined;
  const ctls: Ctl[] = [];
  try {
    [reference, subject] = await Promise.all([startReference(), startSubject()]);
    const pair = [new Ctl(reference), new Ctl(subject)] as const;
    ctls.push(...pair);
    const outcomes = await Promise.allSettled(pair.map(async (ctl) => {
      const timer = new Promise<never>((_, reject) => {
        setTimeout(() => reject(new Error(`scenario timed out after ${timeoutMs} ms`)), timeoutMs).unref();
      });
      await Promise.race([scenario(ctl), timer]);
    }));
    outcomes.forEach((outcome, index) => {
      if (outcome.status === 'rejected') {
        const message = outcome.reason instanceof Error ? outcome.reason.message : String(outcome.reason);
        pair[index]?.note(`SCENARIO FAILED: ${message}`);
      }
    });
    // Lock and election keys embed the lease ID as unpadded hex.
    const keys = (text: string): string => text.replace(/\b(held|leader|jobs)\/[0-9a-f]{1,16}\b/g, '$1/<lease-hex>');
    const left = keys(normalizeTranscript(pair[0].transcript.text(), reference));
    const right = keys(normalizeTranscript(pair[1].transcript.text(), subject));
    const lines = transcriptDifferences(left, right);
    if (lines.length > 0 || process.env['ETCRON_COMPAT_TRACE'] !== undefined) {
      console.error(`etcdctl transcript differences (etcd vs ${subject.kind}):\n${lines.join('\n')}`);
      console.error(`--- etcd transcript ---\n${left}\n--- ${subject.kind} transcript ---\n${right}`);
    }
    expect(lines, 'normalised etcdctl transcripts differ').toEqual([]);
    const failed = outcomes.flatMap((outcome, index) => (outcome.status === 'rejected' ? [index] : []));
    expect(failed, `scenario failed on ${failed.map((i) => (i === 0 ? 'etcd' : 'subject')).join(', ')}`).toEqual([]);
  } finally {
    for (const ctl of ctls) await ctl.killAll();
    await disposeStores(reference, subject);
  }
}

const leaseIdPattern = /lease ([0-9a-f]+) granted/;

describe(`etcdctl 3.4 walkthrough: ${subjectKind()} store against etcd 3.4`, () => {
  it('put and get with every flag', () => compare(async (ctl) => {
    for (const [key, value] of [['foo', 'bar'], ['foo2', 'baz'], ['fop', 'x'], ['zoo', '1'], ['foo', 'bar2'], ['foo', 'bar3'], ['foo2', 'baz2']]) {
      await ctl.run(['put', key ?? '', value ?? '']);
    }
    await ctl.run(['put', 'foo', 'bar4', '--prev-kv']);
    await ctl.run(['put', 'fop', '--ignore-value']);
    await ctl.run(['put', 'missing', '--ignore-value']);
    await ctl.run(['put', '', 'empty-key']);
    await ctl.run(['get', 'foo']);
    await ctl.run(['get', 'nothing-here']);
    await ctl.run(['get', 'foo', '-w', 'json']);
    await ctl.run(['get', 'foo', '-w', 'fields']);
    await ctl.run(['get', 'foo', '--prefix']);
    await ctl.run(['get', 'fo', '--prefix', '--keys-only']);
    await ctl.run(['get', 'foo', 'zoo']);
    await ctl.run(['get', '--from-key', 'foo2']);
    await ctl.run(['get', '', '--prefix', '--limit=2']);
    await ctl.run(['get', '', '--prefix', '--limit=2', '-w', 'json']);
    for (const sortBy of ['KEY', 'CREATE', 'MODIFY', 'VERSION']) {
      for (const order of ['ASCEND', 'DESCEND']) {
        await ctl.run(['get', 'fo', '--prefix', `--sort-by=${sortBy}`, `--order=${order}`]);
      }
    }
    await ctl.run(['get', 'foo', '--rev=2']);
    await ctl.run(['get', 'foo', '--rev=6', '-w', 'json']);
    await ctl.run(['get', 'foo', '--rev=1000']);
    await ctl.run(['get', 'foo', '--print-value-only']);
    await ctl.run(['get', 'fo', '--prefix', '--print-value-only']);
    await ctl.run(['get', '', '--prefix', '--count-only', '-w', 'fields']);
    await ctl.run(['get', 'foo', '--consistency=s']);
    await ctl.run(['get', 'fo', '--prefix', '-w', 'table']);
    await ctl.run(['get', 'foo', '--hex']);
  }));

  it('del variants', () => compare(async (ctl) => {
    for (const key of ['a', 'b1', 'b2', 'b3', 'c', 'd', 'e']) await ctl.run(['put', key, `v-${key}`]);
    await ctl.run(['del', 'a', '--prev-kv']);
    await ctl.run(['del', 'a']);
    await ctl.run(['del', 'b', '--prefix', '--prev-kv']);
    await ctl.run(['del', 'c', 'd']);
    await ctl.run(['del', '--from-key', 'd', '--prev-kv', '-w', 'json']);
    await ctl.run(['get', '', '--prefix']);
    await ctl.run(['del', '']);
  }));

  it('watch: --rev, --prev-kv, --prefix, -i, compacted start', () => compare(async (ctl) => {
    await ctl.run(['put', 'w/a', 'first']);
    const start = (await ctl.revision()) + 1;
    const prefix = ctl.spawn(['watch', 'w/', '--prefix', '--prev-kv', `--rev=${start}`]);
    const single = ctl.spawn(['watch', 'w/a', `--rev=${start}`]);
    await ctl.run(['put', 'w/a', 'second']);
    await ctl.run(['put', 'w/b', 'other']);
    await ctl.run(['del', 'w/a']);
    await ctl.run(['put', 'w/a', 'third']);
    await ctl.run(['put', 'w/end', 'done']);
    await prefix.waitForOutput(/w\/end\ndone\n/);
    await single.waitForOutput(/w\/a\nthird\n/);
    await ctl.stop(prefix);
    await ctl.stop(single);
    const history = ctl.spawn(['watch', 'w/a', '--rev=1']);
    await history.waitForOutput(/third\n/);
    await ctl.stop(history);
    const interactive = ctl.spawn(['watch', '-i']);
    interactive.write(`watch w/ --prefix --rev=${start}\n`);
    await interactive.waitForOutput(/w\/end\ndone\n/);
    interactive.write('bogus command\n');
    interactive.endInput();
    ctl.transcript.record(interactive.args, await interactive.finish(), 'stdin: watch, bogus, EOF');
    await ctl.run(['compact', String(start + 1)]);
    await ctl.run(['watch', 'w/a', `--rev=${start}`]);
  }));

  it('compact', () => compare(async (ctl) => {
    for (let i = 0; i < 6; i++) await ctl.run(['put', 'k', `v${i}`]);
    await ctl.run(['compact', '4']);
    await ctl.run(['get', 'k', '--rev=3']);
    await ctl.run(['get', 'k', '--rev=4']);
    await ctl.run(['compact', '4']);
    await ctl.run(['compact', '3']);
    await ctl.run(['compact', '100']);
    await ctl.run(['compact', '--physical', '6']);
    await ctl.run(['get', 'k', '--rev=5']);
    await ctl.run(['get', 'k', '-w', 'json']);
  }));

  it('lease grant, put --lease, keep-alive --once, timetolive --keys, list, revoke', () => compare(async (ctl) => {
    const granted = await ctl.run(['lease', 'grant', '600']);
    const id = leaseIdPattern.exec(granted)?.[1] ?? 'none';
    const other = leaseIdPattern.exec(await ctl.run(['lease', 'grant', '300']))?.[1] ?? 'none';
    await ctl.run(['put', '--lease', id, 'l/a', '1']);
    await ctl.run(['put', '--lease', id, 'l/b', '2']);
    await ctl.run(['put', '--lease', other, 'l/c', '3']);
    await ctl.run(['put', '--lease', 'abcdef', 'l/d', '4']);
    await ctl.run(['get', 'l/', '--prefix', '-w', 'json']);
    await ctl.run(['lease', 'keep-alive', '--once', id]);
    const live = await ctl.run(['lease', 'timetolive', id]);
    const remaining = Number(/remaining\((\d+)s\)/.exec(live)?.[1] ?? '-1');
    ctl.note(`remaining TTL within [595, 600]: ${remaining >= 595 && remaining <= 600}`);
    await ctl.run(['lease', 'timetolive', '--keys', id]);
    await ctl.run(['lease', 'timetolive', '--keys', id, '-w', 'json']);
    const listed = await etcdctl(ctl.store, ['lease', 'list']);
    const ids = listed.stdout.split('\n').slice(1).filter((line) => line !== '').sort();
    ctl.note(`lease list: ${listed.stdout.split('\n')[0]}; the two granted: ${ids.join() === [id, other].sort().join()}`);
    await ctl.run(['lease', 'revoke', id]);
    await ctl.run(['get', 'l/', '--prefix']);
    await ctl.run(['lease', 'timetolive', id]);
    await ctl.run(['lease', 'revoke', id]);
    await ctl.run(['lease', 'keep-alive', '--once', id]);
    await ctl.run(['lease', 'timetolive', '1234']);
    await ctl.run(['lease', 'grant', '9000000001']);
  }));

  it('txn -i', () => compare(async (ctl) => {
    await ctl.run(['put', 'account', '100']);
    await ctl.run(['txn', '-i'], 'mod("missing") > "0"\n\nput missing "created"\n\nput missing "fallback"\nput account "90"\n\n');
    await ctl.run(['txn', '-i'], 'value("account") = "90"\nversion("missing") = "1"\n\nget account\ndel missing\nput log "done"\n\nget account\n\n');
    await ctl.run(['txn', '-i', '-w', 'json'], 'create("log") > "0"\n\nget log\n\n\n');
    await ctl.run(['txn', '-i'], 'value("account") > "1"\n\nput dup "1"\nput dup "2"\n\n\n');
    await ctl.run(['get', '', '--prefix']);
  }));

  it('lock: two contenders are mutually exclusive; elect hands over leadership', () => compare(async (ctl) => {
    const dir = tempDir('etcron-lock-');
    try {
      const log = join(dir.path, 'log');
      const critical = (name: string): string[] => [
        'lock', 'jobs', '--', 'sh', '-c', `echo in-${name} >> ${log}; sleep 0.4; echo out-${name} >> ${log}`,
      ];
      const first = ctl.spawn(critical('A'));
      const second = ctl.spawn(critical('B'));
      const [a, b] = await Promise.all([first.finish(20_000), second.finish(20_000)]);
      const order = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
      const isExclusive = order.length === 4 && order[0]?.slice(3) === order[1]?.slice(4) && order[2]?.slice(3) === order[3]?.slice(4);
      ctl.note(`both lock commands exited 0: ${a.code === 0 && b.code === 0}; sections not interleaved: ${isExclusive}`);
      const holder = ctl.spawn(['lock', 'held']);
      await holder.waitForOutput(/^held\/[0-9a-f]+\n/);
      const waiter = ctl.spawn(['lock', 'held']);
      await waitFor('the waiter to queue its key', async () => {
        const listed = await etcdctl(ctl.store, ['get', 'held/', '--prefix', '--keys-only']);
        return listed.stdout.split('\n').filter((line) => line.startsWith('held/')).length === 2 ? true : undefined;
      }, 10_000);
      ctl.note(`waiter printed nothing while the lock was held: ${waiter.output() === ''}`);
      await ctl.stop(holder);
      await waiter.waitForOutput(/^held\/[0-9a-f]+\n/);
      await ctl.stop(waiter);
      ctl.note(`holder and waiter keys differ: ${holder.output() !== waiter.output()}`);
      await election(ctl);
    } finally {
      dir.remove();
    }
  }));

  it('endpoint health/status, member list, alarm list, snapshot save', () => compare(async (ctl) => {
    await ctl.run(['put', 'x', 'y']);
    await ctl.run(['endpoint', 'health']);
    await ctl.run(['endpoint', 'status']);
    await ctl.run(['endpoint', 'status', '-w', 'json']);
    await ctl.run(['endpoint', 'status', '-w', 'table']);
    await ctl.run(['member', 'list']);
    await ctl.run(['member', 'list', '-w', 'json']);
    await ctl.run(['alarm', 'list']);
    await ctl.run(['alarm', 'disarm']);
    const dir = tempDir('etcron-snapshot-');
    try {
      const path = join(dir.path, 'snap.db');
      const saved = await etcdctl(ctl.store, ['snapshot', 'save', path]);
      ctl.note(`snapshot save: exit ${saved.code}; ${saved.stdout.trim().replace(path, '<path>')}`);
      const size = existsSync(path) ? statSync(path).size : -1;
      ctl.note(`snapshot file present, size % 512 == 32: ${size > 0 && size % 512 === 32}`);
      ctl.note(`no .part file left: ${!existsSync(`${path}.part`)}`);
    } finally {
      dir.remove();
    }
  }));

  it('defrag, endpoint hashkv, move-leader, member add/remove/update errors, lease keep-alive stream', () => compare(async (ctl) => {
    await ctl.run(['put', 'k', 'v']);
    await ctl.run(['defrag']);
    const hashed = await etcdctl(ctl.store, ['endpoint', 'hashkv']);
    ctl.note(`endpoint hashkv: exit ${hashed.code}; ${hashed.stdout.trim().replace(/, \d+$/, ', <hash>')}`);
    const status = await etcdctl(ctl.store, ['endpoint', 'status']);
    const memberId = status.stdout.split(', ')[1] ?? 'none';
    await ctl.run(['move-leader', memberId]);
    await ctl.run(['move-leader', '1234']);
    // Only refusals: an accepted member add would leave the single member without quorum.
    await ctl.run(['member', 'add', 'second', `--peer-urls=${ctl.store.peerUrl}`]);
    await ctl.run(['member', 'remove', '1234']);
    await ctl.run(['member', 'update', '1234', '--peer-urls=http://127.0.0.1:2']);
    await ctl.run(['member', 'promote', '1234']);
    const id = leaseIdPattern.exec(await ctl.run(['lease', 'grant', '60']))?.[1] ?? 'none';
    const keeper = ctl.spawn(['lease', 'keep-alive', id]);
    await keeper.waitForOutput(/keepalived with TTL\(60\)\n/);
    await ctl.stop(keeper);
    await ctl.run(['lease', 'revoke', id]);
    await ctl.run(['get', 'k', '--rev=0', '-w', 'fields']);
  }));
});

async function election(ctl: Ctl): Promise<void> {
  const alice = ctl.spawn(['elect', 'leader', 'alice']);
  await alice.waitForOutput(/^leader\/[0-9a-f]+\nalice\n/);
  const observer = ctl.spawn(['elect', '-l', 'leader']);
  await observer.waitForOutput(/alice\n/);
  const bob = ctl.spawn(['elect', 'leader', 'bob']);
  await waitFor('bob to queue his candidacy', async () => {
    const listed = await etcdctl(ctl.store, ['get', 'leader/', '--prefix', '--keys-only']);
    return listed.stdout.split('\n').filter((line) => line.startsWith('leader/')).length === 2 ? true : undefined;
  }, 10_000);
  ctl.note(`bob not elected while alice leads: ${bob.output() === ''}`);
  await ctl.stop(alice);
  await bob.waitForOutput(/^leader\/[0-9a-f]+\nbob\n/);
  await observer.waitForOutput(/bob\n/);
  await ctl.stop(bob);
  await ctl.stop(observer);
}
