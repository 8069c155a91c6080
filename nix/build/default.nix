# An app build: JSON in (written by src/builds/build.ts's prepareBuild; its schema is buildSpecSchema
# in src/slug/records.ts), derivations out.
#
#   tarballs      one fixed-output derivation per pinned dependency tarball, planned from the
#                 source's lock file by node-deps.nix
#   dependencies  one buildpack's `bin/dependencies` over only its declared input files and
#                 the tarballs: its output pre-fills that buildpack's CACHE_DIR, so an app-code
#                 change reuses it
#   slug          detect, compile, release and pack, run by kiln's tools: slug.tgz, release.json,
#                 manifest.json
#
# The spec comes as a JSON file from kiln (store paths as strings), or as an attribute set from
# nix/bootstrap (paths and derivations: pure evaluation cannot use builtins.storePath).
{ specFile ? null, spec ? builtins.fromJSON (builtins.readFile specFile) }:
let
  kiln = import ../default.nix;
  constants = import ../constants.nix;
  inherit (kiln) seed;
  stack = kiln.stack-build;
  # A bare string (from JSON) names a store path; paths from builtins.path carry their context.
  storePath = p: if builtins.isString p && !(builtins.hasContext p) then builtins.storePath p else p;
  source = storePath spec.source;

  common = {
    inherit (constants) system;
    builder = constants.busyboxOf seed;
    args = [ "sh" "-eu" ./phase.sh ];
    inherit seed stack;
    # kiln's seccomp filter (src/dyno/seccomp.ts compiled by libexec/kiln-seccomp.py), as bytes in
    # the checkout so that pure evaluation has it too; test/unit/buildLimits.test.ts keeps it current.
    seccomp = ./seccomp.bpf;
    SOURCE_DATE_EPOCH = toString spec.sourceDateEpoch;
    # Nothing a build makes may point into the store: slugs must run on stack-run alone.
    allowedReferences = [ ];
  };

  buildpacks = map (b: storePath b.path) spec.buildpacks;

  # A reproducibility check's build (kiln check): its own derivations (the nonce), with the settings
  # of nix/build/variations.json that this build varies, read by phase.sh.
  check = spec.check or null;
  vary = if check == null then { } else
    let s = check.settings; in {
      checkNonce = check.nonce;
      varyBuildDir = s.buildDir;
      varyFaketime = s.faketime;
      varyTZ = s.tz;
      varyLang = s.lang;
      varyUmask = s.umask;
      varyHostname = s.hostname;
      varyUser = s.user;
      varyCpus = s.cpus;
      varyEnv = s.env;
      varyExtraEnv = s.extraEnv;
    };
  suffix = if check == null then "" else "-check${toString check.index}";

  # npm's plain package-lock.json is planned in Nix (pure evaluation of kiln itself needs it); every
  # other lock by kiln, which passes the plan and the input it wrote in the spec.
  nodeDeps =
    if spec.dependencies != null && (spec.dependencies.plan or null) != null then
      import ./planned-deps.nix { inherit (spec.dependencies.plan) tarballs; input = storePath spec.dependencies.plan.input; }
    else import ./node-deps.nix {
      inherit source;
      registry = spec.dependencies.registry or null;
      allow = spec.dependencies.allow or [ ];
      busybox = common.builder;
    };

  # The app's Node and package manager (nix/build/runtime.nix), bound into both phases; without
  # one (nix/bootstrap's specs) the phases use the stack's own Node and npm.
  runtime = if (spec.runtime or null) == null then null
    else import ./runtime.nix { inherit (spec) runtime; busybox = common.builder; };
  runtimeEnv = if runtime == null then { } else runtime.env;

  # The app's kiln.json fetches (src/buildpacks/extraFetches.ts), one fixed-output derivation each:
  # a phase that uses them depends on their hashes, not on their URLs. phase.sh places them at
  # /kiln/fetches/NAME and sets the variables that name them. No attributes at all without any, so
  # other apps' derivations stay as they were.
  extraFetches = spec.fetches or [ ];
  fetchAttrs = if extraFetches == [ ] then { } else {
    fetches = map (f: import ./fetch.nix { name = "kiln-fetch-${f.name}"; inherit (f) url hash; }) extraFetches;
    fetchPlan = builtins.concatStringsSep "\n"
      (map (f: "${f.name} ${f.unpack} ${if f.executable then "1" else "0"}") extraFetches);
    fetchEnv = builtins.concatStringsSep "\n" (builtins.concatMap (f: map (v:
      "${v}=/kiln/fetches/${f.name}${if f.env.${v} == "" then "" else "/${f.env.${v}}"}")
      (builtins.attrNames f.env)) extraFetches);
  };

  dependencies =
    if spec.dependencies == null then null
    else derivation (common // vary // runtimeEnv // fetchAttrs // {
      name = "kiln-deps-${spec.app}${suffix}";
      phase = "dependencies";
      buildpacks = [ (builtins.elemAt buildpacks spec.dependencies.buildpackIndex) ];
      inherit (nodeDeps) input tarballs tarballIndex;
      specJSON = builtins.toJSON { inherit (spec) app; };
    });

  slug = derivation (common // vary // runtimeEnv // fetchAttrs // {
    name = "kiln-slug-${spec.app}${suffix}";
    phase = "build";
    inherit buildpacks;
    inherit source;
    tools = storePath spec.tools;
    deps = if dependencies == null then "" else dependencies;
    # What the tools need to know, without store paths (the output must not mention any).
    specJSON = builtins.toJSON ({
      inherit (spec) app sourceHash sourceDateEpoch slugMaxBytes env;
      buildpacks = map (b: { inherit (b) name version; }) spec.buildpacks;
      depsIndex = if spec.dependencies == null then null else spec.dependencies.buildpackIndex;
    } // (if spec.nondeterministic or false then { testNondeterministic = true; } else { })
      # Where the builder puts the app and in which order it creates its files (the rest of a
      # check's settings are the sandbox's, set by phase.sh).
      // (if check == null then { } else { inherit (check.settings) buildDir fsOrder; }));
  });
in
{
  inherit slug dependencies runtime;
  # The dependency plan (names, hashes, URLs): what `kiln bootstrap --prefetch` fetches.
  inherit (nodeDeps) plan;
}
