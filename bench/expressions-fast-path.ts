import { performance } from 'node:perf_hooks';
import jsonata from 'jsonata';
import { Deadline } from '../src/engine/deadline.js';
import { evaluate, runsInThread } from '../src/engine/expressions.js';

// Micro-benchmark of the main-thread fast path of expression evaluation: what
// evaluate() adds to JSONata's own evaluation for the hot path's trivial transforms.
// Not a test and not part of `npm run bench`; run it alone:
//   npx tsc -p tsconfig.bench.json && node dist-bench/bench/expressions-fast-path.js
// It prints, per expression, JSONata alone (a compiled expression, plus the JSON round
// trip every result gets) and evaluate() with a fresh deadline per call, in µs per
// evaluation (median of 15 rounds), and the difference.

const EXPRESSIONS = ['input.n + 1', 'steps[0] * 2', "{ 'total': steps[1], 'who': input.who }", "'Hello ' & input.who"];
const ROUNDS = 15;
const PER_ROUND = 20_000;

function context(i: number) {
  return {
    input: { n: i, who: 'ada' },
    steps: [i * 2, i * 3],
    execution: { execution_id: 'e', workflow_id: 'w', workflow_name: 'W' },
    workflow: { workflow_id: 'w', name: 'W' },
  };
}

/** Median µs per call of each body, rounds interleaved so load and JIT hit both alike. */
async function microsPerCall(...bodies: ((i: number) => Promise<unknown>)[]): Promise<number[]> {
  const rounds: number[][] = bodies.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [b, body] of bodies.entries()) {
      const t0 = performance.now();
      for (let i = 0; i < PER_ROUND; i++) await body(i);
      rounds[b]!.push(((performance.now() - t0) * 1000) / PER_ROUND);
    }
  }
  return rounds.map((times) => times.sort((a, b) => a - b)[ROUNDS >> 1]!);
}

// Contexts made ahead, as the engine makes one per execution (and one `steps` per step).
const contexts = Array.from({ length: PER_ROUND }, (_, i) => context(i));

for (const source of EXPRESSIONS) {
  if (!runsInThread(source)) throw new Error(`${source} is expected on the fast path`);
  const compiled = jsonata(source, { timeout: 1000, stack: 200, sequence: 1_000_000 });
  const [raw, ours] = await microsPerCall(
    async (i) => JSON.parse(JSON.stringify(await compiled.evaluate(contexts[i]))),
    (i) => evaluate(source, contexts[i], { deadline: new Deadline(1000), workspaceId: 'w' }),
  ) as [number, number];
  console.log(`${source.padEnd(42)} jsonata ${raw.toFixed(2)} µs  evaluate() ${ours.toFixed(2)} µs  overhead ${(ours - raw).toFixed(2)} µs  (${Math.round(1e6 / ours)} evaluations/s)`);
}
