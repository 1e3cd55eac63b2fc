import type { WorkerInfo } from '../../shared/history/records.js';

/**
 * Which workers were registered when: the housekeeper's view of /cron/workers/, kept as intervals
 * so that a broadcast slot can be checked against the workers that were live at its instant
 * (docs/scheduler.md, "Broadcast jobs"). A registration seen at start counts from the worker's own
 * startedAtMs; later ones from when the housekeeper saw them. An interval ends when the key goes
 * (lease expiry or shutdown); a worker that re-registers after a lease loss continues its interval.
 */
interface Registration {
  readonly worker: string;
  readonly tags: readonly string[];
  readonly fromMs: number;
  toMs?: number;
}

/** Closed intervals kept; older ones are dropped first. Far above any real cluster's churn per hour. */
const CLOSED_INTERVALS_MAX = 10_000;

export class WorkerMembership {
  private readonly open = new Map<string, Registration>();
  private readonly closed: Registration[] = [];

  onPut(info: WorkerInfo, seenAtMs: number, isInitial: boolean): void {
    const current = this.open.get(info.id);
    if (current !== undefined && current.tags.join(',') === info.tags.join(',')) return;
    if (current !== undefined) this.close(current, seenAtMs);
    const fromMs = isInitial ? Math.min(info.startedAtMs, seenAtMs) : seenAtMs;
    this.open.set(info.id, { worker: info.id, tags: [...info.tags], fromMs });
  }

  onDelete(worker: string, seenAtMs: number): void {
    const current = this.open.get(worker);
    if (current === undefined) return;
    this.open.delete(worker);
    this.close(current, seenAtMs);
  }

  /** Workers registered at `atMs` carrying every tag in `tags`, each once. */
  registeredAt(atMs: number, tags: readonly string[]): string[] {
    const found = new Set<string>();
    for (const r of [...this.open.values(), ...this.closed]) {
      const isLive = r.fromMs <= atMs && (r.toMs === undefined || atMs < r.toMs);
      if (isLive && tags.every((tag) => r.tags.includes(tag))) found.add(r.worker);
    }
    return [...found].sort();
  }

  private close(registration: Registration, atMs: number): void {
    registration.toMs = atMs;
    this.closed.push(registration);
    if (this.closed.length > CLOSED_INTERVALS_MAX) this.closed.splice(0, this.closed.length - CLOSED_INTERVALS_MAX);
  }
}
