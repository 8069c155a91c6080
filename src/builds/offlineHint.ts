/**
 * A build phase that failed after trying the network, explained. Builds run in Nix's sandbox with no
 * network at all (fixed-output fetches excepted), so an install script that downloads (Prisma's
 * engines, Puppeteer's browser, Cypress, Electron, node-gyp's headers, a `curl` in a postinstall)
 * fails deep in its own output with `getaddrinfo EAI_AGAIN host`. This module reads the failed
 * phase's log for the network errors of Node, curl, wget, git and Python, and turns the failure into
 * an error that names the host tried, says why, and gives the way in (kiln.json `fetches`).
 */
import { KilnError } from "../errors.js";
import { NixBuildError } from "../nix/errors.js";

export interface AttemptedDownload {
  /** host, host:port, or an address; undefined when the tool said only "no network". */
  host: string | undefined;
  /** The network error as the tool put it (EAI_AGAIN, ENOTFOUND, curl (6), …). */
  reason: string;
  /** The log line it came from. */
  line: string;
}

type Rule = { re: RegExp; host?: number; reason: (m: RegExpExecArray) => string };

// Each tool's wording of "could not reach HOST". The host group is the first capture where set.
const RULES: Rule[] = [
  // Node (dns, net, fetch, npm, node-gyp, got/axios/node-fetch underneath every install script)
  {
    re: /getaddrinfo (EAI_AGAIN|ENOTFOUND|EAI_NONAME|EAI_FAIL|ENODATA) ([^\s'",)]+)/,
    host: 2,
    reason: (m) => `getaddrinfo ${m[1]}`,
  },
  {
    re: /connect (ECONNREFUSED|ENETUNREACH|EHOSTUNREACH|ETIMEDOUT|ECONNRESET) ([0-9a-fA-F.:[\]]+)/,
    host: 2,
    reason: (m) => `connect ${m[1]}`,
  },
  {
    re: /\b(ECONNREFUSED|ENETUNREACH|EHOSTUNREACH|EAI_AGAIN|ENOTFOUND)\b/,
    reason: (m) => m[1] ?? "network error",
  },
  // curl, git (libcurl)
  { re: /Could not resolve (?:host|proxy): ([^\s;'"]+)/, host: 1, reason: () => "could not resolve host" },
  { re: /Failed to connect to ([^\s]+) port (\d+)/, host: 1, reason: () => "failed to connect" },
  // wget (GNU, busybox)
  { re: /unable to resolve host address [‘'"]?([^’'"\s]+)/, host: 1, reason: () => "could not resolve host" },
  { re: /wget: bad address '([^']+)'/, host: 1, reason: () => "could not resolve host" },
  // Python (urllib3/requests/pip: host='…'; urllib: no host)
  {
    re: /host='([^']+)'.*(?:NameResolutionError|Failed to establish a new connection|Temporary failure in name resolution|Name or service not known|Network is unreachable)/,
    host: 1,
    reason: () => "could not connect",
  },
  {
    re: /(Temporary failure in name resolution|Name or service not known|Network is unreachable|No address associated with hostname)/,
    reason: (m) => m[1] ?? "network error",
  },
];

const URL_IN_LINE = /\bhttps?:\/\/([A-Za-z0-9.-]+(?::\d+)?)(?:[/?#][^\s'"<>)]*)?/g;

/**
 * The network error in these log lines: the first that names its host (tools print the cause with
 * the host once, and echo codes like `npm error code EAI_AGAIN` around it), else the first at all,
 * with the nearest URL printed around it as the host.
 */
export function findAttemptedDownload(lines: readonly string[]): AttemptedDownload | undefined {
  for (const withHost of [true, false]) {
    for (const [i, line] of lines.entries()) {
      for (const rule of RULES) {
        if ((rule.host !== undefined) !== withHost) continue;
        const m = rule.re.exec(line);
        if (!m) continue;
        const host = rule.host === undefined ? nearestUrlHost(lines, i) : m[rule.host];
        return { host: host?.replace(/[.:]+$/, ""), reason: rule.reason(m), line: line.trim() };
      }
    }
  }
  return undefined;
}

function nearestUrlHost(lines: readonly string[], at: number): string | undefined {
  for (let d = 0; d < 8; d++) {
    for (const j of [at - d, at + d]) {
      const l = lines[j];
      if (l === undefined) continue;
      const hosts = [...l.matchAll(URL_IN_LINE)].map((m) => m[1]).filter((h) => h !== "kiln.invalid");
      if (hosts.length > 0) return hosts[hosts.length - 1];
    }
  }
  return undefined;
}

/** Tools known to download at install time, and what lets them skip it (README: Install-time downloads). */
const TOOLS: { name: string; re: RegExp; hint: string }[] = [
  {
    name: "Prisma",
    re: /prisma/i,
    hint: "for Prisma, declare its engine files as fetches and point PRISMA_QUERY_ENGINE_LIBRARY and PRISMA_SCHEMA_ENGINE_BINARY at them (README: the Prisma recipe)",
  },
  {
    name: "Puppeteer",
    re: /puppeteer/i,
    hint: "for Puppeteer, set PUPPETEER_SKIP_DOWNLOAD=true, or declare the browser's zip as a fetch unpacked into PUPPETEER_CACHE_DIR (README: the Puppeteer recipe)",
  },
  {
    name: "Cypress",
    re: /cypress/i,
    hint: "for Cypress, set CYPRESS_INSTALL_BINARY=0 (a build does not need the app)",
  },
  {
    name: "Electron",
    re: /electron/i,
    hint: "for Electron, set ELECTRON_SKIP_BINARY_DOWNLOAD=1, or declare the zip as a fetch and set electron_config_cache",
  },
  {
    name: "Playwright",
    re: /playwright/i,
    hint: "for Playwright, set PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 (the stacks have no browser libraries)",
  },
  {
    name: "node-gyp",
    re: /gyp (?:ERR|info)|node-gyp/,
    hint: "node-gyp wanted Node's headers: the vendored Node ships them, so a `nodedir`/`disturl` setting in the app's .npmrc is what sends it out",
  },
];

export interface OfflineExplanation {
  download: AttemptedDownload;
  tool: string | undefined;
  phase: "dependencies" | "compile";
}

/** What a failed phase's log says about a download, if it tried one. */
export function explainOffline(
  lines: readonly string[],
  drvPath: string | undefined,
): OfflineExplanation | undefined {
  const download = findAttemptedDownload(lines);
  if (!download) return undefined;
  const text = lines.join("\n");
  const tool = TOOLS.find(
    (t) => t.re.test(text) || (download.host !== undefined && t.re.test(download.host)),
  );
  const phase = drvPath && /-kiln-deps-/.test(drvPath) ? "dependencies" : "compile";
  return { download, tool: tool?.name, phase };
}

/** The build failure an attempted download turns into (the original stays its cause). */
export class OfflineDownloadError extends KilnError {
  readonly drvPath: string | undefined;
  readonly logTail: string[];

  constructor(err: NixBuildError, why: OfflineExplanation) {
    const { download, tool, phase } = why;
    const where = download.host ? `tried to download from ${download.host}` : "tried to use the network";
    const who = phase === "dependencies" ? "a dependency's install script" : "the app's build";
    const tail =
      err.logTail.length > 0
        ? `\nlast log lines:\n${err.logTail
            .slice(-15)
            .map((l) => `  > ${l}`)
            .join("\n")}`
        : "";
    const toolHint = TOOLS.find((t) => t.name === tool)?.hint;
    super({
      code: "build_download_blocked",
      message:
        `the ${phase} phase failed: ${who}${tool ? ` (${tool})` : ""} ${where} (${download.reason}); ` +
        `builds are offline by design, so that every input is pinned by its hash${tail}`,
      hint: [
        "declare the file in kiln.json as a fetch (url + sha256): kiln fetches it as a pinned input and the build reads it from /kiln/fetches/NAME (its path is in the env var the entry names)",
        download.host
          ? `the host must be the npm registry's or in the operator's KILN_FETCH_ALLOW (${download.host})`
          : undefined,
        toolHint,
        err.drvPath ? `the full log: nix log ${err.drvPath}` : undefined,
      ]
        .filter((s): s is string => s !== undefined)
        .join("; "),
      details: { ...err.details, host: download.host, reason: download.reason, tool, phase },
      cause: err,
    });
    this.drvPath = err.drvPath;
    this.logTail = err.logTail;
  }
}

/** The last lines of each derivation's log (enough to hold an install script's whole error). */
export function recentLines(keep = 400): {
  add: (drvPath: string, line: string) => void;
  get: (drvPath: string) => string[] | undefined;
} {
  const byDrv = new Map<string, string[]>();
  return {
    add(drvPath, line) {
      const lines = byDrv.get(drvPath) ?? [];
      lines.push(line);
      if (lines.length > keep) lines.shift();
      byDrv.set(drvPath, lines);
    },
    get: (drvPath) => byDrv.get(drvPath),
  };
}

/**
 * A failed build's error, explained when its failing phase tried the network, or when a kiln.json
 * fetch did not have its declared hash; else unchanged.
 */
export function explainBuildFailure(err: unknown, recent: ReturnType<typeof recentLines>): unknown {
  const mismatch =
    err instanceof KilnError &&
    /hash mismatch in fixed-output derivation '[^']*-kiln-fetch-([^']+)\.drv':\s*specified:\s*(\S+)\s*got:\s*(\S+)/.exec(
      err.message,
    );
  if (mismatch)
    return new KilnError({
      code: "fetch_hash_mismatch",
      message: `kiln.json fetch "${mismatch[1]}" downloaded a file whose hash is ${mismatch[3]}, not the declared ${mismatch[2]}`,
      hint: "the file at that URL changed or the hash is wrong: check the file, then declare its sha256 (sha256sum FILE) or integrity",
      details: { fetch: mismatch[1], specified: mismatch[2], got: mismatch[3] },
      cause: err,
    });
  if (!(err instanceof NixBuildError)) return err;
  const lines = (err.drvPath ? recent.get(err.drvPath) : undefined) ?? err.logTail;
  const why = explainOffline(lines, err.drvPath);
  return why ? new OfflineDownloadError(err, why) : err;
}
