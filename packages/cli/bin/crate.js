#!/usr/bin/env node
// The `crate` executable. Runs the esbuild bundle (one file, fast start-up) when it is at
// least as new as the tsc output, else the tsc output (development without a bundle step).
// tsc -b rewrites only the files that changed, so "the tsc output" is dated by its build info
// file (rewritten by every build) rather than by main.js, which a change elsewhere leaves old.
import { statSync } from 'node:fs';

const mtime = (relative) => {
  try {
    return statSync(new URL(relative, import.meta.url)).mtimeMs;
  } catch {
    return -1;
  }
};
const bundle = mtime('../dist/crate.bundle.mjs');
const tscOutput = Math.max(mtime('../dist/main.js'), mtime('../dist/.tsbuildinfo'));
const entry = bundle >= 0 && bundle >= tscOutput ? '../dist/crate.bundle.mjs' : '../dist/main.js';
const { main } = await import(entry);
process.exitCode = await main({ argv: process.argv.slice(2) });
