# The two stack images (rootfs trees), built in the Nix sandbox from the seed alone.
#   run:   what dynos run on: static busybox, glibc + libstdc++ runtime, openssl + libssl, ldconfig
#          (and ld.so.cache), CA certificates laid out as Debian does, tzdata; os-release ID_LIKE=debian.
#   build: the run stack's packages plus Node, npm, gcc/g++, binutils, make, python3, libc headers
#          and bubblewrap: enough for buildpacks and node-gyp.
{ seed, lock }:
let
  constants = import ../constants.nix;
  mkStack = { name, packages, withNode }:
    derivation {
      inherit name seed;
      inherit (constants) system;
      # The seed's static busybox is the only tool available in the sandbox: it is the builder.
      builder = constants.busyboxOf seed;
      args = [ "sh" "-eu" ./make-stack.sh ];
      copyTree = ../lib/copy-tree.sh;
      packages = builtins.concatStringsSep " " packages;
      withNode = if withNode then "1" else "";
      stackName = name;
    };
in
{
  run = mkStack { name = "kiln-stack-run"; packages = lock.stacks.run; withNode = false; };
  build = mkStack { name = "kiln-stack-build"; packages = lock.stacks.build; withNode = true; };
}
