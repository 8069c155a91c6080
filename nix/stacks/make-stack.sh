# Assembles a merged-/usr rootfs from the seed's extracted Debian packages (run by the seed's static
# busybox inside the Nix sandbox). Inputs: $seed, $packages, $withNode, $stackName; output: $out.
bb=$builder # the seed's busybox (nix/constants.json), which runs this script
mkdir() { $bb mkdir "$@"; }
mkdir -p "$TMPDIR/bin"
for applet in $($bb --list); do $bb ln -s "$bb" "$TMPDIR/bin/$applet"; done
export PATH="$TMPDIR/bin"

. "$copyTree"

mkdir -p "$out/usr/bin" "$out/usr/sbin" "$out/usr/lib" "$out/usr/lib64" "$out/etc"
for d in bin sbin lib lib64; do ln -s "usr/$d" "$out/$d"; done

# Packages never overlap (dpkg forbids it), so copying them one by one into one tree is order-free.
for p in $packages; do
  src="$seed/deb/$p"
  for top in $(ls -A "$src"); do
    case "$top" in
      bin|sbin|lib|lib64) dest="$out/usr/$top" ;;
      usr|etc|var|opt) dest="$out/$top" ;;
      *) echo "kiln: package $p ships unexpected /$top" >&2; exit 1 ;;
    esac
    copy_tree "$src/$top" "$dest"
  done
done

# Documentation, manuals and translations are not needed at build or run time.
rm -rf "$out/usr/share/doc" "$out/usr/share/man" "$out/usr/share/info" "$out/usr/share/lintian" \
  "$out/usr/share/bug" "$out/usr/share/locale" "$out/usr/share/gdb" "$out/usr/share/initramfs-tools"

if [ -n "$withNode" ]; then
  mkdir -p "$out/usr/local/bin" "$out/usr/local/lib/node_modules" "$out/usr/local/etc"
  cp "$seed/node/bin/node" "$out/usr/local/bin/node"
  copy_tree "$seed/node/include" "$out/usr/local/include"
  copy_tree "$seed/npm" "$out/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$out/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$out/usr/local/bin/npx"
  # node-gyp builds against the headers shipped with Node instead of downloading them.
  printf 'nodedir=/usr/local\nupdate-notifier=false\nfund=false\naudit=false\n' > "$out/usr/local/etc/npmrc"
fi

# Unversioned compiler names are made by Debian's alternatives system at install time.
[ -e "$out/usr/bin/gcc" ] && [ ! -e "$out/usr/bin/cc" ] && ln -s gcc "$out/usr/bin/cc"
[ -e "$out/usr/bin/g++" ] && [ ! -e "$out/usr/bin/c++" ] && ln -s g++ "$out/usr/bin/c++"

# Busybox provides every command no package provides (sh, ls, cat, wget, …).
for applet in $($bb --list); do
  if [ ! -e "$out/usr/bin/$applet" ] && [ ! -L "$out/usr/bin/$applet" ] && [ ! -e "$out/usr/sbin/$applet" ]; then
    ln -s busybox "$out/usr/bin/$applet"
  fi
done

# What postinst scripts would have made. update-ca-certificates: a NAME.pem link per certificate
# and the bundle in /etc/ssl/certs (the hash links come below, from openssl itself).
mkdir -p "$out/etc/ssl/certs"
find "$out/usr/share/ca-certificates" -name '*.crt' | sort | while read -r crt; do
  rel=${crt#"$out"}
  ln -s "$rel" "$out/etc/ssl/certs/$(basename "$crt" .crt).pem"
  cat "$crt"
done > "$out/etc/ssl/certs/ca-certificates.crt"
ln -s /usr/share/zoneinfo/Etc/UTC "$out/etc/localtime"
echo Etc/UTC > "$out/etc/timezone"

cat > "$out/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:kiln app:/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$out/etc/group" <<'GROUP'
root:x:0:
app:x:1000:
nogroup:x:65534:
GROUP
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$out/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$out/etc/hosts"
: > "$out/etc/resolv.conf"
# os-release says what the tree is: kiln's, like Debian (tools that sniff the platform, e.g. Prisma's
# OpenSSL detection, look at ID_LIKE), at the Debian release of base-files (pinned in the seed as a
# fact: its own files, /boot, /dev…, are not wanted in a stack).
facts="$seed/deb/base-files"
if [ ! -f "$facts/usr/lib/os-release" ] || [ ! -f "$facts/etc/debian_version" ]; then
  echo "kiln: the seed has no base-files (os-release, debian_version)" >&2; exit 1
fi
version_id=$(. "$facts/usr/lib/os-release"; echo "$VERSION_ID")
version=$(. "$facts/usr/lib/os-release"; echo "$VERSION")
codename=$(. "$facts/usr/lib/os-release"; echo "$VERSION_CODENAME")
cat > "$out/etc/os-release" <<OSRELEASE
PRETTY_NAME="kiln $stackName (Debian $version)"
NAME="kiln"
ID=kiln
ID_LIKE=debian
VERSION_ID="$version_id"
VERSION="$version"
VERSION_CODENAME=$codename
VARIANT_ID=$stackName
OSRELEASE
ln -s ../../etc/os-release "$out/usr/lib/os-release"
cp "$facts/etc/debian_version" "$out/etc/debian_version"

# Debian's tools make the rest inside the tree, as its postinst scripts would: the dynamic linker's
# cache (ldconfig; -X: the packages' soname links are already there) and the certificates' hash links
# (openssl rehash). A user namespace makes the sandbox's build user root for chroot, nothing more.
unshare -r chroot "$out" /sbin/ldconfig -X
rm -f "$out/var/cache/ldconfig/aux-cache"
unshare -r chroot "$out" /usr/bin/openssl rehash /etc/ssl/certs

# Mount points: bwrap binds onto these, and the tree is read-only when used as /.
# /kiln: where the build sandbox mounts kiln's own inputs (buildpacks, tools, caches, output), and
# a hosted kiln its state; /nix: where a hosted kiln sees the store and the daemon's socket.
for d in app tmp proc dev sys run home root var/tmp kiln nix; do mkdir -p "$out/$d"; done
