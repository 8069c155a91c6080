# A Node app's dependency plan made by kiln (src/buildpacks/nodePlan.ts) for the locks that
# node-deps.nix does not read: npm lockfile v1, npm-shrinkwrap.json, npm workspaces, yarn classic,
# yarn berry and pnpm. kiln hands it over in the build spec:
#   tarballs  [{ name, url, integrity, package, version }]: one fixed-output derivation each, by
#             Nix's builtin fetcher exactly as node-deps.nix makes them (the store path depends on
#             name and hash only, never the URL)
#   input     a store path kiln wrote: the manifests (without scripts), the lock (rewritten for
#             offline use where the manager needs it) and the settings files that matter; all the
#             dependencies derivation sees, so an app-code change never rebuilds it
{ tarballs, input }:
let
  inherit (builtins) toJSON;
  fetch = t: import ./fetch.nix { inherit (t) name url; hash = t.integrity; };
in
{
  inherit input;
  tarballs = map fetch tarballs;
  # The dependencies phase's index: each file by name with its integrity, and the package and
  # version a loopback registry serves it as (lib/registry.cjs).
  tarballIndex = toJSON (map (t: { file = t.name; inherit (t) integrity; package = t.package or null; version = t.version or null; }) tarballs);
  plan = map (t: { inherit (t) name integrity url; }) tarballs;
}
