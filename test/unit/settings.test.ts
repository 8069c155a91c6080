import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkDistribution, nixOptionArgs, resolveStore } from "../../src/nix/settings.js";
import { tempDir } from "../tmp.js";

/** The value Nix ends with for a setting: the last --option NAME wins. */
const lastOption = (args: string[], name: string) => {
  let v: string | undefined;
  for (let i = 0; i < args.length - 2; i++)
    if (args[i] === "--option" && args[i + 1] === name) v = args[i + 2];
  return v;
};

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

  it("passes builders, remote-only and substituters as Nix's own settings", () => {
    const spec = "ssh-ng://b1 x86_64-linux - 2; ssh-ng://b2 x86_64-linux";
    const a = nixOptionArgs({ store: "local", cores: 0, builders: spec, remoteOnly: true });
    expect(lastOption(a, "builders")).toBe(spec);
    expect(lastOption(a, "max-jobs")).toBe("0");
    expect(lastOption(a, "substituters")).toBe("");
    const sub = nixOptionArgs({
      store: "local",
      cores: 0,
      substituters: ["http://h:5080/nix-cache"],
      trustedKeys: ["kiln-cache-h-1:AAAA"],
      netrcFile: "/x/netrc",
    });
    // kiln's "no substituters" default is overridden, not appended to: only the given cache.
    expect(lastOption(sub, "substituters")).toBe("http://h:5080/nix-cache");
    expect(lastOption(sub, "trusted-public-keys")).toBe("kiln-cache-h-1:AAAA");
    expect(lastOption(sub, "netrc-file")).toBe("/x/netrc");
    expect(lastOption(nixOptionArgs({ store: "local", cores: 0 }), "max-jobs")).toBeUndefined();
  });

  it("refuses builder and substituter settings Nix would fail on late", () => {
    const file = join(tempDir("kiln-machines-"), "machines");
    writeFileSync(file, "# comment\nssh-ng://b1 x86_64-linux - 2\nbuilder@host x86_64-linux\n");
    expect(() => checkDistribution({ builders: `@${file}`, remoteOnly: true })).not.toThrow();
    expect(() => checkDistribution({ builders: "@/nonexistent" })).toThrow(/cannot read the machines file/);
    expect(() => checkDistribution({ builders: "/etc/passwd x86_64-linux" })).toThrow(/not a builder/);
    expect(() => checkDistribution({ remoteOnly: true })).toThrow(/needs a remote builder/);
    expect(() => checkDistribution({ substituters: ["http://h/nix-cache"] })).toThrow(/public key/);
    expect(() => checkDistribution({})).not.toThrow();
  });
});
