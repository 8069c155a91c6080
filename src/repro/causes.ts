/**
 * Names the likely cause of a difference, from what differs and from what the two builds varied:
 * an embedded timestamp, build path, host name, user, time zone, locale collation, directory order,
 * random order, environment, CPU count, permissions. Heuristics, each with the reason it fired, so a
 * reader can judge; "unknown" when none does.
 */
import type { FileDifference } from "./diff.js";
import type { CheckSettings } from "./variations.js";

export type CauseId =
  | "timestamp"
  | "time-zone"
  | "build-path"
  | "hostname"
  | "user"
  | "locale-collation"
  | "directory-order"
  | "random-order"
  | "environment"
  | "cpu-count"
  | "umask"
  | "archive-metadata"
  | "unknown";

export interface Cause {
  id: CauseId;
  title: string;
  /** Why kiln thinks so, in a sentence. */
  because: string;
}

export const CAUSE_TITLES: Record<CauseId, string> = {
  timestamp: "an embedded timestamp (the time of the build)",
  "time-zone": "time-zone-dependent output (TZ)",
  "build-path": "an embedded build path",
  hostname: "an embedded host name",
  user: "an embedded user name or uid",
  "locale-collation": "locale-dependent sorting (collation)",
  "directory-order": "a directory listed without sorting",
  "random-order": "random or hash ordering",
  environment: "captured environment variables",
  "cpu-count": "output that depends on the number of CPUs",
  umask: "file permissions that depend on the umask",
  "archive-metadata": "archive metadata (member order, headers or compression)",
  unknown: "not recognised",
};

export const CAUSE_HINTS: Record<CauseId, string> = {
  timestamp: "use SOURCE_DATE_EPOCH (kiln sets it) instead of the current time",
  "time-zone": "format times in UTC (or with an explicit time zone), not the machine's",
  "build-path": "write paths relative to the app, or resolve them at run time (/app in a dyno)",
  hostname: "do not record os.hostname() at build time",
  user: "do not record the build's user (os.userInfo(), $USER, uid) in the output",
  "locale-collation": "sort with a fixed order (e.g. a < b by code point, or Intl.Collator('en'))",
  "directory-order": "sort directory listings (readdir, opendir, find, ls -U give file-system order)",
  "random-order": "sort the output, or seed the randomness",
  environment: "do not write the whole environment into the output",
  "cpu-count": "make the output independent of NIX_BUILD_CORES / the number of CPUs",
  umask: "set permissions explicitly (chmod) instead of inheriting the umask",
  "archive-metadata": "write archives deterministically: sorted members, fixed mtime, no owner names",
  unknown: "run kiln check --bisect to see which variation, alone, changes it",
};

export interface CauseContext {
  /** The settings of the two builds compared (all "" for an ordinary or recorded build). */
  a: CheckSettings;
  b: CheckSettings;
  /** What to call them in the reasons ("build 0", "the recorded slug"). */
  labels?: { a: string; b: string };
}

/** `word` in a text, not as part of a longer name (kiln-check is not in kiln-check-host). */
function mentionsWord(texts: string[], word: string): boolean {
  if (word === "") return false;
  const esc = word.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const re = new RegExp(`(^|[^A-Za-z0-9_.-])${esc}($|[^A-Za-z0-9_-])`);
  return texts.some((t) => re.test(t));
}

const DATE_PATTERNS = [
  /\b(19|20)\d\d-[01]\d-[0-3]\d[T ][0-2]\d:[0-5]\d(:[0-5]\d(\.\d+)?)?(Z|[+-][0-2]\d:?[0-5]\d)?/g,
  /\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun),? (\d\d )?(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\d\d? )?(\d{4} )?[0-2]?\d:[0-5]\d:[0-5]\d( \d{4})?( GMT[+-]\d{4})?/g,
  /\b1[5-9]\d{8}(\d{3})?\b|\b20\d{8}(\d{3})?\b/g,
];
const ZONE = /GMT[+-]\d{4}|[+-][01]\d:[0-5]\d\b| \([A-Z][A-Za-z ]+ Time\)/;

function dates(texts: string[]): string[] {
  const out: string[] = [];
  for (const t of texts) for (const re of DATE_PATTERNS) for (const m of t.matchAll(re)) out.push(m[0]);
  return out;
}

function instant(s: string): number | undefined {
  if (/^\d+$/.test(s)) return s.length > 10 ? Number(s) : Number(s) * 1000;
  const t = Date.parse(s.replace(/ \(.*\)$/, ""));
  return Number.isNaN(t) ? undefined : t;
}

function mentions(texts: string[], needle: string): boolean {
  return needle !== "" && texts.some((t) => t.includes(needle));
}

function sameMultiset(a: string[], b: string[]): boolean {
  if (a.length !== b.length || a.length < 2) return false;
  const x = [...a].sort();
  const y = [...b].sort();
  return x.every((v, i) => v === y[i]);
}

/** The ICU locale of a LANG value ("" and C mean kiln's ordinary C.UTF-8: code-point order). */
function collatorFor(lang: string): ((x: string, y: string) => number) | undefined {
  const m = /^([a-z]{2,3})_([A-Z]{2})/.exec(lang);
  if (!m) return undefined;
  return new Intl.Collator(`${m[1]}-${m[2]}`).compare;
}
const codePoint = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
function isSorted(lines: string[], cmp: (x: string, y: string) => number): boolean {
  return lines.every((l, i) => i === 0 || cmp(lines[i - 1] as string, l) <= 0);
}

export function nameCauses(d: FileDifference, ctx: CauseContext, texts?: { a: string; b: string }): Cause[] {
  const causes: Cause[] = [];
  const add = (id: CauseId, because: string) => {
    if (!causes.some((c) => c.id === id)) causes.push({ id, title: CAUSE_TITLES[id], because });
  };
  const ea = d.evidence.a;
  const eb = d.evidence.b;
  const { a, b } = ctx;

  if (d.kind === "archive" && (d.members ?? []).length === 0)
    add("archive-metadata", "every member is identical; only the archive's own bytes differ");

  // Paths, names and variables that only one build had.
  const labels = ctx.labels ?? { a: "build a", b: "build b" };
  for (const [side, s, ev] of [
    [labels.b, b, eb],
    [labels.a, a, ea],
  ] as const) {
    if (mentions(ev, s.buildDir)) add("build-path", `${side}'s output contains its build path ${s.buildDir}`);
    if (mentionsWord(ev, s.hostname))
      add("hostname", `${side}'s output contains its host name ${s.hostname}`);
    const [userName = "", uid = ""] = s.user.split(":");
    if (mentionsWord(ev, userName)) add("user", `${side}'s output contains its user name ${userName}`);
    else if (mentionsWord(ev, uid)) add("user", `${side}'s output contains its uid ${uid}`);
    const extra = s.extraEnv.split("=")[1] ?? "";
    if (mentions(ev, extra)) add("environment", `${side}'s output contains the extra variable it was given`);
  }
  if (
    !causes.some((c) => c.id === "build-path") &&
    a.buildDir !== b.buildDir &&
    (mentions(ea, "/app/") || mentions(eb, "/app/"))
  )
    add("build-path", "the differing parts mention /app, the ordinary build path");

  // Times: the same instant written in two zones is the time zone; other differing times are the clock.
  const da = dates(ea);
  const db = dates(eb);
  if (da.length > 0 && db.length > 0 && da.join() !== db.join()) {
    const ia = da.map(instant);
    const ib = db.map(instant);
    const sameInstants = ia.length === ib.length && ia.every((t, i) => t !== undefined && t === ib[i]);
    const gap = Math.max(
      0,
      ...ia.map((t, i) => (t === undefined || ib[i] === undefined ? 0 : Math.abs(t - (ib[i] as number)))),
    );
    const zones = [...da, ...db].some((s) => ZONE.test(s));
    const offset =
      a.faketime !== b.faketime
        ? ` (${labels.a}'s clock ${a.faketime ? `ran ${a.faketime}` : "was right"}, ${labels.b}'s ${b.faketime ? `ran ${b.faketime}` : "was right"})`
        : "";
    if (!sameInstants && (gap > 26 * 3600_000 || !zones || a.tz === b.tz))
      add("timestamp", `the differing parts are times: ${da[0]} vs ${db[0]}${offset}`);
    if (a.tz !== b.tz && (sameInstants || zones))
      add("time-zone", `times are written differently with TZ=${a.tz || "UTC"} and TZ=${b.tz || "UTC"}`);
  } else if (
    a.tz !== b.tz &&
    [...ea, ...eb].some((t) => ZONE.test(t) || mentions([t], a.tz) || mentions([t], b.tz))
  ) {
    add("time-zone", "the differing parts name time zones");
  }

  // Same lines, another order: collation if each side is sorted by its own locale, else listing order.
  if (texts) {
    const la = texts.a.split("\n").filter((l) => l !== "");
    const lb = texts.b.split("\n").filter((l) => l !== "");
    if (sameMultiset(la, lb)) {
      const ca = collatorFor(a.lang) ?? codePoint;
      const cb = collatorFor(b.lang) ?? codePoint;
      if (a.lang !== b.lang && isSorted(la, ca) && isSorted(lb, cb))
        add(
          "locale-collation",
          `the same lines, each sorted by its build's locale (LANG=${a.lang || "C.UTF-8"} vs ${b.lang || "C.UTF-8"})`,
        );
      else if (a.fsOrder !== b.fsOrder)
        add(
          "directory-order",
          "the same lines in another order, and the builds created their files in another order",
        );
      else if (a.env !== b.env && la.every((l) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(l)))
        add("environment", "the same variables in another order: the environment was written out");
      else add("random-order", "the same lines in another order, with nothing varied that explains it");
    }
  }

  if (a.umask !== b.umask && [...ea, ...eb].some((t) => /[-d]rw[-x]------|\b0?[67]00\b/.test(t)))
    add(
      "umask",
      `the differing parts look like permissions (umask ${a.umask || "022"} vs ${b.umask || "022"})`,
    );
  if (a.cpus !== b.cpus) {
    const n = b.cpus.split(":")[0] || a.cpus.split(":")[0];
    if (
      n &&
      [...ea, ...eb].some((t) => new RegExp(`(cores|cpus|jobs|-j|parallel)\\D{0,3}${n}\\b`, "i").test(t))
    )
      add("cpu-count", `the differing parts mention ${n} CPUs`);
  }
  if (causes.length === 0) add("unknown", "no known pattern in the differing parts");
  return causes;
}
