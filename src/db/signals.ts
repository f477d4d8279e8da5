import { EventEmitter } from 'node:events';

// How the API side tells workers about work without waiting for a poll: "new work is
// runnable" and "this execution was stopped". In one process it is an in-memory
// emitter; across processes on PostgreSQL the same calls travel over LISTEN/NOTIFY.

export interface Signals {
  workAvailable(): void;
  onWorkAvailable(listener: () => void): () => void;
  stopRequested(executionId: string): void;
  onStopRequested(listener: (executionId: string) => void): () => void;
  /** Delivers signals that arrived from another thread of this process to this
   * side's listeners only (they are not sent on again). */
  receiveWork(): void;
  receiveStop(executionId: string): void;
  close(): Promise<void>;
}

export class LocalSignals implements Signals {
  protected readonly emitter = new EventEmitter();

  constructor() {
    this.emitter.setMaxListeners(0);
  }

  workAvailable(): void {
    this.emitter.emit('work');
  }

  onWorkAvailable(listener: () => void): () => void {
    this.emitter.on('work', listener);
    return () => this.emitter.off('work', listener);
  }

  stopRequested(executionId: string): void {
    this.emitter.emit('stop', executionId);
  }

  onStopRequested(listener: (executionId: string) => void): () => void {
    this.emitter.on('stop', listener);
    return () => this.emitter.off('stop', listener);
  }

  receiveWork(): void {
    this.emitter.emit('work');
  }

  receiveStop(executionId: string): void {
    this.emitter.emit('stop', executionId);
  }

  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}
