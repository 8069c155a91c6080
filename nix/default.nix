# kiln's Nix entry point, shared by flake.nix and the kiln CLI (`nix build --file nix/default.nix`).
# Everything is built from the seed alone; no nixpkgs, nothing fetched.
let
  lock = builtins.fromJSON (builtins.readFile ./seed.lock.json);
  seed = import ./seed.nix { inherit lock; };
  stacks = import ./stacks { inherit seed lock; };
in
{
  inherit seed;
  stack-run = stacks.run;
  stack-build = stacks.build;
}
