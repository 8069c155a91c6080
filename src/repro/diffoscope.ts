/**
 * diffoscope's HTML report of two differing slugs, where diffoscope is installed (Debian's
 * diffoscope-minimal; `npm run setup` installs it): kiln's own explanation is in the check report,
 * diffoscope's goes deeper into formats kiln does not know.
 */
import { run } from "../process/run.js";

let available: Promise<boolean> | undefined;

export function diffoscopeAvailable(): Promise<boolean> {
  available ??= run("diffoscope", ["--version"], { reject: false, timeoutMs: 30_000 }).then(
    (r) => !r.failed,
    () => false,
  );
  return available;
}

/** Writes diffoscope's HTML comparison of `a` and `b` to `html`; undefined when it could not. */
export async function diffoscopeHtml(
  a: string,
  b: string,
  html: string,
  opts: { signal?: AbortSignal } = {},
): Promise<string | undefined> {
  if (!(await diffoscopeAvailable())) return undefined;
  // Exit 1 means "they differ" (the report is written); 2 is diffoscope's own failure.
  const r = await run("diffoscope", ["--no-progress", "--html", html, a, b], {
    reject: false,
    timeoutMs: 10 * 60_000,
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  return r.exitCode === 0 || r.exitCode === 1 ? html : undefined;
}
