/**
 * A one-line progress bar on stderr, drawn only when stderr is a terminal (scripts and logs
 * get the final report alone). Redrawn at most ten times a second.
 */
export function progressBar(label: string): {
  update(done: number, total: number): void;
  finish(): void;
} {
  const tty = process.stderr.isTTY === true;
  const started = performance.now();
  let last = 0;
  let drawn = false;
  return {
    update(done, total) {
      if (!tty) return;
      const now = performance.now();
      if (now - last < 100 && done < total) return;
      last = now;
      const width = 30;
      const share = total > 0 ? Math.min(1, done / total) : 1;
      const filled = Math.round(share * width);
      const rate = done / Math.max((now - started) / 1000, 0.001);
      process.stderr.write(
        `\r${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${Math.floor(share * 100)}% ` +
          `${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} (${Math.round(rate).toLocaleString('en-US')}/s)\u001b[K`,
      );
      drawn = true;
    },
    finish() {
      if (drawn) process.stderr.write('\n');
    },
  };
}
