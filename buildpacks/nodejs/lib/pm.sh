# The app's package manager, for bin/dependencies and bin/compile (sourced; bash).
#
# Which one: the app's single lock file (kiln refused any other shape before the build):
#   package-lock.json / npm-shrinkwrap.json  npm     yarn.lock (v1 text)  yarn (classic)
#   yarn.lock with __metadata                berry   pnpm-lock.yaml       pnpm
#
# How each installs with no network (the dependencies phase has the lock's pinned tarballs in
# $KILN_TARBALLS, index.json naming each file, its integrity, package and version):
#   npm    npm's cache prefilled by integrity (prefill-cache.js), npm ci --offline
#   yarn   the tarballs are yarn's offline mirror (kiln rewrote the lock's `resolved` to their file
#          names), yarn install --frozen-lockfile --offline
#   pnpm   pnpm install --frozen-lockfile from a registry on the sandbox's own loopback that serves
#          only the pinned tarballs (registry.cjs); pnpm verifies each against the lock
#   berry  yarn install --immutable from the same loopback registry; berry checks every zip it
#          makes against the lock's checksum
# What the dependencies phase leaves: CACHE_DIR/node_modules (the root's), CACHE_DIR/overlay (the
# rest: workspaces' node_modules, berry's .pnp.* and .yarn/{cache,unplugged,install-state.gz}) and
# CACHE_DIR/kiln-pm (what later steps need: the tarballs and the rewritten lock for pruning, the
# workspace list for the workspaces' own install scripts).

KILN_REGISTRY_PORT=48730

pm_kind() {
  if [ -f "$1/pnpm-lock.yaml" ]; then echo pnpm
  elif [ -f "$1/yarn.lock" ]; then
    if grep -q '^__metadata:' "$1/yarn.lock"; then echo berry; else echo yarn; fi
  else echo npm
  fi
}

# pm_tool NAME: fail clearly when the runtime does not provide the package manager.
pm_tool() {
  if ! command -v "$1" > /dev/null 2>&1; then
    echo " !     $1 is not available in this build's runtime (kiln vendors the app's package manager from engines.$1 or packageManager)" >&2
    exit 1
  fi
}

# start_loopback_registry DIR: serve DIR's pinned tarballs on 127.0.0.1 (this sandbox's own loopback).
start_loopback_registry() {
  local dir=$1 ready=/tmp/kiln-registry.ready i=0
  rm -f "$ready"
  "$KILN_STACK_NODE" "$bp_dir/lib/registry.cjs" "$dir" "$KILN_REGISTRY_PORT" "$ready" &
  KILN_REGISTRY_PID=$!
  trap 'kill "$KILN_REGISTRY_PID" 2> /dev/null || true' EXIT
  while [ ! -f "$ready" ]; do
    i=$((i + 1))
    if [ "$i" -gt 300 ] || ! kill -0 "$KILN_REGISTRY_PID" 2> /dev/null; then
      echo " !     the loopback registry did not start" >&2
      exit 1
    fi
    sleep 0.1
  done
  export KILN_REGISTRY_URL="http://127.0.0.1:$KILN_REGISTRY_PORT/"
}

stop_loopback_registry() {
  if [ -n "${KILN_REGISTRY_PID:-}" ]; then
    kill "$KILN_REGISTRY_PID" 2> /dev/null || true
    wait "$KILN_REGISTRY_PID" 2> /dev/null || true
    KILN_REGISTRY_PID=""
  fi
}

# The settings each manager gets in both phases: no telemetry, no progress bars, caches in /tmp or
# the app (berry's cache is where pnp finds packages at run time), the loopback registry.
pm_env() {
  local kind=$1
  export npm_config_cache=/tmp/npm-cache npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false npm_config_progress=false npm_config_color=false
  case "$kind" in
    # The offline locks' `resolved` are on kiln.invalid (their tarballs are in the prefilled cache):
    # npm 12 installs URLs off the configured registry's host only with allow-remote.
    npm) export npm_config_registry=https://kiln.invalid/ ;;
    # pnpm: one store path in both phases (it records it in node_modules/.modules.yaml).
    pnpm) export npm_config_store_dir=/tmp/pnpm-store CI=true ;;
    # berry fails on a YARN_* setting it does not know: only settings yarn 2 already has.
    berry)
      export YARN_ENABLE_TELEMETRY=0 YARN_ENABLE_PROGRESS_BARS=false YARN_ENABLE_COLORS=false
      export YARN_ENABLE_GLOBAL_CACHE=false YARN_CACHE_FOLDER="$PWD/.yarn/cache" YARN_ENABLE_IMMUTABLE_INSTALLS=true
      export YARN_NPM_REGISTRY_SERVER="http://127.0.0.1:$KILN_REGISTRY_PORT" YARN_UNSAFE_HTTP_WHITELIST=127.0.0.1
      ;;
  esac
}

# npm_quiet_if_old: a lockfile v1 (npm 5-6) is upgraded in memory by every npm command, which warns
# once per package that it cannot fetch metadata offline (it needs none: the lock and the tarballs
# suffice). Those warnings go; errors stay.
npm_quiet_if_old() {
  local f=package-lock.json
  if [ -f npm-shrinkwrap.json ]; then f=npm-shrinkwrap.json; fi
  if [ -f "$f" ] && "$KILN_STACK_NODE" -e 'process.exit(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).lockfileVersion < 2 ? 0 : 1)' "$f"; then
    echo "       $f is lockfileVersion 1: npm upgrades it in memory" >&2
    echo "--loglevel=error"
  fi
}

# pm_install KIND TARBALL_DIR: the offline install of the dependencies phase (devDependencies too).
pm_install() {
  local kind=$1 tarballs=$2
  case "$kind" in
    npm)
      echo "-----> Installing pinned packages offline (npm ci)"
      "$KILN_STACK_NODE" "$bp_dir/lib/prefill-cache.js" "$tarballs" "$npm_config_cache"
      # shellcheck disable=SC2046 # one flag or none
      npm ci --offline --ignore-scripts --include=dev --no-audit --no-fund $(npm_quiet_if_old)
      echo "-----> Running the dependencies' install scripts (native addons compile here)"
      npm rebuild --offline --foreground-scripts
      ;;
    yarn)
      pm_tool yarn
      echo "-----> Installing pinned packages offline (yarn $(yarn --version) install --frozen-lockfile --offline)"
      printf '\nyarn-offline-mirror "%s"\nyarn-offline-mirror-pruning false\n' "$tarballs" >> .yarnrc
      yarn install --frozen-lockfile --offline --ignore-engines --non-interactive --production=false \
        --cache-folder /tmp/yarn-cache --network-timeout 1000
      ;;
    pnpm)
      pm_tool pnpm
      echo "-----> Installing pinned packages (pnpm $(pnpm --version) install --frozen-lockfile, from the loopback registry of pinned tarballs)"
      start_loopback_registry "$tarballs"
      pnpm install --frozen-lockfile --prod=false --registry "$KILN_REGISTRY_URL" --reporter=append-only \
        --config.confirmModulesPurge=false --config.fetch-retries=0
      stop_loopback_registry
      ;;
    berry)
      pm_tool yarn
      echo "-----> Installing pinned packages (yarn $(yarn --version) install --immutable, from the loopback registry of pinned tarballs)"
      start_loopback_registry "$tarballs"
      yarn install --immutable
      stop_loopback_registry
      ;;
  esac
}

# pm_collect BUILD_DIR CACHE_DIR: move what the install made into CACHE_DIR (see the top).
pm_collect() {
  local build=$1 cache=$2 kind=$3 tarballs=$4
  mkdir -p "$cache/overlay"
  if [ -d "$build/node_modules" ]; then mv "$build/node_modules" "$cache/node_modules"; else mkdir "$cache/node_modules"; fi
  (
    cd "$build"
    find . -name node_modules -type d -prune | while read -r d; do
      mkdir -p "$cache/overlay/$(dirname "$d")"
      mv "$d" "$cache/overlay/$d"
    done
    for f in .pnp.cjs .pnp.js .pnp.loader.mjs .pnp.data.json .yarn/cache .yarn/unplugged .yarn/install-state.gz .yarn/build-state.yml; do
      if [ -e "$f" ]; then mkdir -p "$cache/overlay/$(dirname "$f")"; mv "$f" "$cache/overlay/$f"; fi
    done
  )
  # kiln's list of the workspaces (dependencies first), for their own install scripts in bin/compile.
  if [ -f "$build/.kiln-workspaces" ]; then mkdir -p "$cache/kiln-pm" && cp "$build/.kiln-workspaces" "$cache/kiln-pm/workspaces"; fi
  if [ "$kind" = yarn ] || [ "$kind" = pnpm ]; then
    # Pruning devDependencies later reinstalls from these (yarn) or checks the lock (pnpm).
    mkdir -p "$cache/kiln-pm/tarballs"
    if [ "$kind" = yarn ]; then cp "$tarballs"/* "$cache/kiln-pm/tarballs/"; cp "$build/yarn.lock" "$cache/kiln-pm/yarn.lock"; fi
  fi
}

# pm_restore CACHE_DIR BUILD_DIR: bin/compile's side of pm_collect.
pm_restore() {
  local cache=$1 build=$2
  if [ -d "$cache/node_modules" ]; then
    rm -rf "$build/node_modules"
    mv "$cache/node_modules" "$build/node_modules"
  fi
  if [ -d "$cache/overlay" ]; then
    cp -RP "$cache/overlay/." "$build/"
    rm -rf "$cache/overlay"
  fi
}

# pm_has_script SCRIPT: whether ./package.json has it.
pm_has_script() {
  "$KILN_STACK_NODE" -e 'const s = require(require("path").resolve("package.json")).scripts || {}; process.exit(s[process.argv[1]] ? 0 : 1)' "$1"
}

# pm_run KIND SCRIPT [WHO]: run a package.json script (./package.json's) with the app's manager,
# failing the build by name. WHO names the package in messages ("the app", or a workspace).
pm_run() {
  local kind=$1 script=$2 who=${3:-the app} rc=0
  if [ "$who" = "the app" ]; then echo "-----> Running $script"; else echo "-----> Running $script in $who"; fi
  case "$kind" in
    npm) npm run "$script" || rc=$? ;;
    yarn | berry) yarn run "$script" || rc=$? ;;
    # Only the script named: pnpm's pre/post hooks (enable-pre-post-scripts) differ by version.
    pnpm) pnpm run --config.enable-pre-post-scripts=false "$script" || rc=$? ;;
  esac
  if [ "$rc" -ne 0 ]; then
    if [ "$who" = "the app" ]; then who="the app's"; else who="$who's"; fi
    echo " !     $who \"$script\" script failed (exit $rc)" >&2
    exit "$rc"
  fi
}

# pm_gyp_rebuild WHO: npm's default install script, `node-gyp rebuild`, with the npm package's own
# node-gyp (offline: it reads npm_config_nodedir, the runtime's headers, from use_runtime). Only
# build/Release/*.node is kept (drop_gyp_build_files).
pm_gyp_rebuild() {
  local who=$1 npm_dir=/kiln/runtime/npm gyp rc=0
  echo "-----> Building $who's native addon (binding.gyp: node-gyp rebuild, npm's default install)"
  # The npm package: the runtime's, or (no runtime, as nix/bootstrap's) the stack's.
  if [ ! -d "$npm_dir" ]; then npm_dir=/usr/local/lib/node_modules/npm; fi
  gyp="$npm_dir/node_modules/node-gyp/bin/node-gyp.js"
  if [ ! -f "$gyp" ]; then
    echo " !     npm has no node-gyp ($gyp): $who's binding.gyp cannot be built" >&2
    exit 1
  fi
  node "$gyp" rebuild || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo " !     node-gyp rebuild of $who's binding.gyp failed (exit $rc)" >&2
    exit "$rc"
  fi
}

# pm_lifecycle KIND WHO ROOT: ./package.json's own install scripts, those the manager's install
# runs for a project (ROOT=true) or a workspace package (false), each once, in its order:
#   npm    preinstall install postinstall, then preprepare prepare postprepare
#   yarn   the same (workspaces: no prepare)      berry  preinstall install postinstall
#   pnpm   preinstall install postinstall preprepare prepare postprepare
# npm and yarn classic run preX and postX with X themselves: X stands for its group when present.
pm_lifecycle() {
  local kind=$1 who=$2 root=$3 group s
  local groups="preinstall:install:postinstall preprepare:prepare:postprepare"
  if [ "$kind" = berry ] || { [ "$kind" = yarn ] && [ "$root" != true ]; }; then groups="preinstall:install:postinstall"; fi
  for group in $groups; do
    if [ "$kind" = npm ] || [ "$kind" = yarn ]; then
      s=${group#*:}
      s=${s%:*}
      if pm_has_script "$s"; then
        pm_run "$kind" "$s" "$who"
        continue
      fi
      # npm and yarn classic: a binding.gyp and neither install (just checked) nor preinstall
      # script means install is `node-gyp rebuild`.
      if [ "$s" = install ] && [ -f binding.gyp ] && ! pm_has_script preinstall; then
        pm_gyp_rebuild "$who"
        if pm_has_script postinstall; then pm_run "$kind" postinstall "$who"; fi
        continue
      fi
    fi
    for s in ${group//:/ }; do
      if pm_has_script "$s"; then pm_run "$kind" "$s" "$who"; fi
    done
  done
}

# pm_workspace_lifecycle KIND LIST: each workspace package's own install scripts (bin/dependencies
# installed without them), in LIST's order (kiln's, dependencies first), as the manager's install
# runs them, before the root's. The directories were checked by kiln; one that resolves outside
# the app here is skipped.
pm_workspace_lifecycle() {
  local kind=$1 list=$2 top ws real
  [ -f "$list" ] || return 0
  top=$(pwd -P)
  while IFS= read -r ws; do
    [ -n "$ws" ] || continue
    if ! real=$(cd "$ws" 2> /dev/null && pwd -P) || [ ! -f "$real/package.json" ]; then continue; fi
    case "$real/" in
      "$top"/?*) ;;
      *)
        echo " !     workspace $ws is not a directory inside the app: its scripts are not run" >&2
        continue
        ;;
    esac
    (cd "$real" && pm_lifecycle "$kind" "workspace $ws" false) || exit $?
  done < "$list"
}

# pm_prune KIND BUILD_DIR CACHE_DIR: remove devDependencies, as Heroku's buildpack decides
# (NODE_ENV, NPM_CONFIG_PRODUCTION, YARN_PRODUCTION, YARN2_SKIP_PRUNING, PNPM_SKIP_PRUNING).
pm_prune() {
  local kind=$1 build=$2 cache=$3
  [ -d "$build/node_modules" ] || [ -f "$build/.pnp.cjs" ] || return 0
  echo "-----> Pruning devDependencies"
  if [ "${NODE_ENV:-production}" = test ]; then echo "       Skipping because NODE_ENV is 'test'"; return 0; fi
  if [ "${NODE_ENV:-production}" != production ]; then echo "       Skipping because NODE_ENV is not 'production'"; return 0; fi
  case "$kind" in
    npm)
      if [ -n "${NPM_CONFIG_PRODUCTION:-}" ]; then echo "       Skipping because NPM_CONFIG_PRODUCTION is '$NPM_CONFIG_PRODUCTION'"; return 0; fi
      # npm 12 reads no npm-shrinkwrap.json: prune by it under package-lock.json's name (same format).
      local shrinkwrap=false
      if [ -f npm-shrinkwrap.json ] && [ ! -e package-lock.json ]; then
        shrinkwrap=true
        cp npm-shrinkwrap.json package-lock.json
      fi
      # --no-save: the app's lock stays exactly as committed.
      # shellcheck disable=SC2046 # one flag or none
      npm prune --omit=dev --offline --no-save --no-audit --no-fund $(npm_quiet_if_old)
      if [ "$shrinkwrap" = true ]; then rm -f package-lock.json; fi
      ;;
    yarn)
      if [ -n "${YARN_PRODUCTION:-}" ]; then echo "       Skipping because YARN_PRODUCTION is '$YARN_PRODUCTION'"; return 0; fi
      # yarn classic prunes by reinstalling for production, from the offline mirror and kiln's lock.
      cp yarn.lock /tmp/kiln-yarn.lock.app
      if [ -f .yarnrc ]; then cp .yarnrc /tmp/kiln-yarnrc.app; fi
      cp "$cache/kiln-pm/yarn.lock" yarn.lock
      printf '\nyarn-offline-mirror "%s"\nyarn-offline-mirror-pruning false\n' "$cache/kiln-pm/tarballs" >> .yarnrc
      yarn install --production --frozen-lockfile --offline --ignore-scripts --ignore-engines \
        --non-interactive --cache-folder /tmp/yarn-cache
      rm -f .yarnrc
      if [ -f /tmp/kiln-yarnrc.app ]; then cp /tmp/kiln-yarnrc.app .yarnrc; fi
      cp /tmp/kiln-yarn.lock.app yarn.lock
      ;;
    pnpm)
      if [ "${PNPM_SKIP_PRUNING:-}" = true ]; then echo "       Skipping because PNPM_SKIP_PRUNING is 'true'"; return 0; fi
      # The install scripts ran already (bin/compile): pnpm prune would run the workspaces' again.
      # Like Heroku's buildpack, --ignore-scripts where pnpm has it for prune (8.15.6 and later).
      local ignore=""
      if "$KILN_STACK_NODE" -e 'const [a, b, c] = process.argv[1].split(".").map(Number); process.exit(a > 8 || (a === 8 && (b > 15 || (b === 15 && c >= 6))) ? 0 : 1)' "$(pnpm --version)"; then
        ignore=--ignore-scripts
      fi
      # shellcheck disable=SC2086 # one flag or none
      pnpm prune --prod --config.confirmModulesPurge=false $ignore
      ;;
    berry)
      if [ "${YARN2_SKIP_PRUNING:-}" = true ]; then echo "       Skipping because YARN2_SKIP_PRUNING is 'true'"; return 0; fi
      yarn workspaces focus --all --production
      ;;
  esac
}
