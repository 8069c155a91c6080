/**
 * Test-only failures (KILN_TEST_FAIL_STAGE=STAGE or STAGE:hang), made with real parts wherever it is
 * cheap: a failing or silent Nix derivation for stage0, stage1 and the comparison (nix/bootstrap's
 * `fail`), a hosted kiln whose web process crashes or never answers for the platform, a body the API
 * rejects or that never ends for the upload, a source whose build fails or goes silent for stage2
 * and stage3. Everything the bootstrap does after that (stopping, reporting, the exit status) is the
 * ordinary path.
 */
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { listTree, writeTarGzOf } from "../archive/tar.js";
import type { BootstrapStage } from "./watch.js";

export interface Injected {
  stage: BootstrapStage;
  hang: boolean;
  /** As given (nix/bootstrap's `fail`). */
  spec: string;
}

export function parseInjected(spec: string | undefined): Injected | undefined {
  if (!spec) return undefined;
  const [stage, mode] = spec.split(":");
  return { stage: stage as BootstrapStage, hang: mode === "hang", spec };
}

export const injectedAt = (inj: Injected | undefined, stage: BootstrapStage) =>
  inj?.stage === stage ? inj : undefined;

/**
 * The hosted control plane's web command: exits at once, or lives without ever listening. `marker`
 * (the data directory) stays in the process's command line, so a test can look for leftovers.
 */
export function injectedWebCommand(inj: Injected, marker: string): string {
  return inj.hang
    ? `sleep 86400; echo 'injected hang for ${marker}'`
    : `echo 'injected failure (KILN_TEST_FAIL_STAGE=${inj.spec}) for ${marker}' >&2; exit 1`;
}

/** An upload the API refuses (not a gzip), or one that sends a few bytes and then nothing, forever. */
export function injectedUpload(inj: Injected): { body: BodyInit; type: string } {
  if (!inj.hang) return { body: "this is not a tarball\n", type: "application/gzip" };
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new Uint8Array([0x1f, 0x8b]));
    },
    // Never enqueues more and never closes: the request stays open until it is aborted.
    pull: () => new Promise<void>(() => {}),
  });
  return { body, type: "application/gzip" };
}

/**
 * A small Node app whose build step fails, or sleeps silently (with `marker` in its command line).
 * The step is a file of its own, so package.json and the lock, hence the app's dependencies
 * derivation, stay the same from one run to the next (cached after the first).
 */
export async function injectedSource(inj: Injected, tmpRoot: string, marker: string): Promise<string> {
  await mkdir(tmpRoot, { recursive: true });
  const dir = await mkdtemp(join(tmpRoot, "injected-"));
  const tree = join(dir, "app");
  await mkdir(tree);
  const name = "kiln-injected";
  await writeFile(
    join(tree, "package.json"),
    `${JSON.stringify({ name, version: "1.0.0", private: true, engines: { node: ">=20" }, scripts: { "heroku-postbuild": "sh ./injected.sh" } }, null, 2)}\n`,
  );
  await writeFile(
    join(tree, "package-lock.json"),
    `${JSON.stringify({ name, version: "1.0.0", lockfileVersion: 3, requires: true, packages: { "": { name, version: "1.0.0" } } }, null, 2)}\n`,
  );
  await writeFile(
    join(tree, "injected.sh"),
    inj.hang
      ? `exec sh -c "sleep 86400; echo 'injected hang for ${marker}'"\n`
      : `echo 'injected failure (KILN_TEST_FAIL_STAGE=${inj.spec})'; exit 1\n`,
  );
  const file = join(dir, "source.tar.gz");
  await writeTarGzOf(tree, await listTree(tree), file);
  return file;
}
