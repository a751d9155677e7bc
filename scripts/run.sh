#!/usr/bin/env bash
# The entry behind README's commands: `npm start` and `npm test` land here, with whatever
# Node the machine has; everything after the toolchain step runs on the project's Node 24.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/toolchain.sh"
cd "$CRATE_ROOT"

install_deps() {
  if [ "${CI:-}" = "true" ] || [ ! -d node_modules/.pnpm ]; then
    pnpm install --frozen-lockfile --reporter=append-only
  else
    pnpm install --frozen-lockfile --prefer-offline --reporter=silent
  fi
}

target="${1:-}"
shift || true
case "$target" in
  start)
    install_deps
    pnpm run -s build
    exec node scripts/quickstart.mjs "$@"
    ;;
  test)
    install_deps
    pnpm run -s build
    report="$(mktemp -t crate-vitest-XXXXXX.json)"
    status=0
    pnpm exec vitest run --reporter=default --reporter=json --outputFile.json="$report" "$@" || status=$?
    node scripts/test-summary.mjs "$report" || status=1
    rm -f "$report"
    exit "$status"
    ;;
  check)
    install_deps
    pnpm run -s typecheck
    pnpm run -s lint
    ;;
  bench)
    install_deps
    pnpm run -s build
    exec node "$@"
    ;;
  pnpm)
    exec pnpm "$@"
    ;;
  *)
    echo "usage: scripts/run.sh start|test|check|bench FILE|pnpm ARGS" >&2
    exit 64
    ;;
esac
