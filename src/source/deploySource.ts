/**
 * What `kiln deploy` uploads: in a git checkout, the files git knows or would add (tracked and
 * untracked, minus .gitignore's); elsewhere every file but `.git` and `node_modules`; in both cases
 * without what `.slugignore` names (as the build would drop them anyway).
 */
import { join } from "node:path";
import { listTree } from "../archive/tar.js";
import { run } from "../process/run.js";
import { slugignoreMatcher } from "../sandboxtools/slugignore.js";
import { readTextBeneath } from "../util/beneath.js";
import { exists } from "../util/fs.js";

export async function deployFiles(dir: string): Promise<string[]> {
  let files: string[];
  if (await exists(join(dir, ".git"))) {
    const r = await run("git", ["-C", dir, "ls-files", "-z", "--cached", "--others", "--exclude-standard"]);
    files = r.stdout.split("\0").filter(Boolean);
  } else {
    files = (await listTree(dir)).filter(
      (p) => !/(^|\/)\.git(\/|$)/.test(p) && !/^node_modules(\/|$)/.test(p),
    );
  }
  const ignore = slugignoreMatcher((await readTextBeneath(dir, ".slugignore")) ?? "");
  return files.filter((f) => !ignore(f)).sort();
}
