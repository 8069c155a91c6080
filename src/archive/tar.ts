/**
 * The one home of the `tar` library. Archives kiln writes are deterministic: entries in byte order,
 * one fixed mtime, numeric owner 0 and no user/group names, modes normalised to 0755/0644, no
 * pax headers that vary, and gzip without a name or timestamp. Same tree in → same bytes out.
 */
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import * as tar from "tar";

export interface DeterministicTarOptions {
  /** Seconds since the epoch written as every entry's mtime (SOURCE_DATE_EPOCH). */
  mtime: number;
  /** Entry name prefix (e.g. "./" or "app/"); "" puts entries at the top level. */
  prefix?: string;
  gzipLevel?: number;
}

/** All paths under `root`, relative, sorted by their UTF-8 bytes, directories before their contents. */
export async function listTree(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (rel: string) => {
    const names = (await readdir(join(root, rel))).sort(compareBytes);
    for (const name of names) {
      const p = rel ? `${rel}/${name}` : name;
      out.push(p);
      const st = await lstat(join(root, p));
      if (st.isDirectory()) await walk(p);
    }
  };
  await walk("");
  return out;
}

export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Writes `dir`'s contents to `file` as a deterministic tar.gz. */
export async function writeDeterministicTarGz(
  dir: string,
  file: string,
  opts: DeterministicTarOptions,
): Promise<void> {
  const entries = await listTree(dir);
  const mtime = new Date(opts.mtime * 1000);
  await tar.create(
    {
      file,
      cwd: dir,
      gzip: { level: opts.gzipLevel ?? 9 },
      portable: true,
      noDirRecurse: true,
      follow: false,
      mtime,
      prefix: opts.prefix ?? "",
      // `portable` already drops uid/gid/uname/gname/atime/ctime (written as 0); modes are
      // normalised here, before the header is made: only the executable bit survives, as in a NAR.
      onWriteEntry: (entry) => {
        const st = entry.stat;
        if (!st) return;
        const exec = st.isDirectory() || (st.mode & 0o100) !== 0;
        st.mode = (st.mode & ~0o7777) | (exec ? 0o755 : 0o644);
      },
    },
    entries,
  );
}

/** Extracts a tar.gz into `dir`, dropping `strip` leading path components; refuses paths that escape. */
export async function extractTarGz(file: string, dir: string, opts: { strip?: number } = {}): Promise<void> {
  await tar.extract({ file, cwd: dir, strip: opts.strip ?? 0, preservePaths: false, preserveOwner: false });
}

export interface TarEntryInfo {
  path: string;
  type: string;
  size: number;
  mode: number;
  mtime: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
}

/** Lists a tar.gz's entries — for checks and tests. */
export async function listTarGz(file: string): Promise<TarEntryInfo[]> {
  const out: TarEntryInfo[] = [];
  await tar.list({
    file,
    onReadEntry: (e) => {
      out.push({
        path: e.path,
        type: e.type,
        size: e.size ?? 0,
        mode: e.mode ?? 0,
        mtime: e.mtime ? Math.floor(e.mtime.getTime() / 1000) : 0,
        uid: e.uid ?? 0,
        gid: e.gid ?? 0,
        uname: e.uname ?? "",
        gname: e.gname ?? "",
      });
    },
  });
  return out;
}
