// Prints plain closing lines for the whole suite from vitest's JSON report, e.g.
// "Tests: 312 passed, 0 failed, 4 skipped", so any CI reader can count the run, and says so
// plainly when the Postgres suites were skipped (no Postgres reachable on this machine).
import { readFileSync } from 'node:fs';

const [reportFile] = process.argv.slice(2);
let report;
try {
  report = JSON.parse(readFileSync(reportFile, 'utf8'));
} catch {
  console.log('Tests: 0 passed, 1 failed (no test report was written)');
  process.exit(1);
}
const passed = report.numPassedTests ?? 0;
const failed = (report.numFailedTests ?? 0) + (report.numFailedTestSuites ?? 0);
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);

const postgresSkips = new Set();
let postgresRan = 0;
for (const file of report.testResults ?? []) {
  for (const test of file.assertionResults ?? []) {
    const suite = (test.ancestorTitles ?? []).find((title) => title.includes('[postgres]'));
    if (!suite) continue;
    const reason = /\[postgres\] \(skipped: (.*)\)$/.exec(suite)?.[1];
    if (reason) postgresSkips.add(reason);
    else if (test.status === 'passed' || test.status === 'failed') postgresRan += 1;
  }
}
console.log(`Tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
if (postgresSkips.size > 0) {
  console.log(`Postgres suites: SKIPPED (${[...postgresSkips].join('; ')})`);
} else {
  console.log(`Postgres suites: ran (${postgresRan} tests)`);
}
