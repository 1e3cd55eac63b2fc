// etcd's auth (users, roles, key-range permissions, simple tokens) driven with real etcdctl 3.4
// against a real etcd and against the subject side by side: the normalised transcripts (stdout,
// the "Error:" lines, exit codes) must be identical, refusals included. A user without
// permission on /cron/ is refused every read, write, txn, lease revoke and watch there, and the
// store's revision does not move: each side writes that into its transcript, and the subject's
// own answer is asserted as well.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  Transcript,
  etcdctl,
  normalizeTranscript,
  transcriptDifferences,
} from '../support/compat-etcdctl.js';
import {
  disposeStores,
  startReference,
  startSubject,
  subjectKind,
} from '../support/compat-subject.js';
import type { StoreProcess } from '../support/etcd-process.js';

const ROOT = ['--user', 'root:rootpw'];
const ALICE = ['--user', 'alice:alicepw'];
const MALLORY = ['--user', 'mallory:mallorypw'];

/** One side: runs etcdctl against its store and records the transcript. */
class Side {
  readonly transcript = new Transcript();

  constructor(readonly store: StoreProcess) {}

  async run(args: readonly string[], stdin?: string): Promise<string> {
    const result = await etcdctl(this.store, args, stdin);
    this.transcript.record(args, result, stdin === undefined ? '' : 'stdin');
    return result.stdout;
  }

  note(text: string): void {
    this.transcript.note(text);
  }

  /** The store's revision, read as root (not recorded: it differs between the two stores). */
  async revision(): Promise<number> {
    const result = await etcdctl(this.store, [...ROOT, 'get', 'revision-probe', '-w', 'json']);
    const match = /"revision":(\d+)/.exec(result.stdout);
    if (match === null) throw new Error(`no revision in ${result.stdout} ${result.stderr}`);
    return Number(match[1]);
  }
}

/** Users, roles and permissions, set up before and checked after `auth enable`. */
async function manageUsersAndRoles(side: Side): Promise<void> {
  await side.run(['auth', 'enable']);
  await side.run(['user', 'add', 'root', '--new-user-password=rootpw']);
  await side.run(['user', 'get', 'root']);
  await side.run(['user', 'add', 'alice', '--new-user-password=alicepw']);
  await side.run(['user', 'add', 'alice', '--new-user-password=other']);
  await side.run(['user', 'add', '', '--new-user-password=x']);
  await side.run(['user', 'add', 'bob', '--no-password']);
  await side.run(['user', 'add', 'mallory', '--new-user-password=mallorypw']);
  await side.run(['role', 'add', 'cron']);
  await side.run(['role', 'add', 'cron']);
  await side.run(['role', 'add', '']);
  await side.run(['role', 'add', 'elsewhere']);
  await side.run(['role', 'grant-permission', '--prefix', 'cron', 'readwrite', '/cron/']);
  await side.run(['role', 'grant-permission', 'cron', 'read', '/a', '/b']);
  await side.run(['role', 'grant-permission', 'cron', 'write', 'k1']);
  await side.run(['role', 'grant-permission', 'cron', 'readwrite', 'k1']);
  await side.run(['role', 'grant-permission', 'cron', 'write', 'w1']);
  await side.run(['role', 'grant-permission', '--from-key', 'cron', 'read', 'zz']);
  await side.run(['role', 'grant-permission', '--prefix', 'elsewhere', 'readwrite', '/other/']);
  await side.run(['role', 'grant-permission', 'nope', 'read', 'zz']);
  await side.run(['role', 'get', 'cron']);
  await side.run(['role', 'get', 'nope']);
  await side.run(['user', 'grant-role', 'alice', 'cron']);
  await side.run(['user', 'grant-role', 'alice', 'cron']);
  await side.run(['user', 'grant-role', 'alice', 'nope']);
  await side.run(['user', 'grant-role', 'nobody', 'cron']);
  await side.run(['user', 'grant-role', 'mallory', 'elsewhere']);
  await side.run(['user', 'get', 'alice', '--detail']);
  await side.run(['user', 'get', 'nobody']);
  await side.run(['user', 'list']);
  await side.run(['role', 'list']);
  await side.run(['user', 'revoke-role', 'alice', 'nope']);
  await side.run(['role', 'revoke-permission', 'cron', '/nope']);
  await side.run(['role', 'revoke-permission', 'cron', '/a', '/b']);
  await side.run(['role', 'get', 'cron']);
  await side.run(['auth', 'enable']);
  await side.run(['role', 'list', ...ROOT]);
  await side.run(['user', 'get', 'root', '--detail', ...ROOT]);
}

/** With auth on: who may do what, and the root rules. */
async function enforce(side: Side): Promise<void> {
  await side.run(['auth', 'enable']);
  await side.run(['user', 'list']);
  await side.run(['get', 'foo']);
  await side.run(['put', 'foo', 'bar']);
  await side.run([...ROOT, 'user', 'list']);
  await side.run(['--user', 'root:wrong', 'user', 'list']);
  await side.run(['--user', 'nobody:x', 'get', 'foo']);
  await side.run([...ALICE, 'put', '/cron/x', '1']);
  await side.run([...ALICE, 'get', '/cron/', '--prefix']);
  await side.run([...ALICE, 'get', '', '--prefix']);
  await side.run([...ALICE, 'get', 'zzz', '--from-key']);
  await side.run([...ALICE, 'put', 'k1', 'v']);
  await side.run([...ALICE, 'put', 'k1', 'v2', '--prev-kv']);
  await side.run([...ALICE, 'put', 'w1', 'x']);
  await side.run([...ALICE, 'put', 'w1', 'y', '--prev-kv']);
  await side.run([...ALICE, 'get', 'w1']);
  await side.run([...ALICE, 'del', 'k1', '--prev-kv']);
  await side.run([...ALICE, 'user', 'get', 'alice']);
  await side.run([...ALICE, 'user', 'get', 'root']);
  await side.run([...ALICE, 'role', 'get', 'cron']);
  await side.run([...ALICE, 'role', 'get', 'root']);
  await side.run([...ALICE, 'user', 'add', 'eve', '--new-user-password=x']);
  await side.run([...ALICE, 'defrag']);
  await side.run([...ALICE, 'endpoint', 'hashkv']);
  await side.run([...ALICE, 'alarm', 'list']);
  // Membership changes need root.
  await side.run([...ALICE, 'member', 'add', 'newbie', '--peer-urls=http://127.0.0.1:1']);
  await side.run([...ALICE, 'member', 'remove', 'deadbeef']);
  await side.run([...ALICE, 'member', 'update', 'deadbeef', '--peer-urls=http://127.0.0.1:2']);
  // Refused at once, as etcd does: a snapshot is the whole keyspace (it once hung here).
  await side.run([...ALICE, 'snapshot', 'save', join(tmpdir(), 'etcron-auth-refused-snapshot.db')]);
  await side.run(['--user', 'bob:', 'get', '/cron/x']);
  await side.run(['--user', 'bob:guess', 'get', '/cron/x']);
  await side.run([...ROOT, 'auth', 'enable']);
  await side.run([...ROOT, 'role', 'delete', 'root']);
  await side.run([...ROOT, 'user', 'revoke-role', 'root', 'root']);
  await side.run([...ROOT, 'user', 'delete', 'root']);
  await side.run([...ROOT, 'user', 'delete', 'nobody']);
  await side.run([...ROOT, 'role', 'get', 'root']);
  await side.run([...ROOT, 'user', 'passwd', 'alice', '--interactive=false'], 'newpw\n');
  await side.run([...ALICE, 'get', '/cron/x']);
  await side.run(['--user', 'alice:newpw', 'get', '/cron/x']);
}

/** A user without /cron/ is refused everything there, and nothing changes. */
async function refuseOutsider(side: Side): Promise<boolean> {
  await side.run([...ROOT, 'put', '/cron/jobs/a', 'spec']);
  const lease =
    /lease ([0-9a-f]+) granted/.exec(await side.run([...ROOT, 'lease', 'grant', '600']))?.[1] ??
    'none';
  await side.run([...ROOT, 'put', '/cron/leased', 'x', '--lease', lease]);
  const before = await side.revision();
  await side.run([...MALLORY, 'get', '/cron/jobs/a']);
  await side.run([...MALLORY, 'get', '/cron/', '--prefix']);
  await side.run([...MALLORY, 'put', '/cron/jobs/a', 'hijacked']);
  await side.run([...MALLORY, 'del', '/cron/', '--prefix']);
  await side.run(
    [...MALLORY, 'txn'],
    'value("/other/x") = "none"\n\nput /cron/jobs/a hijacked\n\nput /other/x y\n\n',
  );
  await side.run([...MALLORY, 'lease', 'revoke', lease]);
  await side.run([...MALLORY, 'put', '/other/x', 'allowed', '--lease', lease]);
  await side.run([...MALLORY, 'watch', '/cron/', '--prefix']);
  await side.run([...MALLORY, 'put', '/other/x', 'allowed']);
  const after = await side.revision();
  const unchanged = after === before + 1;
  side.note(
    `refused requests left the revision alone (only the allowed put moved it): ${unchanged}`,
  );
  await side.run([...ROOT, 'get', '/cron/', '--prefix']);
  return unchanged;
}

async function disableAgain(side: Side): Promise<void> {
  await side.run([...ROOT, 'role', 'delete', 'cron']);
  await side.run([...ROOT, 'user', 'get', 'alice']);
  await side.run([...ROOT, 'auth', 'disable']);
  await side.run(['auth', 'disable']);
  await side.run(['get', '/cron/x']);
  await side.run(['user', 'delete', 'root']);
  await side.run(['auth', 'enable']);
}

describe(`etcdctl 3.4 auth walkthrough: ${subjectKind()} store against etcd 3.4`, () => {
  it('users, roles, permissions, refusals and the root rules read the same as etcd', async () => {
    let reference: StoreProcess | undefined;
    let subject: StoreProcess | undefined;
    try {
      [reference, subject] = await Promise.all([startReference(), startSubject()]);
      const sides = [new Side(reference), new Side(subject)] as const;
      const unchanged = await Promise.all(
        sides.map(async (side) => {
          await manageUsersAndRoles(side);
          await enforce(side);
          const result = await refuseOutsider(side);
          await disableAgain(side);
          return result;
        }),
      );
      const left = normalizeTranscript(sides[0].transcript.text(), reference);
      const right = normalizeTranscript(sides[1].transcript.text(), subject);
      const lines = transcriptDifferences(left, right);
      if (lines.length > 0 || process.env['ETCRON_COMPAT_TRACE'] !== undefined) {
        console.error(
          `auth transcript differences (etcd vs ${subject.kind}):\n${lines.join('\n')}`,
        );
        console.error(
          `--- etcd transcript ---\n${left}\n--- ${subject.kind} transcript ---\n${right}`,
        );
      }
      expect(lines, 'normalised etcdctl transcripts differ').toEqual([]);
      expect(unchanged, 'refused requests must not move the revision (etcd, subject)').toEqual([
        true,
        true,
      ]);
    } finally {
      await disposeStores(reference, subject);
    }
  }, 120_000);
});
