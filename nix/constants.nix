# What kiln's Nix files and its TypeScript (src/nix/constants.ts) share, from nix/constants.json:
#   system           the one platform kiln builds for
#   busybox          the seed's static busybox (the builder of every derivation), under the seed
#   sourceDateEpoch  every slug and stack entry's mtime: 1980-01-01
let
  # readFile of a file inside a store path (kiln's own tree, when a self-built kiln evaluates this)
  # carries that path's references as string context, which fromJSON refuses; the JSON names no
  # store path, so the context is dropped.
  c = builtins.fromJSON (builtins.unsafeDiscardStringContext (builtins.readFile ./constants.json));
in
c // {
  # The builder inside a seed: "${seed}/deb/busybox-static/bin/busybox".
  busyboxOf = seed: "${seed}/${c.busybox}";
}
