# Compares two stages' slugs: identical bytes, or a report of every differing file (path, both
# sizes and sha256, the first differing byte with context). Run by the seed's static busybox.
bb=$busybox
for applet in $($bb --list); do $bb ln -sf "$bb" "$TMPDIR/$applet" 2>/dev/null || true; done
export PATH="$TMPDIR"
mkdir -p "$out"
a=$(sha256sum "$aSlug/slug.tgz" | cut -d' ' -f1)
b=$(sha256sum "$bSlug/slug.tgz" | cut -d' ' -f1)
if [ "$a" = "$b" ]; then
  echo "the $aName and $bName slugs are byte-identical (sha256 $a)" | tee "$out/report.txt"
  echo same > "$out/verdict"
  exit 0
fi
echo different > "$out/verdict"
# Each tree as `path<TAB>kind<TAB>size<TAB>hash` (symlinks by target), sorted by path.
list() {
  (cd "$1" && find . \( -type f -o -type l \) | LC_ALL=C sort | while read -r p; do
    if [ -L "$p" ]; then printf '%s\tlink\t-\t%s\n' "$p" "$(readlink "$p")"
    else printf '%s\tfile\t%s\t%s\n' "$p" "$(wc -c < "$p")" "$(sha256sum "$p" | cut -d' ' -f1)"; fi
  done)
}
list "$aTree" > "$TMPDIR/a.lst"
list "$bTree" > "$TMPDIR/b.lst"
{
  echo "the $aName slug (sha256 $a) and the $bName slug (sha256 $b) differ:"
  awk -F '\t' -v an="$aName" -v bn="$bName" '
    NR == FNR { ak[$1] = $2; as[$1] = $3; ah[$1] = $4; next }
    { seen[$1] = 1
      if (!($1 in ak)) { print "only in " bn ": " $1; next }
      if (ah[$1] != $4 || ak[$1] != $2) print "differs: " $1 "\t" an ": " as[$1] " bytes " ah[$1] "\t" bn ": " $3 " bytes " $4 }
    END { for (p in ak) if (!(p in seen)) print "only in " an ": " p }
  ' "$TMPDIR/a.lst" "$TMPDIR/b.lst" | tee "$TMPDIR/diffs"
  grep '^differs: ' "$TMPDIR/diffs" | cut -f1 | sed 's/^differs: //' | head -n 20 | while read -r p; do
    if [ -f "$aTree/$p" ] && [ -f "$bTree/$p" ]; then
      at=$(cmp "$aTree/$p" "$bTree/$p" 2>&1 | head -n 1 || true)
      off=$(echo "$at" | sed -n 's/.*char \([0-9]*\).*/\1/p')
      echo "  $p: $at"
      if [ -n "$off" ]; then
        from=$((off > 16 ? off - 16 : 0))
        echo "    $aName: $(od -A d -t c -j "$from" -N 48 "$aTree/$p" | head -n 3 | tr '\n' ' ')"
        echo "    $bName: $(od -A d -t c -j "$from" -N 48 "$bTree/$p" | head -n 3 | tr '\n' ' ')"
      fi
    fi
  done
} | tee "$out/report.txt"
if [ -n "$mustMatch" ]; then exit 1; fi
