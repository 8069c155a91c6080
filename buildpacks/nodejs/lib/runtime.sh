# The app's runtime: Node (and, once kiln pins them, the app's package manager) for both phases.
# Sourced by bin/dependencies and bin/compile. Today it is the stack's own Node and npm
# (/usr/local); kiln's per-app runtime (engines.node, packageManager) replaces what these
# functions copy and put on PATH, and nothing else in the buildpack needs to change.

# use_runtime: put the runtime's node and package manager first on PATH (both phases).
use_runtime() {
  # The vendored npm reads its own prefix's npmrc, not the stack's: keep node-gyp on the runtime's
  # headers (no network).
  export npm_config_nodedir=/usr/local
}

# vendor_runtime BUILD_DIR: copy the runtime into BUILD_DIR/.heroku/node, so the slug carries it.
vendor_runtime() {
  local build=$1
  echo "-----> Vendoring Node $(node --version) and npm $(npm --version) into .heroku/node"
  mkdir -p "$build/.heroku/node/bin" "$build/.heroku/node/lib/node_modules"
  cp /usr/local/bin/node "$build/.heroku/node/bin/node"
  cp -R /usr/local/lib/node_modules/npm "$build/.heroku/node/lib/node_modules/npm"
  ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$build/.heroku/node/bin/npm"
  ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$build/.heroku/node/bin/npx"
}
