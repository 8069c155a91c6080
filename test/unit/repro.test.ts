import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type CauseContext, nameCauses } from "../../src/repro/causes.js";
import type { CheckReport } from "../../src/repro/check.js";
import type { FileDifference } from "../../src/repro/diff.js";
import { formatJunit, formatReport } from "../../src/repro/report.js";
import {
  loadVariations,
  selectVariations,
  settingsFor,
  variationNames,
  variedIn,
} from "../../src/repro/variations.js";
import { projectDir } from "../helpers.js";

const table = await loadVariations(projectDir);
const all = variationNames(table);
const ordinary = settingsFor(table, all, 0);
const varied = settingsFor(table, all, 1);
const ctx: CauseContext = { a: ordinary, b: varied, labels: { a: "build 0", b: "build 1" } };

function textDiff(path: string, a: string[], b: string[]): FileDifference {
  return {
    path,
    kind: "text",
    a: { size: 1, sha256: "a".repeat(64) },
    b: { size: 1, sha256: "b".repeat(64) },
    detail: "",
    evidence: { a, b },
  };
}
const causeIds = (d: FileDifference, texts?: { a: string; b: string }) =>
  nameCauses(d, ctx, texts).map((c) => c.id);

describe("variations", () => {
  it("build 0 is the ordinary build; build 1 varies every switched-on variation", () => {
    expect(Object.values(ordinary).every((v) => v === "")).toBe(true);
    expect(variedIn(table, varied).map((v) => v.name)).toEqual(all);
    expect(varied.extraEnv).toBe(`${table.extraEnv.name}=${table.extraEnv.value}`);
    const onlyTz = settingsFor(table, ["tz"], 1);
    expect(variedIn(table, onlyTz)).toEqual([
      expect.objectContaining({ name: "tz", value: "Pacific/Kiritimati" }),
    ]);
    expect(onlyTz.extraEnv).toBe("");
    // Build 2 takes the next values: another path, another clock.
    const two = settingsFor(table, all, 2);
    expect(two.buildDir).not.toBe(varied.buildDir);
    expect(two.faketime).toBe("+13y");
  });

  it("kiln check --help lists every variation by name", () => {
    const help = readFileSync(join(projectDir, "src", "cli", "checkCommands.ts"), "utf8");
    const line = /Variations \(all on by default[^\n]*\n {2}([^\n]+)/.exec(help)?.[1] ?? "";
    expect(line.trim().split(/\s+/)).toEqual(all);
  });

  it("selects by name and refuses names it does not know, listing the ones it does", () => {
    expect(selectVariations(table, {})).toEqual(all);
    expect(selectVariations(table, { only: ["tz", "time"] })).toEqual(["time", "tz"]);
    expect(selectVariations(table, { skip: ["time"] })).toEqual(all.filter((n) => n !== "time"));
    expect(() => selectVariations(table, { only: ["moon"] })).toThrow(/there is no variation "moon"/);
    try {
      selectVariations(table, { skip: ["moon"] });
    } catch (err) {
      expect((err as { code: string }).code).toBe("invalid_variation");
      expect((err as { hint: string }).hint).toContain(all.join(", "));
    }
  });
});

describe("naming causes", () => {
  it("an embedded timestamp: times years apart", () => {
    expect(
      causeIds(textDiff("a.txt", ["built 2026-12-01T10:00:00Z"], ["built 2033-11-29T10:00:05Z"])),
    ).toEqual(["timestamp"]);
    expect(causeIds(textDiff("a.txt", ["t=1796000000"], ["t=2016000000"]))).toEqual(["timestamp"]);
  });

  it("the time zone: one instant written in two zones", () => {
    const d = textDiff(
      "when.txt",
      ["released Tue Jan 01 1980 00:00:00 GMT+0000 (Coordinated Universal Time)"],
      ["released Mon Dec 31 1979 14:00:00 GMT-1000 (Line Islands Time)"],
    );
    expect(causeIds(d)).toEqual(["time-zone"]);
  });

  it("the build path, the host name, the user (as whole words), the environment", () => {
    expect(causeIds(textDiff("c.json", ['"/app"'], [`"${varied.buildDir}"`]))).toEqual(["build-path"]);
    expect(causeIds(textDiff("h.txt", ["on kiln"], ["on kiln-check-host"]))).toEqual(["hostname"]);
    expect(causeIds(textDiff("u.txt", ["by app"], ["by kiln-check"]))).toEqual(["user"]);
    expect(causeIds(textDiff("e.txt", [], [`${table.extraEnv.value}`]))).toEqual(["environment"]);
  });

  it("orderings: collation when each side is sorted by its locale, else the listing order", () => {
    const words = ["apple", "sana", "tali", "zebra"];
    const estonian = ["apple", "sana", "zebra", "tali"];
    expect(
      causeIds(textDiff("g.txt", ["tali"], ["tali"]), { a: words.join("\n"), b: estonian.join("\n") }),
    ).toEqual(["locale-collation"]);
    const listing = ["team.html", "about.html", "faq.html"];
    expect(
      causeIds(textDiff("p.txt", ["team.html"], ["team.html"]), {
        a: listing.join("\n"),
        b: [...listing].reverse().join("\n"),
      }),
    ).toEqual(["directory-order"]);
    const same = { ...ctx, b: settingsFor(table, ["tz"], 1) };
    expect(
      nameCauses(textDiff("r.txt", ["x"], ["x"]), same, { a: "b\nc\na", b: "c\na\nb" }).map((c) => c.id),
    ).toEqual(["random-order"]);
  });

  it("says when it does not know, and when only an archive's own bytes differ", () => {
    expect(causeIds(textDiff("x.bin", ["\u0001\u0002"], ["\u0003"]))).toEqual(["unknown"]);
    const archive: FileDifference = { ...textDiff(".", [], []), kind: "archive", members: [] };
    expect(causeIds(archive)).toEqual(["archive-metadata"]);
  });
});

describe("reports", () => {
  const report: CheckReport = {
    id: "6f1c2c9e-0000-4000-8000-000000000000",
    app: "demo",
    verdict: "not_reproducible",
    startedAt: "2026-12-01T00:00:00.000Z",
    finishedAt: "2026-12-01T00:00:10.000Z",
    seconds: 10,
    variations: ["time"],
    builds: [
      { index: 0, varied: [], slug: { sha256: "a".repeat(64), bytes: 10, path: "/x" } },
      {
        index: 1,
        varied: [{ name: "time", value: "+7y" }],
        slug: { sha256: "b".repeat(64), bytes: 10, path: "/y" },
      },
    ],
    comparisons: [
      {
        reference: 0,
        build: 1,
        identical: false,
        differences: [
          {
            ...textDiff('app/<odd> & "name".txt', [], []),
            detail: "-old\n+new",
            causes: [{ id: "timestamp", title: "an embedded timestamp", because: "times differ" }],
          },
        ],
      },
    ],
    causes: [
      { id: "timestamp", title: "an embedded timestamp", hint: "use SOURCE_DATE_EPOCH", files: ["x"] },
    ],
  };

  it("the summary leads with the verdict, then causes, then each file's difference", () => {
    const text = formatReport(report).join("\n");
    expect(text.split("\n")[0]).toMatch(/^kiln check: demo is NOT reproducible \(10\.0 s/);
    expect(text).toContain("build 1     bbbbbbbbbbbb  time=+7y");
    expect(text).toContain("an embedded timestamp: x\n    fix: use SOURCE_DATE_EPOCH");
    expect(text).toContain("build 1 differs from build 0 in 1 file:");
    expect(text).toContain("    +new");
  });

  it("JUnit: a failing case per comparison and per file, with XML escaped", () => {
    const xml = formatJunit(report);
    expect(xml).toMatch(/^<\?xml version="1\.0" encoding="UTF-8"\?>/);
    expect(xml).toContain('<testsuites name="kiln check" tests="2" failures="2" errors="0"');
    expect(xml).toContain('name="app/&lt;odd&gt; &amp; &quot;name&quot;.txt"');
    expect(xml).toContain('<failure type="timestamp" message="an embedded timestamp">');
    const ok = formatJunit({
      ...report,
      verdict: "reproducible",
      comparisons: [
        { ...report.comparisons[0], identical: true, differences: [] } as CheckReport["comparisons"][number],
      ],
    });
    expect(ok).toContain('tests="1" failures="0" errors="0"');
  });
});
