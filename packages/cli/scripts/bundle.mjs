// Bundles the CLI into one ESM file, dist/crate.bundle.mjs, so start-up reads one file
// instead of resolving hundreds of modules. Command modules stay lazily loaded: with
// splitting they become chunks in dist/bundle/, imported only when their command runs.
// `--outdir DIR` writes the same files elsewhere (the e2e test runs a copy outside the repo).
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outdirAt = process.argv.indexOf('--outdir');
const outdir = outdirAt > 0 ? resolve(process.argv[outdirAt + 1] ?? '') : join(root, 'dist');

try {
  await build({
    entryPoints: { 'crate.bundle': join(root, 'src', 'main.ts') },
    outdir,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'bundle/[name]-[hash]',
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node22',
    sourcemap: 'linked',
    legalComments: 'linked',
    logLevel: 'warning',
    // Some dependencies are CommonJS and call require(); give the ESM output one.
    banner: {
      js: "import { createRequire as __crateCreateRequire } from 'node:module'; const require = __crateCreateRequire(import.meta.url);",
    },
  });
} catch {
  // esbuild has already printed the errors.
  process.exit(1);
}
console.error(`bundled ${join(outdir, 'crate.bundle.mjs')}`);
