// A finished execution never changes again (success, failed and stopped are final;
// docs/api.md#execution), so its rendered JSON can be kept and served to every later poll without a
// query — the same answer on every process, since nothing can make it stale. Running
// executions are always read from the database. Bounded by total size (LRU). The one
// way a finished execution changes is its deletion by retention: an entry completed
// before the caller's pruning cutoff is a miss, so the read finds it gone (404).

const MAX_BYTES = 64 * 1024 * 1024;

export class TerminalCache {
  readonly #entries = new Map<string, { body: string; completedAt: number }>();
  #bytes = 0;

  constructor(private readonly maxBytes = MAX_BYTES) {}

  static key(workspaceId: string, executionId: string, withSteps: boolean): string {
    return `${workspaceId}:${executionId}:${withSteps ? 1 : 0}`;
  }

  /** `prunedBefore`: executions completed before this time may have been deleted. */
  get(key: string, prunedBefore = -Infinity): string | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    this.#entries.delete(key);
    if (entry.completedAt < prunedBefore) {
      this.#bytes -= entry.body.length;
      return undefined;
    }
    // Refresh its place in the LRU order.
    this.#entries.set(key, entry);
    return entry.body;
  }

  set(key: string, body: string, completedAt = Infinity): void {
    if (body.length > this.maxBytes / 16 || this.#entries.has(key)) return;
    this.#entries.set(key, { body, completedAt });
    this.#bytes += body.length;
    for (const [oldest, value] of this.#entries) {
      if (this.#bytes <= this.maxBytes) break;
      this.#entries.delete(oldest);
      this.#bytes -= value.body.length;
    }
  }
}
