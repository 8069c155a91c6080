# kiln's Nix entry point, shared by flake.nix and the kiln CLI (`nix build --file nix/default.nix`).
# Everything is built from the seed alone; no nixpkgs, nothing fetched.
let
  # Read from a store path (kiln run from the store: `nix run .#bootstrap`), the file's text carries
  # that path's references (the seed) as context, which fromJSON refuses. The lock only names the
  # seed; what depends on it gets it through the fixed-output derivation, so the context can go.
  lock = builtins.fromJSON (builtins.unsafeDiscardStringContext (builtins.readFile ./seed.lock.json));
  seed = import ./seed.nix { inherit lock; };
  stacks = import ./stacks { inherit seed lock; };
in
{
  inherit seed;
  stack-run = stacks.run;
  stack-build = stacks.build;
}
