# kiln built by kiln: the stages of the self-hosting fixed point, in pure Nix (flake.nix's
# kiln-stage0 … kiln-stage3 and checks.fixed-point; `kiln bootstrap` builds stage1 from here too).
#
#   stage0  the hand compile: kiln's npm dependencies from its lock (the very dependencies
#           derivation an app named "kiln" gets), then plain tsc; no buildpack
#   stageN  kiln's source built as the app "kiln" by the nodejs buildpack (nix/build), with the
#           tools that run inside the build sandbox assembled from stage N-1 by stage N-1's own code:
#           every stage's slug derivation differs and is really rebuilt
#   fixed-point  succeeds only when stage2's and stage3's slugs are byte-identical; otherwise it
#           names each differing file with both hashes and the first differing byte
#
# src: kiln's checkout (the flake's self). registry: npm's registry for tarballs not yet in the
# store (null in pure evaluation). nondeterministic: a test-only switch that makes the slug packer
# write the build's wall-clock time into stage2's and stage3's slugs, so that the fixed point must
# fail. fail: a
# test-only switch (`kiln bootstrap` passes KILN_TEST_FAIL_STAGE) that replaces stage0's, stage1's
# or the comparison's derivation by one that fails at once ("stage1") or hangs silently
# ("stage1:hang").
{ src, registry ? null, nondeterministic ? false, fail ? null }:
let
  kiln = import ../default.nix;
  constants = import ../constants.nix;
  inherit (kiln) seed;
  inherit (constants) system sourceDateEpoch;
  busybox = constants.busyboxOf seed;
  buildNix = ../build;

  # What `git ls-files` would give (flakes copy only tracked files; this drops a checkout's
  # build products): the same tree `kiln bootstrap` uploads to the platform's API.
  ignoredAtTop = [ ".git" "node_modules" "dist" ".kiln" ];
  keep = path: type:
    let
      rel = builtins.substring (builtins.stringLength (toString src) + 1) (-1) (toString path);
      base = baseNameOf path;
    in
    !(builtins.elem rel ignoredAtTop) && base != ".git" && builtins.match "result(-.*)?" rel == null
    && builtins.match ".*\\.log" base == null;
  source = builtins.path { path = src; name = "kiln-source"; filter = keep; };

  nodejs = builtins.path { path = src + "/buildpacks/nodejs"; name = "kiln-buildpack-nodejs"; };
  hashPart = p: builtins.substring 0 12 (baseNameOf (toString p));
  declared = builtins.head (builtins.split "\n" (builtins.readFile (src + "/buildpacks/nodejs/VERSION")));

  # kiln's Node and npm, as `kiln build` resolves them from package.json (nix/bootstrap/runtime.json,
  # kept current by src/bootstrap/kilnRuntime.ts): the platform builds stage2 and stage3 with the
  # resolver, so stage1 gets the very same runtime.
  runtime = builtins.fromJSON (builtins.unsafeDiscardStringContext (builtins.readFile ./runtime.json))
    // { inherit registry; };

  specFor = tools: {
    app = "kiln";
    inherit runtime;
    inherit source tools;
    nondeterministic = false;
    # kiln records the source's NAR hash here; pure Nix knows its store path, which is as unique.
    sourceHash = "store:${hashPart source}";
    inherit sourceDateEpoch;
    slugMaxBytes = 500 * 1024 * 1024;
    env = { };
    buildpacks = [ { name = "nodejs"; version = "${declared}+${hashPart nodejs}"; path = nodejs; } ];
    dependencies = { buildpackIndex = 0; inherit registry; };
  };
  build = tools: import buildNix { spec = specFor tools; };
  # stage2 and stage3, which the fixed point compares, get the test-only nondeterministic packer;
  # stage1 (already built) stays as it is.
  buildCompared = tools: import buildNix { spec = specFor tools // { inherit nondeterministic; }; };

  phase = name: attrs: derivation ({
    inherit name seed busybox;
    inherit system;
    builder = busybox;
    args = [ "sh" "-eu" (buildNix + "/phase.sh") ];
    # phase.sh's lockdown: the same seccomp filter as every build (nix/build/default.nix).
    seccomp = buildNix + "/seccomp.bpf";
    stack = kiln.stack-build;
    SOURCE_DATE_EPOCH = toString sourceDateEpoch;
    buildpacks = "";
    specJSON = "{}";
    # kiln's tree mentions the seed by store path (nix/seed.lock.json), and nothing else.
    allowedReferences = [ seed ];
  } // attrs);

  failing = if fail == null then null else builtins.head (builtins.split ":" fail);
  injected = name: derivation {
    name = "${name}-injected-failure";
    inherit system;
    builder = busybox;
    inherit busybox fail;
    args = [ "sh" "-c" (if builtins.match ".*:hang" fail != null
      then "exec $busybox sleep 86400"
      else "echo \"injected failure (KILN_TEST_FAIL_STAGE=$fail)\"; exit 1") ];
  };

  stage0 = if failing == "stage0" then injected "kiln-stage0" else phase "kiln-stage0" {
    phase = "stage0";
    inherit source;
    deps = (build null).dependencies;
  };

  toolsOf = stageName: tree: phase "kiln-tools-${stageName}" { phase = "tools"; kiln = tree; };
  treeOf = stageName: slugOut: phase "kiln-${stageName}-tree" { phase = "unpack"; slug = slugOut; };

  stage1 = if failing == "stage1" then injected "kiln-stage1" else (build (toolsOf "stage0" stage0)).slug;
  stage2 = (buildCompared (toolsOf "stage1" (treeOf "stage1" stage1))).slug;
  stage3 = (buildCompared (toolsOf "stage2" (treeOf "stage2" stage2))).slug;

  # Compares two stages' slugs file by file (each unpacked into a tree in the sandbox).
  # mustMatch: fail unless identical (the flake check); otherwise the verdict is in $out/verdict.
  compare = { name, mustMatch ? true }: aName: a: bName: b: derivation {
    inherit name busybox aName bName;
    mustMatch = if mustMatch then "1" else "";
    inherit system;
    builder = busybox;
    args = [ "sh" "-eu" ./compare.sh ];
    aSlug = a; aTree = treeOf aName a;
    bSlug = b; bTree = treeOf bName b;
  };

  # A runnable kiln from a stage's tree: the slug's own Node on the slug's own code.
  wrap = tree: derivation {
    name = "kiln";
    inherit system;
    builder = busybox;
    inherit tree busybox;
    args = [ "sh" "-euc" ''
      $busybox mkdir -p $out/bin
      printf '#!%s sh\nexec %s/.heroku/node/bin/node %s/bin/kiln.js "$@"\n' $busybox $tree $tree > $out/bin/kiln
      $busybox chmod 555 $out/bin/kiln
    '' ];
  };
in
{
  inherit source stage0 stage1 stage2 stage3;
  # The Node every stage is built for (nix/bootstrap/runtime.json): stage0's node_modules (its
  # native better-sqlite3 above all) are built by it, so stage0 runs on it (flake.nix's run).
  runtimeNode = (build null).runtime.node;
  stage1Tree = treeOf "stage1" stage1;
  stage2Tree = treeOf "stage2" stage2;
  kiln = wrap (treeOf "stage2" stage2);
  fixed-point = compare { name = "kiln-fixed-point"; } "stage2" stage2 "stage3" stage3;
  stage1-vs-stage2 = compare { name = "kiln-stage1-vs-stage2"; mustMatch = false; } "stage1" stage1 "stage2" stage2;
  # The tools assembled from stage1 (what built stage2): their NAR hash is what kiln records.
  stage1Tools = toolsOf "stage1" (treeOf "stage1" stage1);
  # stage2's spec (kiln built by stage1's tools) and the comparison: for nix/check.
  stage2Spec = specFor (toolsOf "stage1" (treeOf "stage1" stage1));
  inherit compare;
  # For `kiln bootstrap`: two slug outputs already in the store (as strings), never failing.
  compareOutputs = aName: a: bName: b: if failing == "compare" then injected "kiln-compare" else
    compare { name = "kiln-compare"; mustMatch = false; } aName (builtins.storePath a) bName (builtins.storePath b);
}
