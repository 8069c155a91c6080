# One build phase of an app, run by the seed's static busybox inside the Nix sandbox: it starts
# bubblewrap with stack-build as / (through the stack's own loader, so no store path other than the
# stack is visible inside). The work happens in memory (tmpfs); only the result is written to $out.
#
#   /app                 BUILD_DIR (tmpfs), filled from /kiln/source or /kiln/input
#   /kiln/buildpacks/N   the buildpacks, read-only           /kiln/cache/N  each one's CACHE_DIR
#   /kiln/env            ENV_DIR                              /kiln/out      $out
#   /kiln/tools          kiln's in-sandbox tools (build phase)
#   /kiln/tarballs       pinned dependency tarballs (dependencies phase)
#   /kiln/deps           the dependencies phase's output (build phase)
#   /kiln/runtime/{node,npm,pm}  the app's Node, npm and package manager (both phases; when set)
#   /kiln/fetches/NAME   the app's kiln.json fetches, read-only (both phases)
#
# Every phase runs under a dyno's lockdown (src/builds/limits.ts says what is enforced where):
# kiln's seccomp filter ($seccomp, nix/build/seccomp.bpf, compiled from src/dyno/seccomp.ts), no
# further user namespaces, no capabilities, a new session, size-capped tmpfs for /tmp, /app, /kiln
# and /dev/shm, no core dumps and a bounded number of open files. The sizes come from the build's
# size in /kiln-limits (a file kiln binds in with Nix's sandbox-paths, so they are not part of the
# derivation: a build's output must not depend on them); without it (pure evaluation, or a Nix
# daemon that does not trust kiln) they are performance-m's.
#
# Inputs (environment): $seed $stack $phase $buildpacks $specJSON $seccomp, and per phase:
#   dependencies: $input (the declared input files) $tarballs (store paths) $tarballIndex (JSON)
#   build:        $source $tools $deps (a dependencies output, or "") $depsIndex (whose CACHE_DIR)
#   detect:       $source (one buildpack in $buildpacks: its bin/detect's verdict)
#   stage0:       $source $deps (nix/bootstrap's hand compile)
#   tools:        $kiln (a kiln tree: its tools are assembled by its own code)
#   unpack:       $slug (a slug derivation's output)
# and, in a reproducibility check's derivations only, $vary* (see below).
bb=$builder # the seed's busybox (nix/constants.json), which runs this script
$bb mkdir -p "$TMPDIR/bin"
for applet in $($bb --list); do $bb ln -s "$bb" "$TMPDIR/bin/$applet"; done
export PATH="$TMPDIR/bin"

mkdir -p "$out" "$TMPDIR/meta"
printf '%s' "$specJSON" > "$TMPDIR/meta/spec.json"

binds=""
i=0
for bp in $buildpacks; do
  binds="$binds --ro-bind $bp /kiln/buildpacks/$i"
  i=$((i + 1))
done

# The app's runtime (nix/build/runtime.nix), in the dependencies and build phases: Node, npm and
# the package manager, read-only; buildpacks/nodejs/lib/runtime.sh uses them. Unset: the stack's.
if [ -n "${runtimeNode:-}" ]; then
  binds="$binds --ro-bind $runtimeNode /kiln/runtime/node --ro-bind $runtimeNpm /kiln/runtime/npm
    --ro-bind $runtimePm /kiln/runtime/pm"
fi

# The app's kiln.json fetches ($fetches, store paths in $fetchPlan's order: `NAME UNPACK EXECUTABLE` a
# line), read-only at /kiln/fetches/NAME in both phases, unpacked here by busybox; $fetchEnv's
# `VAR=/kiln/fetches/...` lines join the sandbox's environment (kiln checked names and paths).
if [ -n "${fetches:-}" ]; then
  mkdir -p "$TMPDIR/fetches"
  # shellcheck disable=SC2086 # store paths, no spaces
  set -- $fetches
  while read -r name unpack exe; do
    f=$1
    shift
    dst="$TMPDIR/fetches/$name"
    case "$unpack" in
      gzip) gunzip -c "$f" > "$dst" ;;
      tar) mkdir "$dst" && tar -xf "$f" -C "$dst" ;;
      zip) mkdir "$dst" && unzip -q "$f" -d "$dst" ;;
      *) cp "$f" "$dst" ;;
    esac
    if [ "$exe" = 1 ]; then chmod -R a+x "$dst"; fi
    chmod -R a+rX,go-w "$dst"
  done << EOF
$fetchPlan
EOF
  binds="$binds --ro-bind $TMPDIR/fetches /kiln/fetches"
fi

# A reproducibility check (kiln check, nix/build/variations.json) sets vary* to change what must not
# matter; unset, each is the ordinary build's value.
build_dir=${varyBuildDir:-/app}
umask=${varyUmask:-022}
user=${varyUser:-app:1000}
uid=${user#*:}
cores=${NIX_BUILD_CORES:-1}
affinity=""
if [ -n "${varyCpus:-}" ]; then cores=${varyCpus%%:*}; affinity=${varyCpus#*:}; fi

# The sandbox's environment, one NAME=value per line (values have no white space: kiln checks).
env_list="PATH=/usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin
HOME=/tmp/home
TMPDIR=/tmp
LANG=${varyLang:-C.UTF-8}
TZ=${varyTZ:-UTC}
SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH
STACK=kiln-build
NIX_BUILD_CORES=$cores
npm_config_jobs=$cores
MAKEFLAGS=-j$cores
KILN_PHASE=$phase
KILN_BUILD_DIR=$build_dir"
if [ -n "${fetchEnv:-}" ]; then env_list="$env_list
$fetchEnv"; fi
if [ -n "${varyLang:-}" ]; then env_list="$env_list
LC_ALL=$varyLang"; fi
if [ -n "${varyFaketime:-}" ]; then env_list="$env_list
LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
FAKETIME=$varyFaketime
FAKETIME_DONT_FAKE_MONOTONIC=1"; fi
if [ -n "${varyExtraEnv:-}" ]; then env_list="$env_list
$varyExtraEnv"; fi
if [ -n "${runtimeNode:-}" ]; then env_list="$env_list
KILN_NODE_VERSION=$runtimeNodeVersion
KILN_NPM_VERSION=$runtimeNpmVersion
KILN_PM_NAME=$runtimePmName
KILN_PM_VERSION=$runtimePmVersion"; fi
if [ "${varyEnv:-}" = reverse ]; then env_list=$(printf '%s\n' "$env_list" | tac); fi
env_args=""
for kv in $env_list; do env_args="$env_args --setenv ${kv%%=*} ${kv#*=}"; done

# Another user: the stack's passwd and group, with that user in them.
user_binds=""
if [ "$user" != "app:1000" ]; then
  name=${user%%:*}
  mkdir -p "$TMPDIR/etc"
  { grep -v "^$name:" "$stack/etc/passwd"; echo "$name:x:$uid:$uid:kiln check:/tmp/home:/bin/sh"; } > "$TMPDIR/etc/passwd"
  { grep -v "^$name:" "$stack/etc/group"; echo "$name:x:$uid:"; } > "$TMPDIR/etc/group"
  user_binds="--ro-bind $TMPDIR/etc/passwd /etc/passwd --ro-bind $TMPDIR/etc/group /etc/group"
fi

# The limits: performance-m's unless kiln's /kiln-limits says otherwise (one `name value` a line,
# numbers only; anything else is ignored, never evaluated).
tmp_bytes=1342177280
app_bytes=2684354560
shm_bytes=67108864
open_files=65536
lockdown=1
if [ -r /kiln-limits ]; then
  while read -r k v; do
    case "$v" in '' | *[!0-9]*) continue ;; esac
    case "$k" in
      tmp) tmp_bytes=$v ;;
      app) app_bytes=$v ;;
      shm) shm_bytes=$v ;;
      open-files) open_files=$v ;;
      # Only kiln's test suite and bench turn it off (KILN_BUILD_LOCKDOWN=off), to show what it stops.
      lockdown) lockdown=$v ;;
    esac
  done < /kiln-limits
fi
ulimit -c 0
# Lowering is always allowed; raising past the hard limit Nix gave us is not (then keep that).
ulimit -n "$open_files" 2> /dev/null || ulimit -S -n "$(ulimit -H -n)"
lock_args="--unshare-user --disable-userns --assert-userns-disabled --cap-drop ALL --seccomp 9"
tmpfs_args="--size $tmp_bytes --tmpfs /tmp --size $app_bytes --tmpfs /app --size $app_bytes --tmpfs /kiln
  --size $shm_bytes --tmpfs /dev/shm"
if [ "$lockdown" = 0 ]; then
  lock_args=""
  tmpfs_args="--tmpfs /tmp --tmpfs /app --tmpfs /kiln"
fi

in_stack() {
  # Fewer CPUs: the build may run on those in the mask only (what nproc and Node's availableParallelism see).
  set -- "$stack/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "$stack/usr/lib/x86_64-linux-gnu" \
    "$stack/usr/bin/bwrap" \
    --unshare-all $lock_args --hostname "${varyHostname:-kiln}" --uid "$uid" --gid "$uid" --die-with-parent --new-session \
    --ro-bind "$stack" / --proc /proc --dev /dev $tmpfs_args \
    --ro-bind "$TMPDIR/meta" /kiln/meta $binds $user_binds \
    --clearenv $env_args \
    --chdir /app "$@"
  if [ -n "$affinity" ]; then set -- taskset "$affinity" "$@"; fi
  # shellcheck disable=SC2086 # $binds, $user_binds, $env_args, $*_args: bwrap arguments without spaces.
  # fd 9: the seccomp program, read (and closed) by bwrap, reopened for each phase's bwrap.
  "$@" 9< "$seccomp"
}

case "$phase" in
  dependencies)
    mkdir -p "$TMPDIR/tarballs"
    # A store path's base name is HASH-NAME; the tools know each tarball by NAME.
    for t in $tarballs; do n=${t##*/}; cp "$t" "$TMPDIR/tarballs/${n#*-}"; done
    printf '%s' "$tarballIndex" > "$TMPDIR/tarballs/index.json"
    in_stack --ro-bind "$input" /kiln/input --ro-bind "$TMPDIR/tarballs" /kiln/tarballs --bind "$out" /kiln/cache/0 \
      --setenv KILN_TARBALLS /kiln/tarballs -- \
      sh -c 'umask "$1"; mkdir -p /tmp/home /kiln/env "$KILN_BUILD_DIR" && cp -R /kiln/input/. "$KILN_BUILD_DIR"/ &&
        chmod -R u+w "$KILN_BUILD_DIR" && cd "$KILN_BUILD_DIR" &&
        exec /kiln/buildpacks/0/bin/dependencies "$KILN_BUILD_DIR" /kiln/cache/0 /kiln/env 2>&1' sh "$umask"
    ;;
  build)
    depsBind=""
    if [ -n "$deps" ]; then depsBind="--ro-bind $deps /kiln/deps"; fi
    # shellcheck disable=SC2086
    in_stack --ro-bind "$source" /kiln/source --ro-bind "$tools" /kiln/tools $depsBind --bind "$out" /kiln/out -- \
      sh -c 'umask "$1"; mkdir -p /tmp/home; exec node /kiln/tools/sandboxtools/main.js /kiln/meta/spec.json' sh "$umask"
    ;;
  detect)
    # One buildpack's bin/detect over the source (kiln hosted in a dyno cannot start bwrap itself).
    # Its verdict is the output, so a buildpack that does not detect still makes a result.
    if in_stack --ro-bind "$source" /app -- /kiln/buildpacks/0/bin/detect /app > "$out/stdout" 2> "$out/stderr"; then
      echo 0 > "$out/status"
    else
      echo $? > "$out/status"
    fi
    ;;
  stage0)
    # The hand compile (nix/bootstrap): kiln's source with its locked node_modules, plain tsc, then
    # the devDependencies pruned. No buildpack: this is what builds the first buildpack run.
    in_stack --ro-bind "$source" /kiln/source --ro-bind "$deps" /kiln/deps --bind "$out" /kiln/out -- \
      sh -c 'umask 022; mkdir -p /tmp/home && cp -R /kiln/source/. /app/ && chmod -R u+w /app &&
        cp -RP /kiln/deps/node_modules /app/node_modules && chmod -R u+w /app/node_modules &&
        echo "-----> tsc -p tsconfig.build.json" && node node_modules/typescript/bin/tsc -p tsconfig.build.json &&
        echo "-----> pruning devDependencies" &&
        npm prune --omit=dev --offline --no-save --no-audit --no-fund --cache /tmp/npm-cache 2>&1 &&
        cp -RP /app/. /kiln/out/'
    ;;
  tools)
    # A kiln tree's own tools (src/sandboxtools and what it imports), assembled by that tree's own code.
    in_stack --ro-bind "$kiln" /kiln/kiln --bind "$out" /kiln/out -- \
      node --input-type=module -e 'const { assembleToolsDir } = await import("/kiln/kiln/dist/builds/tools.js");
        await assembleToolsDir("/kiln/kiln", "/kiln/out");'
    ;;
  unpack)
    # A slug as a directory tree (the app's files, as a dyno sees them at /app).
    in_stack --ro-bind "$slug" /kiln/slug --bind "$out" /kiln/out -- \
      sh -c 'tar -xzf /kiln/slug/slug.tgz -C /tmp && cp -RP /tmp/app/. /kiln/out/'
    ;;
  *)
    echo "kiln: unknown phase $phase" >&2
    exit 1
    ;;
esac
