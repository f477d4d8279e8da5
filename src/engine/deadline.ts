// The one time budget of a step attempt: `timeout_ms` of running time, shared by the
// step's `if`, its templates and its own work, so an attempt never runs longer than
// its timeout_ms however many expressions it has.
//
// It is an absolute instant (Date.now() milliseconds) that moves for one reason only:
// time an evaluation spends queued for an evaluator (expression-pool.ts) is not the step's running
// time (evaluators are shared by every workspace, so one busy workspace must not use
// up another's budgets). The pool pauses the deadline while the evaluation waits.

export class Deadline {
  #at: number;
  #pausedAt: number | null = null;
  #pauses = 0;

  constructor(
    /** The budget it was made with (for messages). */
    readonly timeoutMs: number,
    start = Date.now(),
  ) {
    this.#at = start + timeoutMs;
  }

  /** Milliseconds left; frozen while paused. */
  remaining(now = Date.now()): number {
    return this.#at - (this.#pausedAt ?? now);
  }

  get paused(): boolean {
    return this.#pausedAt !== null;
  }

  /** Stops the clock (an evaluation is queued for an evaluator). */
  pause(now = Date.now()): void {
    if (this.#pauses++ === 0) this.#pausedAt = now;
  }

  /** Starts it again, the paused time not counted. */
  resume(now = Date.now()): void {
    if (this.#pauses === 0) return;
    if (--this.#pauses === 0) {
      this.#at += now - this.#pausedAt!;
      this.#pausedAt = null;
    }
  }
}
