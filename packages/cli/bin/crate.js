#!/usr/bin/env node
// The `crate` executable. Runs the esbuild bundle (one file, fast start-up) when it is at
// least as new as the tsc output, else the tsc output (development without a bundle step).
import { statSync } from 'node:fs';

const mtime = (relative) => {
  try {
    return statSync(new URL(relative, import.meta.url)).mtimeMs;
  } catch {
    return -1;
  }
};
const bundle = mtime('../dist/crate.bundle.mjs');
const entry =
  bundle >= 0 && bundle >= mtime('../dist/main.js')
    ? '../dist/crate.bundle.mjs'
    : '../dist/main.js';
const { main } = await import(entry);
process.exitCode = await main({ argv: process.argv.slice(2) });
