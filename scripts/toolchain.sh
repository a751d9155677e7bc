#!/usr/bin/env bash
# Provisions the project's own Node 24 and pnpm from the npm registry into .toolchain/
# and puts them first on PATH. Source it: `. scripts/toolchain.sh`.
# Why: machines may carry an end-of-life Node (20); the project targets Node 24 LTS and
# nothing installed by hand survives to the next machine.
# No `set -e` here: this file is sourced, and must not change the caller's shell options.
CRATE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CRATE_NODE_VERSION="24.21.0"
CRATE_PNPM_VERSION="10.34.9"
TOOLCHAIN_DIR="$CRATE_ROOT/.toolchain"

crate_node_package() {
  local os arch
  case "$(uname -s)" in
    Linux) os=linux ;;
    Darwin) os=darwin ;;
    *) echo "crate: unsupported OS $(uname -s); install Node >= 22 and pnpm yourself" >&2; return 1 ;;
  esac
  case "$(uname -m)" in
    x86_64 | amd64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) echo "crate: unsupported CPU $(uname -m); install Node >= 22 and pnpm yourself" >&2; return 1 ;;
  esac
  echo "node-$os-$arch"
}

crate_toolchain_ready() {
  [ -x "$TOOLCHAIN_DIR/bin/node" ] && [ -x "$TOOLCHAIN_DIR/bin/pnpm" ] &&
    [ "$("$TOOLCHAIN_DIR/bin/node" --version)" = "v$CRATE_NODE_VERSION" ] &&
    [ "$(cat "$TOOLCHAIN_DIR/.pnpm-version" 2>/dev/null)" = "$CRATE_PNPM_VERSION" ]
}

if ! crate_toolchain_ready; then
  pkg="$(crate_node_package)" || return 1 2>/dev/null || exit 1
  echo "crate: provisioning Node $CRATE_NODE_VERSION and pnpm $CRATE_PNPM_VERSION into .toolchain/ (npm registry)" >&2
  rm -rf "$TOOLCHAIN_DIR"
  mkdir -p "$TOOLCHAIN_DIR/bin"
  # The platform package ships the node binary itself, so no install script is needed.
  npm install --silent --no-save --no-audit --no-fund --ignore-scripts --prefix "$TOOLCHAIN_DIR" \
    "$pkg@$CRATE_NODE_VERSION" "pnpm@$CRATE_PNPM_VERSION" >&2 || {
    echo "crate: could not install Node $CRATE_NODE_VERSION from the npm registry (see npm's message above)" >&2
    return 1 2>/dev/null || exit 1
  }
  ln -sf "$TOOLCHAIN_DIR/node_modules/$pkg/bin/node" "$TOOLCHAIN_DIR/bin/node"
  cat >"$TOOLCHAIN_DIR/bin/pnpm" <<SH
#!/usr/bin/env bash
exec "$TOOLCHAIN_DIR/bin/node" "$TOOLCHAIN_DIR/node_modules/pnpm/bin/pnpm.cjs" "\$@"
SH
  chmod +x "$TOOLCHAIN_DIR/bin/pnpm"
  echo "$CRATE_PNPM_VERSION" >"$TOOLCHAIN_DIR/.pnpm-version"
fi

export PATH="$TOOLCHAIN_DIR/bin:$PATH"
export CRATE_ROOT
