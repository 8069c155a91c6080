# One build phase of an app, run by the seed's static busybox inside the Nix sandbox. It prepares
# the inputs in writable scratch directories and runs the phase in bubblewrap with stack-build as /
# (started with the stack's own loader, so no store path other than the stack is visible inside):
#
#   /app                 the app (BUILD_DIR): a writable copy of the source
#   /kiln/buildpacks/N   the buildpacks, read-only          /kiln/cache/N  each one's CACHE_DIR
#   /kiln/env            ENV_DIR                             /kiln/out      what the phase produces
#   /kiln/tools          kiln's in-sandbox tools (build phase)
#   /kiln/tarballs       pinned dependency tarballs (dependencies phase)
#
# Inputs (environment): $seed $stack $copyTree $phase $buildpacks $specJSON, and per phase:
#   dependencies: $input (dir with the declared input files) $tarballs (store paths)
#                 $tarballIndex (JSON: [{file, integrity}])
#   build:        $source $tools $deps (a dependencies output, or "") $depsIndex (whose CACHE_DIR)
bb=$seed/deb/busybox-static/bin/busybox
$bb mkdir -p "$TMPDIR/bin"
for applet in $($bb --list); do $bb ln -s "$bb" "$TMPDIR/bin/$applet"; done
export PATH="$TMPDIR/bin"
. "$copyTree"

K="$TMPDIR/kiln"
mkdir -p "$K/out" "$K/env" "$K/cache" "$K/buildpacks" "$TMPDIR/app" "$TMPDIR/home"
printf '%s' "$specJSON" > "$K/spec.json"

binds=""
i=0
for bp in $buildpacks; do
  mkdir -p "$K/buildpacks/$i" "$K/cache/$i"
  binds="$binds --ro-bind $bp /kiln/buildpacks/$i"
  i=$((i + 1))
done

in_stack() {
  # shellcheck disable=SC2086 # $binds is a list of bwrap arguments without spaces (store paths).
  "$stack/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" --library-path "$stack/usr/lib/x86_64-linux-gnu" \
    "$stack/usr/bin/bwrap" \
    --unshare-all --hostname kiln --uid 1000 --gid 1000 --die-with-parent --new-session \
    --ro-bind "$stack" / --proc /proc --dev /dev --tmpfs /tmp \
    --bind "$TMPDIR/app" /app --bind "$K" /kiln $binds "$@"
}

env_args() {
  printf '%s\n' --clearenv \
    --setenv PATH /usr/local/bin:/usr/bin:/usr/sbin:/bin:/sbin \
    --setenv HOME /tmp/home --setenv TMPDIR /tmp --setenv LANG C.UTF-8 --setenv TZ UTC \
    --setenv SOURCE_DATE_EPOCH "$SOURCE_DATE_EPOCH" --setenv STACK kiln-build \
    --setenv NIX_BUILD_CORES "${NIX_BUILD_CORES:-1}" --setenv npm_config_jobs "${NIX_BUILD_CORES:-1}" \
    --setenv MAKEFLAGS "-j${NIX_BUILD_CORES:-1}" --setenv KILN_PHASE "$phase"
}

case "$phase" in
  dependencies)
    copy_tree "$input" "$TMPDIR/app"
    mkdir -p "$K/tarballs"
    # A store path's base name is HASH-NAME; the tools know each tarball by NAME.
    for t in $tarballs; do n=${t##*/}; cp "$t" "$K/tarballs/${n#*-}"; done
    printf '%s' "$tarballIndex" > "$K/tarballs/index.json"
    chmod -R u+w "$TMPDIR/app" "$K/tarballs"
    # shellcheck disable=SC2046
    in_stack $(env_args) --setenv KILN_TARBALLS /kiln/tarballs --chdir /app -- \
      sh -c 'umask 022; exec /kiln/buildpacks/0/bin/dependencies /app /kiln/cache/0 /kiln/env 2>&1'
    mkdir -p "$out"
    cp -a "$K/cache/0/." "$out/"
    ;;
  build)
    copy_tree "$source" "$TMPDIR/app"
    if [ -n "$deps" ]; then copy_tree "$deps" "$K/cache/$depsIndex"; fi
    chmod -R u+w "$TMPDIR/app" "$K/cache"
    # shellcheck disable=SC2046
    in_stack $(env_args) --ro-bind "$tools" /kiln/tools --chdir /app -- \
      sh -c 'umask 022; exec node /kiln/tools/builder/main.js /kiln/spec.json'
    mkdir -p "$out"
    cp -a "$K/out/." "$out/"
    ;;
  *)
    echo "kiln: unknown phase $phase" >&2
    exit 1
    ;;
esac
