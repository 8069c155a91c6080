# An app build: JSON in (written by kiln, see src/builds/spec.ts), derivations out.
#
#   tarballs      one fixed-output derivation per pinned dependency tarball (Nix's builtin fetcher,
#                 which accepts npm's sha512 SRI as the hash); the URL comes from the spec
#   dependencies  one buildpack's `bin/dependencies` over only its declared input files and
#                 the tarballs: its output pre-fills that buildpack's CACHE_DIR, so an app-code
#                 change reuses it
#   slug          detect, compile, release and pack, run by kiln's tools: slug.tgz, release.json,
#                 manifest.json
{ specFile }:
let
  spec = builtins.fromJSON (builtins.readFile specFile);
  kiln = import ../default.nix;
  inherit (kiln) seed;
  stack = kiln.stack-build;
  storePath = builtins.storePath;

  fetchTarball = t: import <nix/fetchurl.nix> { inherit (t) url name; hash = t.integrity; };

  common = {
    system = "x86_64-linux";
    builder = "${seed}/deb/busybox-static/bin/busybox";
    args = [ "sh" "-eu" ./phase.sh ];
    inherit seed stack;
    SOURCE_DATE_EPOCH = toString spec.sourceDateEpoch;
    # Nothing a build makes may point into the store: slugs must run on stack-run alone.
    allowedReferences = [ ];
  };

  buildpacks = map (b: storePath b.path) spec.buildpacks;

  dependencies =
    if spec.dependencies == null then null
    else derivation (common // {
      name = "kiln-deps-${spec.app}";
      phase = "dependencies";
      buildpacks = [ (builtins.elemAt buildpacks spec.dependencies.buildpackIndex) ];
      input = storePath spec.dependencies.input;
      tarballs = map fetchTarball spec.dependencies.tarballs;
      tarballIndex = builtins.toJSON (map (t: { file = t.name; inherit (t) integrity; }) spec.dependencies.tarballs);
      specJSON = builtins.toJSON { inherit (spec) app; };
    });

  slug = derivation (common // {
    name = "kiln-slug-${spec.app}";
    phase = "build";
    inherit buildpacks;
    source = storePath spec.source;
    tools = storePath spec.tools;
    deps = if dependencies == null then "" else dependencies;
    # What the tools need to know, without store paths (the output must not mention any).
    specJSON = builtins.toJSON {
      inherit (spec) app sourceHash sourceDateEpoch slugMaxBytes env;
      buildpacks = map (b: { inherit (b) name version; }) spec.buildpacks;
      depsIndex = if spec.dependencies == null then null else spec.dependencies.buildpackIndex;
    };
  });
in
{
  inherit slug dependencies;
}
