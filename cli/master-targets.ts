/**
 * The masters one CLI invocation may call, learned once per invocation: reads rotate over the
 * live ones (round-robin), writes go to the first live one, and a master that refused a
 * connection is skipped for the rest of the invocation.
 */
export class MasterTargets {
  private readonly urls: readonly string[];
  private readonly dead = new Set<string>();
  private cursor = 0;

  /** `dead`: masters already found unreachable in this invocation (a crashed master stays listed until its lease expires). */
  constructor(urls: readonly string[], dead: Iterable<string> = []) {
    this.urls = [...new Set(urls)];
    for (const url of dead) this.dead.add(url);
  }

  deadOnes(): readonly string[] {
    return [...this.dead];
  }

  /** Live masters, starting one further along at every call so that reads spread. */
  forRead(): string[] {
    const live = this.live();
    if (live.length === 0) return [...this.urls];
    const start = this.cursor++ % live.length;
    return [...live.slice(start), ...live.slice(0, start)];
  }

  /** Live masters in a stable order: any master serves writes, so the first one that answers. */
  forWrite(): string[] {
    const live = this.live();
    return live.length === 0 ? [...this.urls] : live;
  }

  markDead(url: string): void {
    this.dead.add(url);
  }

  private live(): string[] {
    return this.urls.filter((u) => !this.dead.has(u));
  }
}
