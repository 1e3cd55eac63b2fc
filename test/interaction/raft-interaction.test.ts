import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TestCluster, text } from '../sim/raft-test-cluster.js';
import type { MemberId, Message, StepResult } from '../../store/raft/index.js';

/**
 * Scripted interactions with golden transcripts, in the manner of etcd-io/raft's
 * interaction_test.go. Each block in testdata/*.txt is a command, a line `----`, and the expected
 * output up to a blank line. ETCRON_REWRITE=1 rewrites the expected output; review the diff.
 *
 * Commands: add-members <n> [pre-vote] [check-quorum] [max-inflight=<n>] [max-size=<bytes>],
 * campaign <id>, propose <id> <text>, read-index <id> <ctx>, transfer <leader> <target>,
 * tick <id> [count], tick-all [count], stabilize, partition <ids> | <ids> [| ...], heal,
 * drop <type>, crash <id>, restart <id>, compact <id>, status, log <id>.
 */
const testdata = join(import.meta.dirname, 'testdata');
const rewrite = process.env['ETCRON_REWRITE'] === '1';
const decoder = new TextDecoder();

interface Block {
  readonly command: string;
  readonly expected: string;
}

function parse(source: string): Block[] {
  const blocks: Block[] = [];
  const lines = source.split('\n');
  let i = 0;
  while (i < lines.length) {
    const line = lines[i] ?? '';
    i++;
    if (line.trim() === '' || line.startsWith('#')) continue;
    if (lines[i] !== '----') throw new Error(`line ${i}: expected ---- after "${line}"`);
    i++;
    const output: string[] = [];
    while (i < lines.length && (lines[i] ?? '') !== '') output.push(lines[i++] ?? '');
    blocks.push({ command: line, expected: output.join('\n') });
  }
  return blocks;
}

function formatMessage(m: Message): string {
  const parts = [`${m.from}->${m.to} ${m.type} term=${m.term}`];
  if (m.logTerm !== 0) parts.push(`logTerm=${m.logTerm}`);
  if (m.index !== 0) parts.push(`index=${m.index}`);
  if (m.commit !== 0) parts.push(`commit=${m.commit}`);
  if (m.reject) parts.push(`reject hint=${m.rejectHint}`);
  if (m.entries.length > 0) {
    const entries = m.entries.map(
      (e) => `${e.term}/${e.index}${e.data.byteLength > 0 ? ` ${decoder.decode(e.data)}` : ''}`,
    );
    parts.push(`entries=[${entries.join(', ')}]`);
  }
  if (m.snapshot !== null)
    parts.push(`snapshot=${m.snapshot.metadata.term}/${m.snapshot.metadata.index}`);
  if (m.context.byteLength > 0) parts.push(`ctx=${decoder.decode(m.context)}`);
  return parts.join(' ');
}

function formatResult(result: StepResult): string {
  return result.ok ? 'ok' : result.reason;
}

/** Runs one script; returns the transcript block by block. */
class Interpreter {
  private cluster: TestCluster | null = null;
  private output: string[] = [];

  run(command: string): string {
    this.output = [];
    const [name = '', ...args] = command.trim().split(/\s+/);
    this.execute(name, args);
    return this.output.join('\n');
  }

  private get c(): TestCluster {
    if (this.cluster === null) throw new Error('add-members first');
    return this.cluster;
  }

  private execute(name: string, args: string[]): void {
    const id = (i: number): MemberId => BigInt(args[i] ?? '0');
    switch (name) {
      case 'add-members':
        return this.addMembers(args);
      case 'campaign':
        return this.print(formatResult(this.c.node(id(0)).campaign()), () => this.c.drain(id(0)));
      case 'propose':
        return this.print(formatResult(this.c.propose(id(0), args[1] ?? '')));
      case 'read-index':
        return this.print(formatResult(this.c.node(id(0)).readIndex(text(args[1] ?? ''))), () =>
          this.c.drain(id(0)),
        );
      case 'transfer':
        return this.print(formatResult(this.c.node(id(0)).transferLeadership(id(1))), () =>
          this.c.drain(id(0)),
        );
      case 'tick':
        return this.c.tick(id(0), Number(args[1] ?? '1'));
      case 'tick-all':
        for (let i = 0; i < Number(args[0] ?? '1'); i++)
          for (const member of this.c.members.keys()) this.c.tick(member);
        return;
      case 'stabilize':
        return this.stabilize();
      case 'partition':
        return this.partition(args);
      case 'heal':
        return this.c.recover();
      case 'drop':
        return this.c.dropPending((m) => m.type === args[0]);
      case 'crash':
        return this.c.crash(id(0));
      case 'restart':
        return this.c.restart(id(0));
      case 'compact':
        return this.print(`compacted to ${this.c.compact(id(0))}`);
      case 'status':
        return this.status();
      case 'log':
        return this.print(`terms ${JSON.stringify(this.c.logTerms(id(0)))}`);
      default:
        throw new Error(`unknown command ${name}`);
    }
  }

  private print(line: string, after?: () => void): void {
    this.output.push(line);
    after?.();
  }

  private addMembers(args: string[]): void {
    const option = (prefix: string): number | undefined => {
      const arg = args.find((a) => a.startsWith(`${prefix}=`));
      return arg === undefined ? undefined : Number(arg.slice(prefix.length + 1));
    };
    const inflight = option('max-inflight');
    const size = option('max-size');
    this.cluster = new TestCluster({
      size: Number(args[0]),
      preVote: args.includes('pre-vote'),
      checkQuorum: args.includes('check-quorum'),
      ...(inflight !== undefined ? { maxInflightMsgs: inflight } : {}),
      ...(size !== undefined ? { maxSizePerMsgBytes: size } : {}),
    });
    this.cluster.onDeliver = (message, arrived) =>
      this.output.push(`${arrived ? '' : 'dropped '}${formatMessage(message)}`);
  }

  private stabilize(): void {
    this.c.stabilize();
  }

  private partition(args: string[]): void {
    const groups: MemberId[][] = [[]];
    for (const arg of args) {
      if (arg === '|') groups.push([]);
      else groups[groups.length - 1]?.push(BigInt(arg));
    }
    for (const a of groups)
      for (const b of groups) {
        if (a === b) continue;
        for (const from of a) for (const to of b) this.c.cutLink(from, to);
      }
  }

  private status(): void {
    for (const member of this.c.members.values()) {
      if (member.node === null) {
        this.output.push(`${member.id}: down`);
        continue;
      }
      const s = member.node.status();
      const reads = member.readStates.map((r) => `${decoder.decode(r.requestContext)}@${r.index}`);
      this.output.push(
        `${s.id}: ${s.role} term=${s.term} vote=${s.vote} lead=${s.lead} commit=${s.commit} ` +
          `applied=${s.applied} last=${s.lastIndex} machine=${JSON.stringify(member.applied)}` +
          (reads.length > 0 ? ` reads=${reads.join(',')}` : ''),
      );
    }
  }
}

describe('raft interaction scripts', () => {
  const files = readdirSync(testdata)
    .filter((f) => f.endsWith('.txt'))
    .sort();
  for (const file of files) {
    it(file, () => {
      const path = join(testdata, file);
      const source = readFileSync(path, 'utf8');
      const interpreter = new Interpreter();
      const blocks = parse(source);
      const actual = blocks.map((block) => ({
        command: block.command,
        output: interpreter.run(block.command),
      }));
      const header = source
        .split('\n')
        .filter((l, i, all) => l.startsWith('#') && all.slice(0, i).every((p) => p.startsWith('#')))
        .join('\n');
      const rendered = `${header === '' ? '' : `${header}\n\n`}${actual.map((a) => `${a.command}\n----\n${a.output === '' ? 'ok' : a.output}\n`).join('\n')}`;
      if (rewrite) {
        writeFileSync(path, rendered);
        return;
      }
      for (const [i, block] of blocks.entries()) {
        const got = actual[i]?.output === '' ? 'ok' : actual[i]?.output;
        expect(got, `${file}: ${block.command}`).toBe(block.expected);
      }
    });
  }
});
