/**
 * Crash-safety test hooks, read only by the rotation code. Each names a batch number counted
 * from the start of the rotation (across restarts); when the rotation reaches it, the process
 * says so on stderr and stops making progress (a promise that never settles), so a test can
 * `kill -9` it at that exact point:
 *
 *   CRATE_TEST_ROTATION_PAUSE_AFTER_BATCH=N   after batch N has committed
 *   CRATE_TEST_ROTATION_PAUSE_IN_BATCH=N      inside batch N's transaction, rows updated, before commit
 *
 * Unset in production: reading two environment variables costs nothing.
 */
export type PausePoint = 'after-batch' | 'in-batch';

const VARIABLES: Record<PausePoint, string> = {
  'after-batch': 'CRATE_TEST_ROTATION_PAUSE_AFTER_BATCH',
  'in-batch': 'CRATE_TEST_ROTATION_PAUSE_IN_BATCH',
};

export async function pauseForTest(point: PausePoint, batch: number): Promise<void> {
  const wanted = process.env[VARIABLES[point]];
  if (wanted === undefined || Number(wanted) !== batch) return;
  process.stderr.write(`crate-test: rotation paused ${point} ${batch}\n`);
  await new Promise<never>(() => {});
}
