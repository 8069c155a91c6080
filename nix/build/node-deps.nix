# A Node app's dependency plan, computed from its source's package.json and package-lock.json:
#   tarballs  one fixed-output derivation per pinned tarball (Nix's builtin fetcher; npm's sha512
#             SRI is the hash, so the output path depends only on name and hash, never the URL)
#   input     package.json without its scripts + the lock rewritten for offline use: all that the
#             dependencies derivation sees, so an app-code change never rebuilds the dependency tree
#
# kiln's TypeScript side (src/buildpacks/nodejs.ts, planDependencies) checks the same lock first and
# refuses what this file cannot pin, with a readable error; this file is where the plan is made, for
# `kiln build` and for the flake's pure evaluation alike (test/integration/nodeDeps.test.ts keeps both
# in step).
#
# registry: where tarballs are fetched from when they are not in the store yet, from npm's own
# configuration at run time; pure (flake) evaluation passes null, and then a missing tarball fails
# with a message naming the command that puts it into the store.
#
# allow: more origins (scheme://host[:port]) the operator lets tarballs come from (KILN_FETCH_ALLOW).
# A lock's `resolved` URL on any other origin is refused with a `throw` naming the entry: Nix's
# fetcher runs on the host's network, so such a URL could reach the host's loopback services or
# other apps' dynos. With no registry (pure evaluation) nothing is fetched from the lock at all.
{ source, registry, busybox, allow ? [ ] }:
let
  inherit (builtins) attrNames concatStringsSep elem filter fromJSON head length listToAttrs match
    readFile replaceStrings stringLength substring toJSON;

  lock = fromJSON (readFile "${source}/package-lock.json");
  pkg = fromJSON (readFile "${source}/package.json");

  offlineRegistry = "https://kiln.invalid/";

  hasPrefix = p: s: substring 0 (stringLength p) s == p;
  dropPrefix = p: s: if hasPrefix p s then substring (stringLength p) (stringLength s) s else s;
  lastSegment = s: let parts = filter builtins.isString (builtins.split "/" s); in builtins.elemAt parts (length parts - 1);

  # `node_modules/a/node_modules/@s/b` → `@s/b`
  nameOf = key: entry:
    if entry ? name then entry.name
    else let parts = builtins.split "node_modules/" key; in lastOf (filter builtins.isString parts);
  lastOf = l: builtins.elemAt l (length l - 1);

  platformMatches = values: current:
    if values == [ ] then true
    else if elem "!${current}" values then false
    else let allowed = filter (v: !(hasPrefix "!" v)) values; in allowed == [ ] || elem current allowed;
  onThisPlatform = e:
    platformMatches (e.os or [ ]) "linux" && platformMatches (e.cpu or [ ]) "x64"
    && platformMatches (e.libc or [ ]) "glibc";

  storeName = name: version:
    replaceStrings [ "~" "!" "'" "(" ")" "*" " " ":" ] [ "_" "_" "_" "_" "_" "_" "_" "_" ]
      "${replaceStrings [ "/" ] [ "-" ] (dropPrefix "@" name)}-${version}.tgz";

  sha512Of = integrity:
    let hs = filter (h: builtins.isString h && h != "") (builtins.split "[[:space:]]+" integrity);
        s512 = filter (hasPrefix "sha512-") hs;
    in if s512 != [ ] then head s512 else head hs;

  # As JavaScript's URL#origin: scheme and host lower-cased, no user info, no default port.
  lower = replaceStrings
    [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ]
    [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  originOf = url:
    let m = match "([hH][tT][tT][pP][sS]?)://([^/?#@]*@)?([^/?#]*).*" url;
    in if m == null then null
    else let
      scheme = lower (builtins.elemAt m 0);
      host = lower (builtins.elemAt m 2);
      bare = if scheme == "https" then (let h = match "(.*):443" host; in if h == null then host else head h)
        else (let h = match "(.*):80" host; in if h == null then host else head h);
    in "${scheme}://${bare}";
  origins = filter (o: o != null) (map originOf ((if registry == null then [ ] else [ registry ]) ++ allow));

  keys = filter (k: k != "") (attrNames lock.packages);
  entry = k: lock.packages.${k};
  skipped = k: let e = entry k; in (e.link or false) || (e.inBundle or false);
  optionalElsewhere = k: let e = entry k; in (e.optional or false) && !(onThisPlatform e);
  pinned = filter (k: !(skipped k) && !(optionalElsewhere k)) keys;

  tarballOf = k:
    let
      e = entry k;
      name = nameOf k e;
      resolved = e.resolved or "";
      fromLock = hasPrefix "https://" resolved || hasPrefix "http://" resolved;
      allowed = elem (originOf resolved) origins;
      conventional = "${name}/-/${lastSegment name}-${e.version}.tgz";
    in {
      name = storeName name e.version;
      integrity = sha512Of e.integrity;
      url =
        if fromLock && registry != null then
          (if allowed then resolved
           else throw "package-lock.json: ${k}: its resolved URL is not on the registry's origin (${concatStringsSep ", " origins}); kiln fetches dependencies from the registry and KILN_FETCH_ALLOW only")
        else if registry != null then "${registry}${conventional}"
        else "kiln-missing-tarball:${storeName name e.version} is not in the Nix store; run `npm run setup` (or `kiln bootstrap`) first: they are fetched with npm's registry";
      offline = "${offlineRegistry}${conventional}";
    };

  # One tarball per store name (the same package@version can appear at several places in the tree).
  tarballs =
    let byName = listToAttrs (map (k: let t = tarballOf k; in { name = t.name; value = t; }) pinned);
    in map (n: byName.${n}) (attrNames byName);

  offlineLock = lock // {
    packages = builtins.mapAttrs (k: e:
      if k == "" || skipped k then e
      else if optionalElsewhere k then removeAttrs e [ "resolved" ]
      else e // { resolved = (tarballOf k).offline; }) lock.packages;
  };

  fetch = t: import ./fetch.nix { inherit (t) name url; hash = t.integrity; };

  input = derivation {
    name = "kiln-deps-input";
    inherit ((import ../constants.nix)) system;
    builder = busybox;
    args = [ "sh" "-euc" ''$builder mkdir $out; $builder cp $packageJson $out/package.json; $builder cp $packageLock $out/package-lock.json'' ];
    packageJson = builtins.toFile "package.json" (toJSON (removeAttrs pkg [ "scripts" ]));
    packageLock = builtins.toFile "package-lock.json" (toJSON offlineLock);
  };
in
{
  inherit input;
  tarballs = map fetch tarballs;
  # What the dependencies phase needs to prefill npm's cache: each file by name, with its integrity.
  tarballIndex = toJSON (map (t: { file = t.name; inherit (t) integrity; }) tarballs);
  plan = map (t: { inherit (t) name integrity url; }) tarballs;
}
