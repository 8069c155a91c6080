{
  description = "kiln: a self-hosted, Nix-driven build farm with Heroku-style buildpacks";

  # No inputs: everything comes from the pinned seed (nix/seed.lock.json), imported by `kiln seed`,
  # and from npm tarballs pinned by kiln's package-lock.json, which `npm run setup` (or
  # `kiln bootstrap`) puts into the store first: pure evaluation then finds them already fetched.
  outputs = { self }:
    let
      constants = import ./nix/constants.nix;
      inherit (constants) system;
      kiln = import ./nix/default.nix;
      stages = import ./nix/bootstrap { src = self; };
      # `nix run .#bootstrap`: the hand-compiled kiln (stage0) drives the rest, as a program, on the
      # Node its dependencies were built for.
      run = name: tree: args: derivation {
        inherit name system tree;
        busybox = constants.busyboxOf kiln.seed;
        node = "${stages.runtimeNode}/bin/node";
        kilnArgs = args;
        builder = constants.busyboxOf kiln.seed;
        args = [ "sh" "-euc" ''
          $busybox mkdir -p $out/bin
          printf '#!%s sh\nexec %s %s/bin/kiln.js %s "$@"\n' $busybox $node $tree "$kilnArgs" > $out/bin/${name}
          $busybox chmod 555 $out/bin/${name}
        '' ];
      };
      bootstrap = run "kiln-bootstrap" stages.stage0 "bootstrap --source ${stages.source}";
      # kiln check, pure: the fixtures with stage1's tools (what built stage2), and kiln itself.
      repro = import ./nix/check { src = self; tools = stages.stage1Tools; inherit (stages) compare; };
    in
    {
      packages.${system} = {
        seed = kiln.seed;
        stack-run = kiln.stack-run;
        stack-build = kiln.stack-build;
        kiln-stage0 = stages.stage0;
        kiln-stage1 = stages.stage1;
        kiln-stage2 = stages.stage2;
        kiln-stage3 = stages.stage3;
        # kiln as built by itself (stage2's slug, unpacked), runnable: `nix run .#kiln -- --help`.
        kiln = stages.kiln;
        default = stages.kiln;
      };
      apps.${system} = {
        kiln = { type = "app"; program = "${stages.kiln}/bin/kiln"; };
        bootstrap = { type = "app"; program = "${bootstrap}/bin/kiln-bootstrap"; };
      };
      checks.${system} = {
        stack-run = kiln.stack-run;
        stack-build = kiln.stack-build;
        # Succeeds only when stage2 and stage3 are byte-identical (else names each differing file).
        fixed-point = stages.fixed-point;
        # kiln check: an ordinary and a varied build (every variation on) must be byte-identical.
        repro-static-site = repro.fixture "static-site" "static";
        repro-procfile-shell = repro.fixture "procfile-shell" "procfile";
        repro-node-web = repro.fixture "node-web" "nodejs";
        repro-kiln = repro.check "kiln" stages.stage2Spec;
      };
    };
}
