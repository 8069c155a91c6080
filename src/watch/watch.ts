/**
 * Watching an app directory (chokidar, the one home of that dependency): changes are collected and
 * reported once they settle (`debounceMs` without a new one), so saving ten files is one rebuild.
 * `.git` and `node_modules` are not watched: neither goes into a build.
 */
import { watch } from "chokidar";

export interface DirWatcher {
  close(): Promise<void>;
}

export function watchDir(
  dir: string,
  opts: { debounceMs: number; onSettled: (changed: string[]) => void },
): DirWatcher {
  const changed = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  const watcher = watch(dir, {
    ignoreInitial: true,
    ignored: (path) => /(^|\/)(\.git|node_modules)(\/|$)/.test(path),
  });
  watcher.on("all", (_event, path) => {
    changed.add(path);
    clearTimeout(timer);
    timer = setTimeout(() => {
      const list = [...changed].sort();
      changed.clear();
      opts.onSettled(list);
    }, opts.debounceMs);
  });
  return {
    async close() {
      clearTimeout(timer);
      await watcher.close();
    },
  };
}
