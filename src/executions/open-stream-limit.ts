import { ApiError } from '../errors.js';

// Each Server-Sent Events stream re-reads its execution every 250 ms and each long
// poll every 100 ms, for as long as the client keeps it open, so open streams are a
// cost that one key holder could multiply at will. A workspace may hold at most
// SKIPFLOW_MAX_OPEN_STREAMS of them (streams and waiting long polls together) open on
// one api process at once; one more is answered 429 rate_limited right away, and the
// slot is given back when the stream or the poll ends, however it ends.

/** What a client should wait before trying again: streams end when their execution does. */
const RETRY_AFTER_SECONDS = 5;

export class OpenStreamLimit {
  readonly #open = new Map<string, number>();

  constructor(readonly perWorkspace: number) {}

  /** Takes a slot for `workspaceId` or throws 429; call the returned function exactly once to give it back. */
  acquire(workspaceId: string, what: 'stream' | 'long poll'): () => void {
    const open = this.#open.get(workspaceId) ?? 0;
    if (open >= this.perWorkspace) {
      throw new ApiError(
        'rate_limited',
        `This workspace already has ${open} event streams and long polls open (the limit is ${this.perWorkspace}), so this ${what} was refused. ` +
          'Close streams you no longer read, or poll without ?wait, and retry.',
        { 'Retry-After': String(RETRY_AFTER_SECONDS) },
      );
    }
    this.#open.set(workspaceId, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#open.get(workspaceId) ?? 1) - 1;
      if (left === 0) this.#open.delete(workspaceId);
      else this.#open.set(workspaceId, left);
    };
  }

  openFor(workspaceId: string): number {
    return this.#open.get(workspaceId) ?? 0;
  }
}
