# One buildpack's bin/detect over an app's source, in the Nix sandbox: $out/status (its exit code),
# $out/stdout, $out/stderr. What kiln uses where it cannot start bubblewrap itself (as a dyno).
{ buildpack, source }:
let
  kiln = import ../default.nix;
  constants = import ../constants.nix;
in
derivation {
  name = "kiln-detect";
  inherit (constants) system;
  builder = constants.busyboxOf kiln.seed;
  args = [ "sh" "-eu" ./phase.sh ];
  # phase.sh's lockdown: bin/detect runs under the same seccomp filter as every build phase.
  seccomp = ./seccomp.bpf;
  inherit (kiln) seed;
  stack = kiln.stack-build;
  phase = "detect";
  buildpacks = [ (builtins.storePath buildpack) ];
  source = builtins.storePath source;
  specJSON = "{}";
  SOURCE_DATE_EPOCH = toString constants.sourceDateEpoch;
  allowedReferences = [ ];
}
