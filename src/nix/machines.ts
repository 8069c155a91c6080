/**
 * Where a build's derivations ran: a Nix whose builds report each derivation's machine ("local"
 * or a remote builder's URI), so the build record can say it. Nothing built (every output was
 * already valid or substituted) leaves the list empty.
 */
import type { BuildOptions, Nix } from "./driver.js";

export function trackMachines(nix: Nix): { nix: Nix; machines(): string[] } {
  const seen = new Set<string>();
  const withTracking = (bo: BuildOptions = {}): BuildOptions => ({
    ...bo,
    onBuildStarted: (drv, machine) => {
      seen.add(machine);
      bo.onBuildStarted?.(drv, machine);
    },
  });
  return {
    nix: {
      ...nix,
      build: (targets, bo) => nix.build(targets, withTracking(bo)),
      check: (target, bo) => nix.check(target, withTracking(bo)),
    },
    machines: () => [...seen].sort(),
  };
}
