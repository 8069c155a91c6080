# kiln check in pure Nix (flake.nix's checks.repro-*): an app's ordinary build and a build with
# every variation of nix/build/variations.json switched on (what `kiln check`'s build 1 gets: build
# path, clock, TZ, locale, umask, host, user, CPUs, env, file order), each its own derivation,
# compared file by file (nix/bootstrap's compare.sh). The check fails unless the two slugs are
# byte-identical, naming each differing file; `kiln check DIR` explains the differences further.
#
# src: kiln's checkout; tools: the in-sandbox tools to build with; compare: nix/bootstrap's.
{ src, tools, compare }:
let
  table = builtins.fromJSON (builtins.unsafeDiscardStringContext (builtins.readFile ../build/variations.json));
  names = builtins.attrNames table.variations;
  # What src/repro/variations.ts's settingsFor gives build `index`: values[index mod n] where it
  # differs from values[0], else "" (the ordinary value).
  settingsFor = index:
    let
      pick = n:
        let
          v = table.variations.${n};
          len = builtins.length v.values;
          chosen = builtins.elemAt v.values (index - len * (index / len));
        in
        { name = v.setting; value = if index == 0 || chosen == builtins.head v.values then "" else chosen; };
      s = builtins.listToAttrs (map pick names);
    in
    s // { extraEnv = if s.env == "" then "" else "${table.extraEnv.name}=${table.extraEnv.value}"; };
  buildAt = spec: index:
    (import ../build { spec = spec // { check = { nonce = "flake-check-${toString index}"; inherit index; settings = settingsFor index; }; }; }).slug;
  hashPart = p: builtins.substring 0 12 (baseNameOf (toString p));
  shipped = name:
    let
      path = builtins.path { path = src + "/buildpacks/${name}"; name = "kiln-buildpack-${name}"; };
      declared = builtins.head (builtins.split "\n" (builtins.readFile (src + "/buildpacks/${name}/VERSION")));
    in
    { inherit name path; version = "${declared}+${hashPart path}"; };
  # One of kiln's fixture apps with a shipped buildpack. Pure evaluation needs an app's npm
  # tarballs in the store already (node-web's: `npm run setup` builds it); kiln check DIR does not.
  fixtureSpec = app: buildpack:
    let source = builtins.path { path = src + "/test/fixtures/apps/${app}"; name = "kiln-source"; }; in {
      inherit app source tools;
      sourceHash = "store:${hashPart source}";
      inherit (import ../constants.nix) sourceDateEpoch;
      slugMaxBytes = 500 * 1024 * 1024;
      env = { };
      buildpacks = [ (shipped buildpack) ];
      dependencies =
        if builtins.pathExists (source + "/package-lock.json") then { buildpackIndex = 0; registry = null; } else null;
    };
  # Succeeds only when the ordinary build and the varied one are byte-identical.
  check = name: spec:
    compare { name = "kiln-check-${name}"; } "ordinary" (import ../build { inherit spec; }).slug "varied" (buildAt spec 1);
in
{
  inherit settingsFor check;
  fixture = app: buildpack: check app (fixtureSpec app buildpack);
}
