// Host-only (the build sandbox's tools import tar.ts, which must not depend on kiln's error types).
import * as tar from "tar";
import { KilnError } from "../errors.js";

/**
 * Extracts an untrusted tar.gz (an uploaded app source): only files, directories and symlinks;
 * no absolute paths, no `..`, no devices, fifos or hard links; at most `maxBytes` unpacked. Any
 * violation is an error naming the entry, not a silent skip. (Symlinks that point out of the
 * tree are refused later, by the source snapshot.)
 */
export async function extractUntrustedTarGz(
  file: string,
  dir: string,
  opts: { maxBytes: number },
): Promise<void> {
  let total = 0;
  let problem: KilnError | undefined;
  const refuse = (path: string, why: string) => {
    problem ??= new KilnError({
      code: "source_unsafe_entry",
      message: `the source archive's entry ${JSON.stringify(path)} ${why}`,
      hint: "upload a plain tar.gz of the app directory (git archive or tar czf)",
    });
  };
  await tar
    .extract({
      file,
      cwd: dir,
      preservePaths: false,
      preserveOwner: false,
      strict: true,
      filter: (path, entry) => {
        if (problem) return false;
        const type = (entry as { type?: string }).type ?? "File";
        total += (entry as { size?: number }).size ?? 0;
        if (path.startsWith("/") || path.split("/").includes("..")) refuse(path, "leaves the app directory");
        else if (!["File", "OldFile", "ContiguousFile", "Directory", "SymbolicLink"].includes(type))
          refuse(path, `is a ${type}, which an app source may not contain`);
        else if (total > opts.maxBytes)
          refuse(path, `takes the unpacked source over ${Math.round(opts.maxBytes / 1048576)} MiB`);
        return !problem;
      },
    })
    .catch((err: Error) => {
      problem ??= new KilnError({
        code: "source_invalid_archive",
        message: `the source is not a readable tar.gz: ${err.message}`,
        hint: "upload a tar.gz of the app directory (git archive --format=tar.gz HEAD, or tar czf)",
      });
    });
  if (problem) throw problem;
}
