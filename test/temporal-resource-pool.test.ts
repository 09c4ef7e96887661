/** The worker-local GPU/CPU pool: exclusive ids, FIFO waiting, cancellation, impossible requests. */
import { IdPool } from '../pipelines/temporal/resource-pool';
import { defaultQueues, queueConcurrency } from '../pipelines/temporal/worker';

test('hands out distinct ids and makes later requests wait in order', async () => {
  const pool = new IdPool('GPU', [0, 1]);
  const a = await pool.acquire(1);
  const b = await pool.acquire(1);
  expect([...a, ...b].sort()).toEqual([0, 1]);
  const order: string[] = [];
  const wide = pool.acquire(2).then((ids) => (order.push('wide'), ids));
  const narrow = pool.acquire(1).then((ids) => (order.push('narrow'), ids));
  pool.release(a);
  await new Promise((r) => setImmediate(r));
  expect(order).toEqual([]); // the two-GPU request is first in line and needs both
  pool.release(b);
  expect(await wide).toEqual([0, 1]);
  expect(order).toEqual(['wide']);
  pool.release([0, 1]);
  expect((await narrow).length).toBe(1);
});

test('a waiting request can be cancelled, and impossible or double releases are errors', async () => {
  const pool = new IdPool('GPU', [3]);
  const held = await pool.acquire(1);
  const controller = new AbortController();
  const waiting = pool.acquire(1, controller.signal);
  controller.abort();
  await expect(waiting).rejects.toThrow(/cancelled/);
  await expect(pool.acquire(2)).rejects.toThrow('node needs 2 GPU(s) but this worker has 1');
  pool.release(held);
  expect(() => pool.release(held)).toThrow(/released twice/);
  expect(await pool.acquire(0)).toEqual([]);
});

test('queue classes and their concurrency follow the worker resources', () => {
  expect(defaultQueues(4, [])).toEqual(['pipeline', 'cpu']);
  expect(defaultQueues(0, [0, 1, 2, 3])).toEqual(['pipeline', 'gpu', 'gpu-x2', 'gpu-x3', 'gpu-x4']);
  expect(queueConcurrency('cpu', 6, [])).toBe(6);
  expect(queueConcurrency('gpu', 0, [0, 1, 2, 3])).toBe(4);
  expect(queueConcurrency('gpu-x2', 0, [0, 1, 2, 3])).toBe(2);
  expect(queueConcurrency('gpu-x3', 0, [0, 1, 2, 3])).toBe(1);
  expect(() => queueConcurrency('tpu', 1, [])).toThrow(/unknown queue class "tpu"/);
});
