// Bundles the CLI into one ESM file, dist/crate.bundle.mjs, so start-up reads one file
// instead of resolving hundreds of modules. Command modules stay lazily loaded: with
// splitting they become chunks in dist/bundle/, imported only when their command runs.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

try {
  await build({
    entryPoints: { 'crate.bundle': join(root, 'src', 'main.ts') },
    outdir: join(root, 'dist'),
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
console.error(`bundled ${join(root, 'dist', 'crate.bundle.mjs')}`);
