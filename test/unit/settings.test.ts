import { describe, expect, it } from "vitest";
import { nixOptionArgs, resolveStore } from "../../src/nix/settings.js";

describe("Nix settings", () => {
  it("turns the sandbox on, substituters off and flakes on, on every call", () => {
    const args = nixOptionArgs({ store: "local", cores: 0 }).join(" ");
    expect(args).toContain("--option sandbox true");
    expect(args).toContain("--option sandbox-fallback false");
    expect(args).toContain("--option substituters  ");
    expect(args).toContain("--option experimental-features nix-command flakes");
    expect(args).toMatch(/--store local$/);
    expect(nixOptionArgs({ store: "daemon", cores: 2 }).join(" ")).toContain("--option cores 2");
    // Builds run as Nix's unprivileged build users whatever the host's nix.conf says.
    expect(args).toContain("--option build-users-group nixbld");
    expect(nixOptionArgs({ store: "daemon", cores: 0 }).join(" ")).not.toContain("build-users-group");
  });

  it("picks the local store as root and the daemon for other users when it runs", () => {
    expect(resolveStore("auto", 0, true)).toBe("local");
    expect(resolveStore("auto", 1000, true)).toBe("daemon");
    expect(resolveStore("auto", 1000, false)).toBe("local");
    expect(resolveStore("/tmp/store", 0, true)).toBe("/tmp/store");
  });
});
