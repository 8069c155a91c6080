{
  description = "kiln: a self-hosted, Nix-driven build farm with Heroku-style buildpacks";

  # No inputs: everything comes from the pinned seed (nix/seed.lock.json), imported by `kiln seed`.
  outputs = { self }:
    let
      system = "x86_64-linux";
      kiln = import ./nix/default.nix;
    in
    {
      packages.${system} = {
        seed = kiln.seed;
        stack-run = kiln.stack-run;
        stack-build = kiln.stack-build;
        default = kiln.stack-build;
      };
      checks.${system} = {
        stack-run = kiln.stack-run;
        stack-build = kiln.stack-build;
      };
    };
}
