# The bootstrap seed, as a fixed-output path pinned by nix/seed.lock.json.
#
# kiln puts the seed into the store itself (`kiln seed`: pinned .debs and Node, laid out
# deterministically, `nix-store --add-fixed --recursive sha256`). Nix then treats this fixed-output
# path as already fetched. When it is missing, evaluation stops with the command that imports it:
# fetchTarball returns a valid path of the expected hash without touching its URL, and only when the
# path is absent does it try the "URL", which is that message.
{ lock }:
let
  constants = import ./constants.nix;
  seedPath = builtins.fetchTarball {
    name = "kiln-seed";
    url = "kiln-seed-is-missing: the pinned seed ${lock.storePath} is not in the Nix store; import it with `npm run kiln -- seed` in the kiln checkout (or `kiln seed import FILE`)";
    sha256 = lock.narHash;
  };
in
builtins.seq seedPath (derivation {
  name = "kiln-seed";
  inherit (constants) system;
  # Never runs: the output is valid by the time this derivation is evaluated.
  builder = "builtin:fetchurl";
  url = "kiln-seed-is-missing";
  outputHashMode = "recursive";
  outputHashAlgo = "sha256";
  outputHash = lock.narHash;
})
