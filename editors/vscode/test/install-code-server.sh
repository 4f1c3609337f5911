#!/usr/bin/env bash
# Installs code-server (VS Code in a browser, from npm) into a cache folder, offline apart from the
# npm registry, and prints the path of its executable. Reuses an earlier install.
# Usage: install-code-server.sh CACHE_DIR [VERSION]
# Needs node/npm, a C++ toolchain (node-pty compiles), Debian's ripgrep and libkrb5-dev.
set -euo pipefail
cache="$1"
version="${2:-4.100.3}"  # the newest code-server that runs on Node 20 (VS Code 1.100.3)
dest="$cache/code-server-$version"
bin="$dest/node_modules/.bin/code-server"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi

command -v rg >/dev/null || { echo "install-code-server: ripgrep (rg) is missing: apt-get install ripgrep" >&2; exit 1; }
stage="$(mktemp -d "$cache/.code-server-$version.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
# @vscode/ripgrep downloads rg from GitHub unless it finds its tarball cached in os.tmpdir():
# seed that cache with the system's rg.
rg_cache="$(node -p 'require("os").tmpdir()')/vscode-ripgrep-cache-1.15.11"
mkdir -p "$rg_cache" "$stage/rgseed"
cp "$(command -v rg)" "$stage/rgseed/rg"
tar -czf "$rg_cache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$stage/rgseed" rg
# unsafe_perm: code-server's postinstall refuses root without it; yes: node-pty runs `npx node-gyp`;
# nodedir: node-gyp uses the local Node headers instead of downloading them.
nodedir="$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")"
echo "install-code-server: npm install code-server@$version into $dest (about a minute)" >&2
(cd "$stage" && echo '{"private": true}' > package.json &&
 npm_config_nodedir="$nodedir" npm_config_unsafe_perm=true npm_config_yes=true \
   npm install --no-audit --no-fund --loglevel=error "code-server@$version" >&2)
rm -rf "$stage/rgseed"
rm -rf "$dest" && mv "$stage" "$dest"
trap - EXIT
echo "$bin"
