/**
 * kiln's build tool: runs inside the Nix build sandbox (bubblewrap, stack-build as /) and turns
 * /app into a slug with the buildpacks under /kiln/buildpacks (Heroku's classic contract):
 *
 *   detect   bin/detect BUILD_DIR            (after .slugignore is applied)
 *   compile  bin/compile BUILD_DIR CACHE_DIR ENV_DIR, each after sourcing earlier `export` files
 *   release  bin/release BUILD_DIR           (YAML), merged, then the Procfile
 *   pack     a deterministic slug.tgz, release.json and build.json in /kiln/out
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { copyWritable, exists } from "./fsx.js";
import { packSlug, SlugTooLargeError } from "./pack.js";
import { parseProcfile } from "./procfile.js";
import { killLeftovers } from "./reap.js";
import { mergeReleases, parseReleaseYaml, type ReleaseInfo } from "./release.js";
import { applySlugignore } from "./slugignore.js";
import { runPhase, say } from "./spawn.js";

export interface SandboxSpec {
  app: string;
  sourceHash: string;
  sourceDateEpoch: number;
  slugMaxBytes: number;
  env: Record<string, string>;
  buildpacks: { name: string; version: string }[];
  /** Whose CACHE_DIR the dependencies phase's output (/kiln/deps) becomes, or null. */
  depsIndex: number | null;
  /**
   * Test-only (nix/bootstrap's `nondeterministic`): write the wall-clock time into the slug, so that
   * the self-hosting fixed-point check has a real difference to find and name.
   */
  testNondeterministic?: boolean;
  /** A reproducibility check's build (nix/build/variations.json): the app elsewhere than /app. */
  buildDir?: string;
  /** …and its files created in reverse order, so that directory listings come out differently. */
  fsOrder?: "sorted" | "reversed" | "";
}

const KILN = "/kiln";

class BuildFailure extends Error {}

async function build(spec: SandboxSpec): Promise<void> {
  const out = join(KILN, "out");
  await mkdir(out, { recursive: true });
  const appDir = spec.buildDir || "/app";
  // The app and the caches live in memory (tmpfs); the inputs are read-only binds.
  await copyWritable(join(KILN, "source"), appDir, {
    order: spec.fsOrder === "reversed" ? "reversed" : "sorted",
  });
  if (spec.depsIndex !== null)
    await copyWritable(join(KILN, "deps"), join(KILN, "cache", String(spec.depsIndex)));

  const slugignore = join(appDir, ".slugignore");
  if (await exists(slugignore)) {
    const removed = await applySlugignore(appDir, await readFile(slugignore, "utf8"));
    say(
      "detect",
      `.slugignore removed ${removed.length} path${removed.length === 1 ? "" : "s"}${removed.length ? `: ${removed.slice(0, 5).join(", ")}${removed.length > 5 ? ", …" : ""}` : ""}`,
    );
  }

  const envDir = join(KILN, "env");
  await mkdir(envDir, { recursive: true });
  for (const [k, v] of Object.entries(spec.env)) await writeFile(join(envDir, k), v);

  // Buildpacks run from writable copies: the chain protocol has each one write `export` in its dir.
  const dirs: string[] = [];
  for (const [i] of spec.buildpacks.entries()) {
    const dir = join("/tmp/buildpacks", String(i));
    await copyWritable(join(KILN, "buildpacks", String(i)), dir);
    dirs.push(dir);
  }

  const detected: string[] = [];
  for (const [i, bp] of spec.buildpacks.entries()) {
    const r = await runPhase("detect", join(dirs[i] as string, "bin", "detect"), [appDir], {
      cwd: appDir,
      capture: true,
    });
    if (r.code !== 0)
      throw new BuildFailure(`buildpack ${bp.name} does not detect this app (bin/detect exited ${r.code})`);
    const name = r.stdout.trim().split("\n")[0] || bp.name;
    detected.push(name);
    say("detect", `${bp.name} ${bp.version}: ${name}`);
  }

  const exports: string[] = [];
  for (const [i, bp] of spec.buildpacks.entries()) {
    const dir = dirs[i] as string;
    say("compile", `-----> ${detected[i]} app detected (buildpack ${bp.name})`);
    const sourceExports = exports.map((e) => `. '${e}'`).join("; ");
    const script = `${sourceExports}${sourceExports ? "; " : ""}exec "$0" "$@"`;
    const cacheDir = join(KILN, "cache", String(i));
    await mkdir(cacheDir, { recursive: true });
    const r = await runPhase(
      "compile",
      "bash",
      ["-c", script, join(dir, "bin", "compile"), appDir, cacheDir, envDir],
      { cwd: appDir },
    );
    if (r.code !== 0)
      throw new BuildFailure(`buildpack ${bp.name}: bin/compile failed with exit code ${r.code}`);
    const exportFile = join(dir, "export");
    if (await exists(exportFile)) exports.push(exportFile);
  }

  const releases: ReleaseInfo[] = [];
  for (const [i, bp] of spec.buildpacks.entries()) {
    const r = await runPhase("release", join(dirs[i] as string, "bin", "release"), [appDir], {
      cwd: appDir,
      capture: true,
    });
    if (r.code !== 0)
      throw new BuildFailure(`buildpack ${bp.name}: bin/release failed with exit code ${r.code}`);
    releases.push(parseReleaseYaml(r.stdout, bp.name));
  }
  let procfile: Record<string, string> | undefined;
  const procfilePath = join(appDir, "Procfile");
  if (await exists(procfilePath)) {
    const p = parseProcfile(await readFile(procfilePath, "utf8"));
    if (p.errors.length > 0)
      throw new BuildFailure(`Procfile: ${p.errors.map((e) => `line ${e.line}: ${e.reason}`).join("; ")}`);
    procfile = p.processes;
  }
  const release = mergeReleases(releases, procfile);
  for (const [name, cmd] of Object.entries(release.processTypes)) say("release", `${name}: ${cmd}`);

  if (spec.testNondeterministic) {
    await writeFile(join(appDir, ".kiln-build-time"), `${new Date().toISOString()}\n`);
    say("pack", "test switch: wrote the current time into .kiln-build-time (this slug is not reproducible)");
  }
  const killed = await killLeftovers();
  if (killed > 0)
    say(
      "pack",
      `stopped ${killed} process${killed === 1 ? "" : "es"} the build left running, before packing`,
    );
  say("pack", "packing the slug");
  const slug = await packSlug(appDir, join(out, "slug.tgz"), {
    mtime: spec.sourceDateEpoch,
    maxBytes: spec.slugMaxBytes,
  });
  say("pack", `slug ${slug.sha256} (${(slug.bytes / 1048576).toFixed(1)} MB, ${slug.files} files)`);

  await writeFile(join(out, "release.json"), `${JSON.stringify(release, null, 2)}\n`);
  const buildInfo = {
    app: spec.app,
    sourceHash: spec.sourceHash,
    buildpacks: spec.buildpacks.map((bp, i) => ({ ...bp, detected: detected[i] })),
    slug,
    processTypes: release.processTypes,
  };
  await writeFile(join(out, "build.json"), `${JSON.stringify(buildInfo, null, 2)}\n`);
}

async function main(): Promise<void> {
  const specFile = process.argv[2];
  if (!specFile) throw new BuildFailure("usage: main.js SPEC.json");
  const spec = JSON.parse(await readFile(specFile, "utf8")) as SandboxSpec;
  await build(spec);
}

main().catch((err: unknown) => {
  const msg =
    err instanceof BuildFailure || err instanceof SlugTooLargeError
      ? err.message
      : err instanceof Error
        ? (err.stack ?? err.message)
        : String(err);
  for (const line of msg.split("\n")) say("error", line);
  process.exit(1);
});
