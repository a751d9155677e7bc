/**
 * A small, dependency-free measuring loop: warm up, then run the operation repeatedly for a
 * fixed wall-clock budget and report operations per second with the mean time per op.
 * Bounded in time by construction, so a benchmark always stops by itself.
 */
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

export function printTable(title: string, rows: readonly Measurement[]): void {
  console.log(`\n## ${title}\n`);
  console.log('| operation | ops/s | mean ms | iterations |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const row of rows) {
    console.log(
      `| ${row.name} | ${row.opsPerSecond.toFixed(0)} | ${row.meanMs.toFixed(3)} | ${row.iterations} |`,
    );
  }
}

export function machineLine(): string {
  return `node ${process.version}, ${process.platform}/${process.arch}`;
}
