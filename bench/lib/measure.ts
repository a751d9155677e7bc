/**
 * A small, dependency-free measuring loop: warm up, then run the operation repeatedly for a
 * fixed wall-clock budget and report operations per second with the mean time per op.
 * Bounded in time by construction, so a benchmark always stops by itself.
 */
import { cpus } from 'node:os';

export interface Measurement {
  readonly name: string;
  readonly opsPerSecond: number;
  readonly meanMs: number;
  readonly iterations: number;
}

export async function measure(
  name: string,
  op: () => unknown | Promise<unknown>,
  options: { budgetMs?: number; warmup?: number; minIterations?: number } = {},
): Promise<Measurement> {
  const budgetMs = options.budgetMs ?? Number(process.env.BENCH_BUDGET_MS ?? 1500);
  const warmup = options.warmup ?? 3;
  const minIterations = options.minIterations ?? 5;
  for (let i = 0; i < warmup; i++) await op();
  let iterations = 0;
  const start = process.hrtime.bigint();
  let elapsedMs = 0;
  while (elapsedMs < budgetMs || iterations < minIterations) {
    await op();
    iterations++;
    elapsedMs = Number(process.hrtime.bigint() - start) / 1e6;
  }
  return {
    name,
    opsPerSecond: (iterations / elapsedMs) * 1000,
    meanMs: elapsedMs / iterations,
    iterations,
  };
}

/**
 * Measures Crate's operation and its bare counterpart in alternating rounds (budget split in
 * `rounds` slices each) and reports each one's median round, so that load from other processes
 * on a shared machine falls on both columns alike instead of on whichever ran at a bad moment.
 */
export async function measurePair(
  crate: readonly [name: string, op: () => unknown | Promise<unknown>],
  bare: readonly [name: string, op: () => unknown | Promise<unknown>],
  options: { budgetMs?: number; warmup?: number; rounds?: number } = {},
): Promise<readonly [Measurement, Measurement]> {
  const budgetMs = options.budgetMs ?? Number(process.env.BENCH_BUDGET_MS ?? 1500);
  const rounds = options.rounds ?? 5;
  const slice = { budgetMs: budgetMs / rounds, warmup: 0, minIterations: 1 };
  for (let i = 0; i < (options.warmup ?? 3); i++) {
    await crate[1]();
    await bare[1]();
  }
  const crateRounds: Measurement[] = [];
  const bareRounds: Measurement[] = [];
  for (let round = 0; round < rounds; round++) {
    crateRounds.push(await measure(crate[0], crate[1], slice));
    bareRounds.push(await measure(bare[0], bare[1], slice));
  }
  return [median(crateRounds), median(bareRounds)];
}

function median(rounds: Measurement[]): Measurement {
  const sorted = [...rounds].sort((a, b) => a.opsPerSecond - b.opsPerSecond);
  const middle = sorted[Math.floor(sorted.length / 2)]!;
  return { ...middle, iterations: rounds.reduce((sum, round) => sum + round.iterations, 0) };
}

/** One row per operation: Crate's function next to the bare node:crypto steps it is built from. */
export function printComparison(
  title: string,
  pairs: ReadonlyArray<readonly [crate: Measurement, bare: Measurement]>,
): void {
  console.log(`\n## ${title}\n`);
  console.log('| Crate | ops/s | bare node:crypto | ops/s | Crate / bare |');
  console.log('| --- | ---: | --- | ---: | ---: |');
  for (const [crate, bare] of pairs) {
    console.log(
      `| ${crate.name} | ${formatRate(crate)} | ${bare.name} | ${formatRate(bare)} | ${(crate.opsPerSecond / bare.opsPerSecond).toFixed(2)} |`,
    );
  }
}

function formatRate(row: Measurement): string {
  return row.opsPerSecond >= 100 ? row.opsPerSecond.toFixed(0) : row.opsPerSecond.toFixed(1);
}

export function machineLine(): string {
  const processors = cpus();
  return `node ${process.version}, ${process.platform}/${process.arch}, ${processors.length} × ${processors[0]?.model.trim() ?? 'unknown CPU'}`;
}
