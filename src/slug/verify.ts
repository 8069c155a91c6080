/** Checking a slug file kiln did not build here (an imported release) before it is released. */
import { KilnError } from "../errors.js";
import { hashFile } from "../util/fs.js";

/** An imported release's slug must be on this machine, with the sha256 it claims. */
export async function assertSlugFile(path: string, sha256: string): Promise<void> {
  const got = await hashFile(path, "sha256").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT" || err.code === "EISDIR" || err.code === "ENOTDIR") return undefined;
    throw err;
  });
  if (got !== sha256) {
    throw new KilnError({
      code: "invalid_slug",
      message:
        got === undefined
          ? `${path} is not a file on this machine`
          : `${path} has sha256 ${got}, not ${sha256}`,
      hint: "import a slug from this machine's Nix store (built through its daemon) with its own sha256",
    });
  }
}
