// etcdctl 3.4 against a list of endpoints (a cluster), for the membership tests: exit code and
// both outputs, never a throw.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ETCDCTL_BINARY } from './etcd-process.js';

const run = promisify(execFile);

export interface EndpointsCtlResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function ctlAt(endpoints: readonly string[], args: readonly string[]): Promise<EndpointsCtlResult> {
  try {
    const { stdout, stderr } = await run(ETCDCTL_BINARY, [`--endpoints=${endpoints.join(',')}`, '--dial-timeout=3s', '--command-timeout=10s', ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}
