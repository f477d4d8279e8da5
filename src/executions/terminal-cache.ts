// A finished execution never changes again (success, failed and stopped are final;
// docs/api.md#execution), so its rendered JSON can be kept and served to every later poll without a
// query — the same answer on every process, since nothing can make it stale. Running
// executions are always read from the database. Bounded by total size (LRU).

const MAX_BYTES = 64 * 1024 * 1024;

export class TerminalCache {
  readonly #entries = new Map<string, string>();
  #bytes = 0;

  constructor(private readonly maxBytes = MAX_BYTES) {}

  static key(workspaceId: string, executionId: string, withSteps: boolean): string {
    return `${workspaceId}:${executionId}:${withSteps ? 1 : 0}`;
  }

  get(key: string): string | undefined {
    const body = this.#entries.get(key);
    if (body !== undefined) {
      // Refresh its place in the LRU order.
      this.#entries.delete(key);
      this.#entries.set(key, body);
    }
    return body;
  }

  set(key: string, body: string): void {
    if (body.length > this.maxBytes / 16 || this.#entries.has(key)) return;
    this.#entries.set(key, body);
    this.#bytes += body.length;
    for (const [oldest, value] of this.#entries) {
      if (this.#bytes <= this.maxBytes) break;
      this.#entries.delete(oldest);
      this.#bytes -= value.length;
    }
  }
}
