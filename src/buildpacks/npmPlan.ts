/**
 * npm locks that nix/build/node-deps.nix does not plan (it plans the plain v2/v3 package-lock.json
 * that kiln's own flake needs): lockfile v1 (npm 5–6: a nested `dependencies` tree),
 * npm-shrinkwrap.json, and workspaces. kiln plans them here and hands the plan to Nix in the spec,
 * with the lock rewritten for an offline `npm ci` (every `resolved` a kiln.invalid URL: npm finds
 * each tarball in its prefilled cache by integrity and never asks a registry).
 */
import { z } from "zod";
import { parseJsonWith } from "../util/json.js";
import { type PackageLock, packageNameFromKey } from "./nodejs.js";
import { finishPins, onLinuxX64, pinContext, pinEntry, type Tarball } from "./pin.js";

export const OFFLINE_REGISTRY = "https://kiln.invalid/";

interface V1Dep {
  version?: string;
  resolved?: string;
  integrity?: string;
  bundled?: boolean;
  optional?: boolean;
  dependencies?: Record<string, V1Dep>;
  [k: string]: unknown;
}
const v1DepSchema: z.ZodType<V1Dep> = z.lazy(() =>
  z.looseObject({
    version: z.string().optional(),
    resolved: z.string().optional(),
    integrity: z.string().optional(),
    bundled: z.boolean().optional(),
    optional: z.boolean().optional(),
    dependencies: z.record(z.string(), v1DepSchema).optional(),
  }),
);
const anyLockSchema = z.looseObject({
  lockfileVersion: z.number().int(),
  packages: z.record(z.string(), z.looseObject({})).optional(),
  dependencies: z.record(z.string(), v1DepSchema).optional(),
});
export type AnyNpmLock = z.infer<typeof anyLockSchema>;

export function parseAnyNpmLock(text: string, file: string): AnyNpmLock {
  return parseJsonWith(text, anyLockSchema, {
    file,
    code: "invalid_app",
    invalid: "is not what npm writes",
    jsonHint: "regenerate it with: npm install --package-lock-only",
    schemaHint: "regenerate it with: npm install --package-lock-only",
  });
}

/** A v1 `version` that names another package: `npm:real@1.2.3`. */
function aliasOf(name: string, version: string | undefined): { name: string; version: string | undefined } {
  const m = version ? /^npm:((?:@[^/]+\/)?[^@]+)@(.+)$/.exec(version) : null;
  return m ? { name: m[1] ?? name, version: m[2] } : { name, version };
}

function offlineUrl(name: string, version: string): string {
  return `${OFFLINE_REGISTRY}${name}/-/${name.slice(name.lastIndexOf("/") + 1)}-${version}.tgz`;
}

/** Whether a v2/v3 lock key is a workspace (the app's own folder) rather than an installed package. */
function isWorkspaceKey(key: string): boolean {
  return key !== "" && !key.startsWith("node_modules/") && !key.includes("/node_modules/");
}

/** The lock's workspace folders (v2/v3): its keys that are the app's own directories. */
export function npmWorkspaceDirs(lock: AnyNpmLock): string[] {
  return Object.keys(lock.packages ?? {})
    .filter(isWorkspaceKey)
    .sort();
}

/**
 * The tarballs a v1, shrinkwrap or workspace lock needs on linux-x64, and the lock as the
 * dependency phase sees it (offline `resolved` URLs). Refuses, by entry, what cannot be pinned.
 */
export function planNpmLock(
  lock: AnyNpmLock,
  opts: { file: string; registry: string; allow?: readonly string[] },
): { tarballs: Tarball[]; offlineLock: AnyNpmLock } {
  const ctx = pinContext(opts.registry, opts.allow ?? []);
  const offline: AnyNpmLock = structuredClone(lock);
  if (lock.lockfileVersion >= 2 && lock.packages) {
    const packages = offline.packages as PackageLock["packages"];
    for (const [key, entry] of Object.entries(packages)) {
      if (key === "" || isWorkspaceKey(key) || entry.inBundle) continue;
      if (entry.link) {
        // A workspace's link (into the app's own tree) is fine; a link anywhere else is not source.
        const target = typeof entry.resolved === "string" ? entry.resolved : "";
        if (!target || target.startsWith("..") || target.startsWith("/") || !(target in packages))
          ctx.problems.push(
            `${key}: a linked package outside the app's workspaces (${target || "no target"})`,
          );
        continue;
      }
      if (entry.optional && !onLinuxX64(entry)) {
        delete entry.resolved;
        continue;
      }
      const name = packageNameFromKey(key, entry);
      pinEntry(ctx, {
        where: key,
        name,
        version: entry.version,
        resolved: entry.resolved,
        integrity: entry.integrity,
      });
      if (entry.version) entry.resolved = offlineUrl(name, entry.version);
    }
  } else {
    const walk = (deps: Record<string, V1Dep> | undefined, at: string) => {
      for (const [depName, dep] of Object.entries(deps ?? {})) {
        const where = `${at}${depName}`;
        if (!dep.bundled) {
          const { name, version } = aliasOf(depName, dep.version);
          if (version && /^(git|github:|file:|link:|https?:)/.test(version) && !dep.integrity) {
            ctx.problems.push(
              `${where}: ${version.split("#")[0]} — git and file dependencies have no pinned tarball; publish the package or vendor it`,
            );
          } else {
            pinEntry(ctx, { where, name, version, resolved: dep.resolved, integrity: dep.integrity });
            if (version) dep.resolved = offlineUrl(name, version);
          }
        }
        walk(dep.dependencies, `${where} > `);
      }
    };
    walk(offline.dependencies, "");
  }
  return { tarballs: finishPins(ctx, opts.file), offlineLock: offline };
}
