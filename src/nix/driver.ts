/**
 * kiln's Nix driver: typed calls for everything kiln asks of Nix. Every call carries kiln's settings
 * (settings.ts); failures become typed errors (errors.ts); builds report progress from Nix's
 * internal-json events (events.ts).
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readdir, readlink, rm } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { z } from "zod";
import type { Logger } from "../log/logger.js";
import { ProcessError, run, spawnProcess } from "../process/run.js";
import { NIX_CONSTANTS } from "./constants.js";
import {
  NixBuildError,
  NixError,
  parseBuilderFailure,
  SEED_MISSING_MARKER,
  SeedMissingError,
  stripAnsi,
} from "./errors.js";
import { toNix } from "./escape.js";
import { ActivityType, NixProgress, type ProgressSnapshot, parseNixEventLine, ResultType } from "./events.js";
import { parsePathInfo, type ValidPathInfo } from "./pathInfo.js";
import { type Distribution, nixOptionArgs, resolveStore } from "./settings.js";

export interface NixOptions {
  /** "auto", "local", "daemon" or a store URI. */
  store: string;
  /** Directory holding nix, nix-store; "" for PATH. */
  binDir: string;
  /** Where kiln's GC roots live (one symlink per kiln object). */
  gcRootsDir: string;
  cores: number;
  log: Logger;
  /** The command that imports the seed, for the missing-seed hint. */
  seedImportCommand: string;
  /** Remote builders and substituters (none: everything is built here). */
  distribution?: Distribution;
}

/**
 * What to build or evaluate: a flake installable (`.#x`), an attribute of a Nix file, or an
 * expression (generated with toNix from escape.ts, never by splicing strings).
 */
export type Target =
  | { installable: string }
  | { file: string; attr: string }
  | {
      expr: string /** Attributes of the expression's value to build (nix takes one --expr per call). */;
      attrs?: string[];
    };

export interface BuildOptions {
  onProgress?: (p: ProgressSnapshot) => void;
  /** Every build log line as it arrives, with the derivation it belongs to. */
  onLogLine?: (drvPath: string, line: string) => void;
  /** Rebuild outputs that already exist and fail if they differ (Nix's --rebuild / --check). */
  rebuild?: boolean;
  /** Derivations built at once (Nix's max-jobs; its default is 1). */
  maxJobs?: number;
  signal?: AbortSignal;
  timeoutMs?: number;
  /**
   * Build limits (src/builds/limits.ts): `cgroup.procs` files that `nix build` enters before it
   * starts (with the local store it forks the builders itself, so they inherit them), extra
   * sandbox paths (`TARGET=SOURCE`), and Nix's own per-derivation wall-clock limit.
   */
  cgroupProcs?: string[];
  sandboxPaths?: string[];
  buildTimeoutSeconds?: number;
  /** Each derivation Nix starts building, and where: "local", or the remote builder's URI. */
  onBuildStarted?: (drvPath: string, machine: string) => void;
}

/**
 * Runs a command inside cgroups: writes its own pid to each `cgroup.procs` given before `--`, then
 * execs the rest, so nothing it starts ever runs outside them (no window, unlike moving it after
 * spawn). A write that fails stops it before the command runs.
 */
const ENTER_CGROUPS = [
  'procs=; while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; procs="$procs $1"; shift; done; shift',
  // It stays as the command's parent: when kiln dies (its parent-death signal, TERM) or cancels the
  // build, it kills everything in the build's cgroups. Nix's sandboxed builders do not die with a
  // killed nix, so nix's own parent-death signal is not enough.
  'sweep() { for f in $procs; do for p in $(cat "$f"); do [ "$p" = $$ ] || kill -9 "$p" 2>/dev/null; done; done; }',
  "trap 'sweep; sweep; exit 137' TERM INT",
  '"$@" & child=$!',
  "wait $child; status=$?; exit $status",
].join("\n");

/**
 * `nix build` gets SIGKILL when kiln dies (util-linux setpriv sets the parent-death signal, which
 * survives exec); Nix itself kills its builders when it dies. Without setpriv, none.
 */
function withParentDeathSignal(
  file: string,
  args: string[],
  signal: "KILL" | "TERM" = "KILL",
): { file: string; args: string[] } {
  const setpriv = pdeathsigSetpriv();
  return setpriv ? { file: setpriv, args: ["--pdeathsig", signal, "--", file, ...args] } : { file, args };
}

let setprivProbe: string | null | undefined;
/**
 * A setpriv that knows --pdeathsig (util-linux's; busybox's, as in a stack where kiln runs as a
 * dyno, does not), asked once per process. There kiln builds through the daemon, which ends a
 * build whose client is gone.
 */
function pdeathsigSetpriv(): string | null {
  if (setprivProbe !== undefined) return setprivProbe;
  const found = ["/usr/bin/setpriv", "/bin/setpriv"].find((p) => existsSync(p));
  setprivProbe =
    found && spawnSync(found, ["--pdeathsig", "KILL", "--", "true"], { stdio: "ignore" }).status === 0
      ? found
      : null;
  return setprivProbe;
}

export interface BuildResult {
  drvPath: string;
  outputs: Record<string, string>;
}

const buildResultSchema = z.array(
  z.object({ drvPath: z.string(), outputs: z.record(z.string(), z.string()) }),
);

const derivationInfoSchema = z.record(
  z.string(),
  z.object({
    outputs: z.record(
      z.string(),
      z.object({ path: z.string().optional(), hashAlgo: z.string().optional(), hash: z.string().optional() }),
    ),
    env: z.record(z.string(), z.string()),
    inputSrcs: z.array(z.string()),
  }),
);
export type DerivationInfo = z.infer<typeof derivationInfoSchema>[string];

export interface Nix {
  readonly store: string;
  /** Where a store path's files are on this machine (differs from the path in a chroot store). */
  realPath(storePath: string): string;
  eval(target: Target, opts?: { signal?: AbortSignal }): Promise<unknown>;
  /** The derivation path of a target, without building it. */
  instantiate(target: Target): Promise<string>;
  build(targets: Target[], opts?: BuildOptions): Promise<BuildResult[]>;
  /** Rebuilds an already-built target and fails with NixError code `not_deterministic` if it differs. */
  check(target: Target, opts?: BuildOptions): Promise<void>;
  pathInfo(paths: string[], opts?: { recursive?: boolean; closureSize?: boolean }): Promise<ValidPathInfo[]>;
  isValid(path: string): Promise<boolean>;
  addFixed(path: string, opts: { recursive: boolean; algo: "sha256" | "sha512" }): Promise<string>;
  /** Adds a directory as a content-addressed (recursive sha256) path named after its base name. */
  addPath(dir: string): Promise<{ path: string; narHash: string }>;
  /** The NAR hash of a directory or file on disk (SRI, sha256): what `--add-fixed --recursive sha256` pins. */
  hashPath(path: string): Promise<string>;
  /** The store path a recursive sha256 fixed-output path of this name and hash would have. */
  fixedOutputPath(name: string, narHash: string): Promise<string>;
  /** `nix show-derivation` (with `recursive`, the whole closure of derivations), parsed. */
  showDerivation(drvPath: string, opts?: { recursive?: boolean }): Promise<Record<string, DerivationInfo>>;
  /** Writes a store path's NAR serialisation to a file. */
  dump(storePath: string, file: string): Promise<void>;
  /**
   * A store path's NAR serialisation as a stream (`nix-store --dump`), for serving it: `done`
   * settles when the dump ends (rejecting if it failed); `stop` ends it early.
   */
  dumpStream(storePath: string): { stream: Readable; done: Promise<void>; stop(): void };
  /** Unpacks a NAR file into a (new) directory. */
  restore(file: string, dir: string): Promise<void>;
  addRoot(storePath: string, name: string): Promise<string>;
  removeRoot(name: string): Promise<void>;
  listRoots(): Promise<{ name: string; target: string }[]>;
}

export function createNix(opts: NixOptions): Nix {
  const uid = process.getuid?.() ?? 1000;
  const store = resolveStore(opts.store, uid);
  const bin = (name: string) => (opts.binDir ? join(opts.binDir, name) : name);
  const common = () => nixOptionArgs({ store, cores: opts.cores, ...opts.distribution });
  const env: Record<string, string> = store === "daemon" ? { NIX_REMOTE: "daemon" } : {};
  const log = opts.log.child({ component: "nix" });

  const targetArgs = (t: Target): string[] =>
    "installable" in t
      ? [t.installable]
      : "expr" in t
        ? ["--impure", "--expr", t.expr, ...(t.attrs ?? [])]
        : ["--file", t.file, t.attr];

  async function nixCmd(
    args: string[],
    o: { signal?: AbortSignal; outputFile?: string; inputFile?: string } = {},
  ) {
    const full = [...args.slice(0, 1), ...common(), ...args.slice(1)];
    log.debug({ args: full }, "nix");
    try {
      return await run(
        bin(args[0] === "nix-store" ? "nix-store" : "nix"),
        args[0] === "nix-store" ? full.slice(1) : full,
        {
          env,
          ...(o.signal ? { signal: o.signal } : {}),
          ...(o.outputFile ? { outputFile: o.outputFile } : {}),
          ...(o.inputFile ? { inputFile: o.inputFile } : {}),
        },
      );
    } catch (err) {
      throw toNixError(err, opts.seedImportCommand);
    }
  }

  async function runBuild(args: string[], bo: BuildOptions): Promise<BuildResult[]> {
    const progress = new NixProgress();
    const full = [
      "build",
      ...common(),
      "--no-link",
      "--json",
      "--log-format",
      "internal-json",
      "-v",
      // Remote-only keeps its max-jobs 0: a local job count would build here after all.
      ...(bo.maxJobs && !opts.distribution?.remoteOnly ? ["--max-jobs", String(bo.maxJobs)] : []),
      ...(bo.sandboxPaths?.length ? ["--option", "extra-sandbox-paths", bo.sandboxPaths.join(" ")] : []),
      ...(bo.buildTimeoutSeconds ? ["--option", "timeout", String(bo.buildTimeoutSeconds)] : []),
      ...args,
    ];
    log.debug({ args: full }, "nix build");
    let lastEmit = 0;
    const remoteBuilds = new Map<string, number>();
    const direct = withParentDeathSignal(bin("nix"), full);
    const cmd = bo.cgroupProcs?.length
      ? {
          ...withParentDeathSignal(
            "/bin/sh",
            ["-c", ENTER_CGROUPS, "kiln-enter-cgroups", ...bo.cgroupProcs, "--", direct.file, ...direct.args],
            "TERM",
          ),
        }
      : direct;
    const r = await run(cmd.file, cmd.args, {
      env,
      reject: false,
      stderrTailLines: 80,
      ...(bo.signal ? { signal: bo.signal } : {}),
      ...(bo.timeoutMs ? { timeoutMs: bo.timeoutMs } : {}),
      onStderrLine: (line) => {
        const ev = parseNixEventLine(line);
        if (!ev) return;
        progress.apply(ev);
        if (ev.action === "start" && ev.type === ActivityType.Build) {
          const [drv, machine] = ev.fields;
          const where = typeof machine === "string" && machine ? machine : "local";
          // A remote builder's own report of the build comes back as a second, "local" build of the
          // same derivation while the remote one runs: only the first says where it ran.
          if (typeof drv === "string" && !remoteBuilds.has(drv)) {
            if (where !== "local") remoteBuilds.set(drv, ev.id);
            bo.onBuildStarted?.(drv, where);
          }
        } else if (ev.action === "stop") {
          for (const [drv, id] of remoteBuilds) if (id === ev.id) remoteBuilds.delete(drv);
        }
        if (
          bo.onLogLine &&
          ev.action === "result" &&
          (ev.type === ResultType.BuildLogLine || ev.type === ResultType.PostBuildLogLine)
        ) {
          const drv = progress.drvPathOf(ev.id);
          if (drv) bo.onLogLine(drv, String(ev.fields[0] ?? ""));
        }
        const now = Date.now();
        if (bo.onProgress && (now - lastEmit > 100 || ev.action === "stop")) {
          lastEmit = now;
          bo.onProgress(progress.snapshot());
        }
      },
    });
    bo.onProgress?.(progress.snapshot());
    if (!r.failed) return buildResultSchema.parse(JSON.parse(r.stdout));
    if (bo.cgroupProcs?.length && r.exitCode === 125) {
      throw new NixError({
        code: "build_cgroup",
        message: `could not put the build into its cgroups: ${stripAnsi(r.stderrTail).trim()}`,
        nixMessage: "",
      });
    }
    const messages = progress.messages.map(stripAnsi);
    if (r.signal || r.exitCode === undefined) {
      throw new NixError({
        code: "nix_interrupted",
        message: `nix build was stopped (${r.signal ?? "no exit code"})`,
        nixMessage: messages.join("\n"),
      });
    }
    for (const m of messages) {
      const f = parseBuilderFailure(m);
      if (f)
        throw new NixBuildError({ ...f, logTail: progress.logTail(f.drvPath).map(stripAnsi), nixMessage: m });
    }
    const text = messages.length > 0 ? messages.join("\n") : stripAnsi(r.stderrTail);
    throw classifyNixMessage(text, opts.seedImportCommand);
  }

  // A chroot store ("/some/dir" or "local?root=/some/dir") keeps /nix/store/x at <root>/nix/store/x.
  const chrootRoot = store.startsWith("/") ? store : (/^local\?(?:.*&)?root=([^&]+)/.exec(store)?.[1] ?? "");
  const nix: Nix = {
    store,
    realPath: (storePath) => (chrootRoot ? join(chrootRoot, storePath) : storePath),
    async eval(target, eo = {}) {
      const r = await nixCmd(["eval", "--json", ...targetArgs(target)], eo);
      return JSON.parse(r.stdout);
    },
    async instantiate(target) {
      const t: Target =
        "installable" in target
          ? { installable: `${target.installable}.drvPath` }
          : "expr" in target
            ? { expr: `(${target.expr}).drvPath` }
            : { file: target.file, attr: `${target.attr}.drvPath` };
      const r = await nixCmd(["eval", "--raw", ...targetArgs(t)]);
      return r.stdout.trim();
    },
    build(targets, bo = {}) {
      return runBuild(targets.flatMap(targetArgs), bo);
    },
    async check(target, bo = {}) {
      try {
        await runBuild(["--rebuild", ...targetArgs(target)], bo);
      } catch (err) {
        if (err instanceof NixError && /may not be deterministic|differs/.test(err.nixMessage)) {
          throw new NixError({
            code: "not_deterministic",
            message: `rebuilding gave different bytes: ${err.nixMessage}`,
            hint: "kiln check DIR rebuilds with variations and explains each differing file",
            nixMessage: err.nixMessage,
          });
        }
        throw err;
      }
    },
    async pathInfo(paths, po = {}) {
      if (paths.length === 0) return [];
      const r = await nixCmd([
        "path-info",
        "--json",
        ...(po.closureSize ? ["--closure-size"] : []),
        ...(po.recursive ? ["--recursive"] : []),
        ...paths,
      ]);
      const valid = parsePathInfo(r.stdout).valid;
      if (po.recursive) return valid;
      // nix path-info lists paths sorted, not in the order asked: give them in the caller's order.
      const byPath = new Map(valid.map((i) => [i.path, i]));
      return paths.flatMap((p) => byPath.get(p) ?? []);
    },
    async isValid(path) {
      const r = await run(bin("nix-store"), [...common(), "--check-validity", path], { env, reject: false });
      return !r.failed;
    },
    async addFixed(path, ao) {
      const r = await nixCmd([
        "nix-store",
        "--add-fixed",
        ...(ao.recursive ? ["--recursive"] : []),
        ao.algo,
        path,
      ]);
      return r.stdout.trim();
    },
    async addPath(dir) {
      const path = await nix.addFixed(dir, { recursive: true, algo: "sha256" });
      const [info] = await nix.pathInfo([path]);
      if (!info)
        throw new NixError({
          code: "nix_failed",
          message: `nix added ${dir} as ${path} but does not know it`,
          nixMessage: "",
        });
      return { path, narHash: info.narHash };
    },
    async hashPath(path) {
      const r = await nixCmd(["hash", "path", "--type", "sha256", "--sri", path]);
      return r.stdout.trim();
    },
    async fixedOutputPath(name, narHash) {
      // `nix store add-path --dry-run` does not exist in 2.8; evaluating a fixed-output derivation's
      // outPath computes the same store path without building or fetching anything.
      const attrs = toNix({
        name,
        system: NIX_CONSTANTS.system,
        builder: "none",
        outputHashMode: "recursive",
        outputHashAlgo: "sha256",
        outputHash: narHash,
      });
      const expr = `(derivation ${attrs}).outPath`;
      const r = await nixCmd(["eval", "--raw", "--expr", expr]);
      return r.stdout.trim();
    },
    async showDerivation(drvPath, so = {}) {
      const r = await nixCmd(["show-derivation", ...(so.recursive ? ["--recursive"] : []), drvPath]);
      return derivationInfoSchema.parse(JSON.parse(r.stdout));
    },
    async dump(storePath, file) {
      await nixCmd(["nix-store", "--dump", storePath], { outputFile: file });
    },
    dumpStream(storePath) {
      const args = [...common(), "--dump", storePath];
      const p = spawnProcess(bin("nix-store"), args, {
        // Only what nix-store needs to be found and to reach the daemon.
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", ...env },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stderr = "";
      p.child.stderr?.on("data", (d: Buffer) => {
        stderr = (stderr + d.toString()).slice(-4000);
      });
      const done = p.exited.then((e) => {
        if (e.error || e.exitCode !== 0)
          throw new NixError({
            code: "nix_failed",
            message: `nix-store --dump ${storePath} failed: ${e.error?.message ?? stripAnsi(stderr).trim()}`,
            nixMessage: stderr,
          });
      });
      const stream = p.child.stdout;
      if (!stream) throw new Error("nix-store --dump has no stdout");
      return { stream, done, stop: () => p.child.kill("SIGKILL") };
    },
    async restore(file, dir) {
      await nixCmd(["nix-store", "--restore", dir], { inputFile: file });
    },
    async addRoot(storePath, name) {
      await mkdir(opts.gcRootsDir, { recursive: true });
      const link = join(opts.gcRootsDir, safeRootName(name));
      // Already rooted there (the usual case for a rebuild): nothing to register again.
      if ((await readlink(link).catch(() => undefined)) === storePath) return link;
      await rm(link, { force: true });
      // --add-root registers an indirect root (a symlink the collector follows back to our link).
      await nixCmd(["nix-store", "--realise", storePath, "--add-root", link]);
      return link;
    },
    async removeRoot(name) {
      await rm(join(opts.gcRootsDir, safeRootName(name)), { force: true });
    },
    async listRoots() {
      let names: string[];
      try {
        names = await readdir(opts.gcRootsDir);
      } catch {
        return [];
      }
      const out: { name: string; target: string }[] = [];
      for (const name of names.sort())
        out.push({ name, target: await readlink(join(opts.gcRootsDir, name)) });
      return out;
    },
  };
  return nix;
}

function safeRootName(name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name)) throw new Error(`invalid GC root name: ${name}`);
  return name;
}

/** Turns a failed Nix subprocess into the most specific typed error. */
function toNixError(err: unknown, seedImportCommand: string): unknown {
  if (!(err instanceof ProcessError)) return err;
  if (err.reason === "spawn") {
    return new NixError({
      code: "nix_not_found",
      message: "Nix is not installed (could not start nix)",
      hint: "run `npm run setup` as root, or install Debian's nix-bin package",
      nixMessage: err.stderrTail,
    });
  }
  return classifyNixMessage(stripAnsi(err.stderrTail), seedImportCommand);
}

function classifyNixMessage(text: string, seedImportCommand: string): Error {
  if (text.includes(SEED_MISSING_MARKER)) return new SeedMissingError(seedImportCommand);
  const timedOut = /building of '([^']+)'.* timed out after (\d+) seconds/.exec(text);
  if (timedOut) {
    return new NixError({
      code: "build_timeout",
      message: `the build ran past its wall-clock limit: ${timedOut[1]} timed out after ${timedOut[2]} seconds`,
      hint: "every process of the build was killed; raise the limit with KILN_BUILD_TIMEOUT (seconds) if the build needs longer",
      nixMessage: text,
    });
  }
  const errorLines = text
    .split("\n")
    .filter((l) => !l.startsWith("warning:"))
    .join("\n")
    .trim();
  return new NixError({ code: "nix_failed", message: `nix: ${errorLines || "failed"}`, nixMessage: text });
}
