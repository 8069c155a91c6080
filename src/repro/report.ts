/** A check's report for people (one screen, details after) and for CI systems (JUnit XML). */
import { formatBytes } from "../nix/events.js";
import type { CheckReport, Comparison } from "./check.js";

const short = (sha: string) => sha.slice(0, 12);
const side = (s: { size: number; sha256: string } | null) =>
  s ? `${formatBytes(s.size)} ${short(s.sha256)}` : "missing";

function buildLabel(r: CheckReport, index: number | "against"): string {
  if (index === "against") return r.against?.label ?? "the recorded slug";
  return `build ${index}`;
}

/** The summary: verdict, builds, and per difference the file, its likely cause and the first lines. */
export function formatReport(r: CheckReport, opts: { detailLines?: number } = {}): string[] {
  const lines: string[] = [];
  const verdict =
    r.verdict === "reproducible"
      ? "is reproducible"
      : r.verdict === "not_reproducible"
        ? "is NOT reproducible"
        : "could not be checked: a build failed";
  lines.push(`kiln check: ${r.app} ${verdict} (${r.seconds.toFixed(1)} s, check ${r.id.slice(0, 8)})`);
  lines.push(`  variations  ${r.variations.length ? r.variations.join(", ") : "(none)"}`);
  if (r.against)
    lines.push(
      `  against     ${r.against.label}: ${formatBytes(r.against.bytes)} ${short(r.against.sha256)}`,
    );
  for (const b of r.builds) {
    const what = b.varied.length
      ? b.varied.map((v) => `${v.name}=${v.value}`).join(" ")
      : "ordinary settings";
    lines.push(`  build ${b.index}     ${b.slug ? short(b.slug.sha256) : "(not built)"}  ${what}`);
  }
  if (r.error) {
    lines.push("", `error: ${r.error.message}`);
    if (r.error.hint) lines.push(`hint: ${r.error.hint}`);
    // (A build's error message already ends with its log's last lines.)
    return lines;
  }
  if (r.verdict === "reproducible") {
    const sha = r.builds[0]?.slug?.sha256 ?? r.against?.sha256 ?? "";
    lines.push(`  every slug is byte-identical: sha256 ${sha}`);
    return lines;
  }
  if (r.causes.length) {
    lines.push("", "likely causes:");
    for (const c of r.causes) {
      lines.push(`  ${c.title}: ${c.files.join(", ")}`, `    fix: ${c.hint}`);
    }
  }
  if (r.bisect) {
    lines.push("", "each variation alone (--bisect):");
    const changing = r.bisect.filter((b) => !b.identical);
    for (const b of changing)
      lines.push(
        b.error
          ? `  ${b.variation}: could not build (${b.error.split("\n")[0]})`
          : `  ${b.variation}${b.value ? ` (${b.value})` : ""} changes ${b.files.length ? b.files.join(", ") : "the archive only"}`,
      );
    const quiet = r.bisect.filter((b) => b.identical).map((b) => b.variation);
    if (quiet.length)
      lines.push(
        `  ${changing.length ? "the others" : "none of them"} (${quiet.join(", ")}) change nothing alone`,
      );
  }
  for (const c of r.comparisons.filter((x) => !x.identical)) lines.push("", ...formatComparison(r, c, opts));
  return lines;
}

function formatComparison(r: CheckReport, c: Comparison, opts: { detailLines?: number }): string[] {
  const n = c.differences.length;
  const lines = [
    `${buildLabel(r, c.build)} differs from ${buildLabel(r, c.reference)} in ${n} file${n === 1 ? "" : "s"}:`,
  ];
  if (c.diffoscope) lines.push(`  diffoscope's report: ${c.diffoscope}`);
  const max = opts.detailLines ?? 20;
  for (const d of c.differences) {
    lines.push(`  ${d.path}  (${d.kind}: ${side(d.a)} vs ${side(d.b)})`);
    for (const cause of d.causes) lines.push(`    cause: ${cause.title} — ${cause.because}`);
    if (d.changedBy && r.bisect) {
      const every = r.bisect.length > 1 && d.changedBy.length === r.bisect.length;
      lines.push(
        every
          ? "    changed by: every build, whatever varies (the time of the build, or randomness)"
          : d.changedBy.length
            ? `    changed by: ${d.changedBy.join(", ")} (varied alone)`
            : "    changed by: no single variation (it takes several together)",
      );
    }
    const detail = d.detail.split("\n");
    for (const l of detail.slice(0, max)) lines.push(`    ${l}`);
    if (detail.length > max)
      lines.push(`    … ${detail.length - max} more lines (kiln check --json has them all)`);
  }
  return lines;
}

const xml = (s: string) =>
  s
    .replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c] as string)
    // XML 1.0 cannot carry most control characters, even escaped.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: matching them is the point
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, "?");

/**
 * JUnit XML: a test case per compared build (and one per differing file in it), failing when the
 * slugs differ; a build that failed is an error.
 */
export function formatJunit(r: CheckReport): string {
  const cases: string[] = [];
  let failures = 0;
  let errors = 0;
  const cls = `kiln.check.${r.app}`;
  if (r.error) {
    errors++;
    cases.push(
      `    <testcase classname="${xml(cls)}" name="build" time="${r.seconds.toFixed(3)}">\n` +
        `      <error type="${xml(r.error.code)}" message="${xml(r.error.message)}">${xml([r.error.hint ?? "", ...(r.error.logTail ?? [])].join("\n"))}</error>\n` +
        "    </testcase>",
    );
  }
  for (const c of r.comparisons) {
    const name = `${buildLabel(r, c.build)} matches ${buildLabel(r, c.reference)}`;
    if (c.identical) {
      cases.push(`    <testcase classname="${xml(cls)}" name="${xml(name)}"/>`);
      continue;
    }
    failures++;
    const text = formatComparison(r, c, { detailLines: 200 }).join("\n");
    cases.push(
      `    <testcase classname="${xml(cls)}" name="${xml(name)}">\n` +
        `      <failure type="not_reproducible" message="${xml(`${c.differences.length} files differ`)}">${xml(text)}</failure>\n` +
        "    </testcase>",
    );
    for (const d of c.differences) {
      failures++;
      const msg = d.causes.map((x) => x.title).join("; ");
      cases.push(
        `    <testcase classname="${xml(`${cls}.${buildLabel(r, c.build).replace(/ /g, "")}`)}" name="${xml(d.path)}">\n` +
          `      <failure type="${xml(d.causes[0]?.id ?? "unknown")}" message="${xml(msg)}">${xml(d.detail)}</failure>\n` +
          "    </testcase>",
      );
    }
  }
  const tests = cases.length;
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<testsuites name="kiln check" tests="${tests}" failures="${failures}" errors="${errors}" time="${r.seconds.toFixed(3)}">`,
    `  <testsuite name="kiln check ${xml(r.app)}" tests="${tests}" failures="${failures}" errors="${errors}" time="${r.seconds.toFixed(3)}" timestamp="${xml(r.startedAt)}">`,
    "    <properties>",
    `      <property name="check" value="${xml(r.id)}"/>`,
    `      <property name="verdict" value="${r.verdict}"/>`,
    `      <property name="variations" value="${xml(r.variations.join(","))}"/>`,
    "    </properties>",
    ...cases,
    "  </testsuite>",
    "</testsuites>",
    "",
  ].join("\n");
}
