/**
 * Worker-local pools of GPU device ids and CPU slots. Activities take what their node needs and give
 * it back when done; a node waits (FIFO) while its share is in use, so a worker never hands out more
 * devices at once than it has, whatever the task-queue concurrency.
 */
import { NonRetryableError } from '../activity';

interface Waiter {
  count: number;
  resolve: (ids: number[]) => void;
  reject: (err: Error) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class IdPool {
  private readonly free: number[];
  private readonly waiters: Waiter[] = [];

  constructor(
    readonly kind: string,
    readonly ids: readonly number[],
  ) {
    this.free = [...ids];
  }

  get available(): number {
    return this.free.length;
  }

  acquire(count: number, signal?: AbortSignal): Promise<number[]> {
    if (count === 0) return Promise.resolve([]);
    if (count > this.ids.length) {
      return Promise.reject(new NonRetryableError(`node needs ${count} ${this.kind}(s) but this worker has ${this.ids.length}`));
    }
    if (this.waiters.length === 0 && this.free.length >= count) return Promise.resolve(this.take(count));
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { count, resolve, reject, signal };
      if (signal) {
        waiter.onAbort = () => {
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          reject(new Error(`cancelled while waiting for ${this.kind}s`));
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.waiters.push(waiter);
    });
  }

  release(ids: number[]): void {
    for (const id of ids) {
      if (!this.ids.includes(id) || this.free.includes(id)) throw new Error(`${this.kind} ${id} released twice or unknown`);
      this.free.push(id);
    }
    this.free.sort((a, b) => a - b);
    while (this.waiters.length && this.free.length >= this.waiters[0].count) {
      const w = this.waiters.shift()!;
      if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
      w.resolve(this.take(w.count));
    }
  }

  private take(count: number): number[] {
    return this.free.splice(0, count);
  }
}

/** CPU slots are anonymous: a pool of slot numbers 0..n-1. */
export function cpuSlots(n: number): IdPool {
  return new IdPool('CPU slot', Array.from({ length: n }, (_, i) => i));
}
