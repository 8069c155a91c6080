# copy_tree SRC DEST: copies a read-only store tree into a writable one (busybox sh).
# `cp -a` cannot: the store's directories are mode 0555, and busybox cp creates each directory with
# its source mode before filling it. So: make the directories first (writable), then copy each
# directory's non-directory entries with one cp call (symlinks stay symlinks). Globs, not word
# splitting, so any file name works.
copy_tree() {
  from=$1 to=$2
  (cd "$from" && find . -type d) | while IFS= read -r d; do mkdir -p "$to/$d"; done
  (cd "$from" && find . -type d) | while IFS= read -r d; do
    set --
    for f in "$from/$d"/* "$from/$d"/.[!.]* "$from/$d"/..?*; do
      if [ -L "$f" ] || { [ -e "$f" ] && [ ! -d "$f" ]; }; then set -- "$@" "$f"; fi
    done
    if [ $# -gt 0 ]; then cp -P "$@" "$to/$d/"; fi
  done
}
