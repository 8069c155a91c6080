import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseBuilderFailure, stripAnsi } from "../../src/nix/errors.js";
import {
  derivationName,
  formatBytes,
  formatProgress,
  NixProgress,
  parseNixEventLine,
} from "../../src/nix/events.js";

const fixture = (name: string) =>
  readFileSync(join(import.meta.dirname, "..", "fixtures", "nix", name), "utf8").split("\n");

describe("internal-json events", () => {
  it("parses start/result/stop/msg lines and ignores everything else", () => {
    expect(
      parseNixEventLine(
        '@nix {"action":"start","id":1,"level":3,"text":"building x","type":105,"fields":["/nix/store/a.drv","",1,1]}',
      ),
    ).toMatchObject({
      action: "start",
      type: 105,
      fields: ["/nix/store/a.drv", "", 1, 1],
    });
    expect(parseNixEventLine('@nix {"action":"stop","id":1}')).toEqual({ action: "stop", id: 1 });
    expect(parseNixEventLine("building '/nix/store/x.drv'...")).toBeUndefined();
    expect(parseNixEventLine("@nix {not json")).toBeUndefined();
    expect(parseNixEventLine('@nix {"action":"bogus"}')).toBeUndefined();
  });

  it("counts derivations and keeps each build's log from a recorded successful build", () => {
    const p = new NixProgress();
    const snaps: string[] = [];
    for (const line of fixture("build-ok.internal-json")) {
      const ev = parseNixEventLine(line);
      if (ev) {
        p.apply(ev);
        snaps.push(formatProgress(p.snapshot()));
      }
    }
    const last = p.snapshot();
    expect(last.buildsDone).toBe(2);
    expect(last.buildsExpected).toBe(2);
    expect(snaps).toContain("[0/2 built, 1 running] a: line-a2");
    expect(p.logTail("/nix/store/rghrpb43fsx6ynm1m1gln934n6zhdm0a-a.drv")).toEqual(["line-a1", "line-a2"]);
  });

  it("finds the failing derivation, its exit code and its log in a recorded failure", () => {
    const p = new NixProgress();
    for (const line of fixture("build-fail.internal-json")) {
      const ev = parseNixEventLine(line);
      if (ev) p.apply(ev);
    }
    const failure = p.messages.map(parseBuilderFailure).find(Boolean);
    expect(failure).toEqual({ drvPath: "/nix/store/h9sdg0mpn71mifwncmm61a4ilx7zx97c-bad.drv", exitCode: 3 });
    expect(p.logTail("/nix/store/h9sdg0mpn71mifwncmm61a4ilx7zx97c-bad.drv")).toEqual(["one", "two"]);
    expect(p.snapshot().buildsFailed).toBe(1);
  });

  it("formats names, bytes and progress compactly", () => {
    expect(derivationName("/nix/store/89czzdqpws7bmgg27jx1y3gm4j47968n-kiln-stack-run.drv")).toBe(
      "kiln-stack-run",
    );
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(5 * 1024 * 1024)).toBe("5.0 MiB");
    expect(
      formatProgress({
        buildsDone: 1,
        buildsExpected: 3,
        buildsRunning: 1,
        buildsFailed: 0,
        current: "x: copying",
        bytesDone: 2048,
        bytesExpected: 4096,
      }),
    ).toBe("[1/3 built, 1 running] x: copying · 2.0 KiB of 4.0 KiB fetched");
    expect(stripAnsi("\u001b[31;1merror:\u001b[0m boom")).toBe("error: boom");
  });
});
