import { execFile, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { REPO_ROOT } from './etcd-process.js';

/**
 * Docker and Compose for e2e tests: the image built offline (a base image made from this host's
 * node and libraries, then the repo's Dockerfile), and one Compose project per test run with its
 * own name and its own 127.0.0.1 ports, so parallel runs do not clash.
 */
export interface CommandResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export class CommandFailed extends Error {
  override readonly name = 'CommandFailed';
  constructor(readonly argv: readonly string[], readonly result: CommandResult) {
    super(`${argv.join(' ')} exited ${String(result.code)}: ${result.stderr.trim().slice(-2000)}`);
  }
}

/** Runs a command to completion within `timeoutMs`; a timeout kills it and reads as code null. */
export function runCommand(
  argv: readonly string[],
  options: { readonly timeoutMs: number; readonly env?: NodeJS.ProcessEnv; readonly cwd?: string },
): Promise<CommandResult> {
  const [program, ...args] = argv;
  if (program === undefined) throw new Error('empty argv');
  return new Promise((resolve) => {
    execFile(program, args, {
      timeout: options.timeoutMs,
      killSignal: 'SIGKILL',
      maxBuffer: 64 * 1024 * 1024,
      env: options.env ?? process.env,
      cwd: options.cwd ?? REPO_ROOT,
      encoding: 'utf8',
    }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

export async function runChecked(
  argv: readonly string[],
  options: { readonly timeoutMs: number; readonly env?: NodeJS.ProcessEnv; readonly cwd?: string },
): Promise<string> {
  const result = await runCommand(argv, options);
  if (result.code !== 0) throw new CommandFailed(argv, result);
  return result.stdout;
}

function answers(argv: readonly string[]): boolean {
  try {
    execFileSync(argv[0] ?? '', argv.slice(1), { stdio: 'ignore', timeout: 20_000 });
    return true;
  } catch {
    return false;
  }
}

/** True when a Docker engine answers `docker info`. */
export function hasDocker(): boolean {
  return answers(['docker', 'info']);
}

/** `docker compose` (v2 plugin) when present, else `docker-compose` (v1); undefined if neither. */
export function composeCommand(): readonly string[] | undefined {
  if (answers(['docker', 'compose', 'version'])) return ['docker', 'compose'];
  if (answers(['docker-compose', 'version'])) return ['docker-compose'];
  return undefined;
}

export const BASE_IMAGE_TAG = 'etcron-base:local';
const IMAGE_BUILD_TIMEOUT_MS = 240_000;

/**
 * Builds the etcron image from the repo without a registry: the base from this host
 * (scripts/docker-base-image.sh), then the Dockerfile, which reuses the repo's node_modules.
 * Layers stay cached between runs, so an unchanged tree builds in seconds.
 */
export async function buildImageOffline(tag: string): Promise<void> {
  const startedAt = new Date().toISOString();
  const previous = await imageId(tag);
  await runChecked(['bash', join(REPO_ROOT, 'scripts', 'docker-base-image.sh'), BASE_IMAGE_TAG], { timeoutMs: 120_000 });
  await runChecked(
    ['docker', 'build', '-q', '--build-arg', `BASE_IMAGE=${BASE_IMAGE_TAG}`, '-t', tag, REPO_ROOT],
    { timeoutMs: IMAGE_BUILD_TIMEOUT_MS },
  );
  // Each changed tree leaves the previous image and build stage behind (about 300 MB); the newest
  // build stage stays as the layer cache. Images still in use are kept by Docker, so errors pass.
  if (previous !== undefined && previous !== (await imageId(tag))) {
    await runCommand(['docker', 'image', 'rm', previous], { timeoutMs: 60_000 });
  }
  await runCommand(
    ['docker', 'image', 'prune', '-f', '--filter', 'label=org.etcron.stage=build', '--filter', `until=${startedAt}`],
    { timeoutMs: 60_000 },
  );
}

async function imageId(tag: string): Promise<string | undefined> {
  const result = await runCommand(['docker', 'image', 'inspect', '--format', '{{.Id}}', tag], { timeoutMs: 20_000 });
  return result.code === 0 ? result.stdout.trim() : undefined;
}

export async function imageSizeBytes(tag: string): Promise<number> {
  const out = await runChecked(['docker', 'image', 'inspect', '--format', '{{.Size}}', tag], { timeoutMs: 20_000 });
  return Number(out.trim());
}

/** One Compose project from the repo's docker-compose.yml. */
export class ComposeProject {
  /** Compose v1 keeps only [a-z0-9] of a project name; this one is the same in v1 and v2. */
  readonly name = `etcrone2e${randomBytes(4).toString('hex')}`;

  constructor(
    private readonly compose: readonly string[],
    private readonly env: Readonly<Record<string, string>>,
  ) {}

  run(args: readonly string[], timeoutMs = 120_000): Promise<string> {
    const argv = [...this.compose, '-f', join(REPO_ROOT, 'docker-compose.yml'), '-p', this.name, ...args];
    return runChecked(argv, { timeoutMs, env: { ...process.env, ...this.env } });
  }

  /** Starts the stack from the built image, waiting as depends_on says. */
  up(workers: number): Promise<string> {
    return this.run(['up', '-d', '--no-build', '--scale', `worker=${workers}`]);
  }

  /** Adds or removes workers only: other services, and their health, are left alone. */
  scaleWorkers(workers: number): Promise<string> {
    return this.run(['up', '-d', '--no-build', '--no-deps', '--scale', `worker=${workers}`, 'worker']);
  }

  async containerIds(service: string): Promise<string[]> {
    const out = await this.run(['ps', '-q', service], 30_000);
    return out.split('\n').map((s) => s.trim()).filter((s) => s.length > 0);
  }

  /**
   * Restart counts and the last log lines of some services, short enough to go into a failed
   * assertion's message (CI shows that, and may cut a long stderr).
   */
  async explain(services: readonly string[], tailLines: number): Promise<string> {
    const parts: string[] = [];
    for (const service of services) {
      for (const id of await this.containerIds(service).catch(() => [])) {
        const state = await runCommand(
          ['docker', 'inspect', '--format', '{{.State.Status}} restarts={{.RestartCount}} exit={{.State.ExitCode}}', id],
          { timeoutMs: 20_000 },
        );
        const logs = await runCommand(['docker', 'logs', '--tail', String(tailLines), id], { timeoutMs: 20_000 });
        parts.push(`--- ${service} ${id.slice(0, 12)}: ${state.stdout.trim()}\n${logs.stdout}${logs.stderr}`);
      }
    }
    return parts.join('\n');
  }

  /** The state of every container and the last lines of their logs, to explain a failure. */
  async describe(tailLines: number): Promise<string> {
    const ps = await this.run(['ps'], 30_000).catch((err: unknown) => String(err));
    const logs = await this.run(['logs', '--no-color', '--tail', String(tailLines)], 60_000).catch((err: unknown) => String(err));
    return `${ps}\n${logs}`;
  }

  /** Removes containers, network and volumes; never throws, so it can run after any failure. */
  async down(): Promise<void> {
    await this.run(['down', '-v', '--remove-orphans', '--timeout', '5'], 120_000).catch(() => undefined);
  }
}
