/**
 * Which package manager installs an app: exactly one lock file (package-lock.json,
 * npm-shrinkwrap.json, yarn.lock or pnpm-lock.yaml), or a refusal naming every one found (as
 * Heroku's buildpack refuses); a `packageManager` field that names another manager than the lock
 * is refused too. yarn.lock is yarn classic's (v1 text) or yarn berry's (YAML with __metadata).
 */
import { KilnError } from "../errors.js";

export type PackageManagerKind = "npm" | "yarn" | "berry" | "pnpm";

export const LOCK_FILES = [
  "package-lock.json",
  "npm-shrinkwrap.json",
  "yarn.lock",
  "pnpm-lock.yaml",
] as const;
export type LockFileName = (typeof LOCK_FILES)[number];

const MANAGER_OF: Record<LockFileName, string> = {
  "package-lock.json": "npm",
  "npm-shrinkwrap.json": "npm",
  "yarn.lock": "yarn",
  "pnpm-lock.yaml": "pnpm",
};

/** The one lock file among those present, or undefined when there is none. */
export function chooseLockFile(present: readonly LockFileName[]): LockFileName | undefined {
  const found = LOCK_FILES.filter((f) => present.includes(f));
  if (found.length <= 1) return found[0];
  const managers = [...new Set(found.map((f) => MANAGER_OF[f]))];
  const keepSteps = found
    .map(
      (keep) =>
        `if you use ${MANAGER_OF[keep]} (${keep}): git rm ${found.filter((f) => f !== keep).join(" ")}`,
    )
    .join("; ");
  throw new KilnError({
    code: "multiple_lockfiles",
    message:
      managers.length > 1
        ? `the app has lock files of more than one package manager: ${found.join(", ")}; only one can install its dependencies`
        : `the app has both ${found.join(" and ")}; npm would use npm-shrinkwrap.json and ignore package-lock.json`,
    hint: `keep the lock file of the package manager you use and delete the rest (${keepSteps}), then commit; add the others to .gitignore so they are not committed again`,
  });
}

/** `packageManager: "yarn@4.5.3+sha512.…"` → { name: "yarn", version: "4.5.3" }. */
export function parsePackageManagerField(
  value: string | undefined,
): { name: string; version: string } | undefined {
  if (!value) return undefined;
  const m = /^(npm|yarn|pnpm)@([^+\s]+)/.exec(value.trim());
  return m ? { name: m[1] ?? "", version: m[2] ?? "" } : undefined;
}

/** The lock's manager against package.json's `packageManager` (corepack's field). */
export function checkPackageManagerField(
  kind: PackageManagerKind,
  lockFile: LockFileName,
  packageManager: string | undefined,
): void {
  const pm = parsePackageManagerField(packageManager);
  if (!pm) return;
  const major = Number.parseInt(pm.version, 10);
  const declared = pm.name === "yarn" ? (major >= 2 ? "berry" : "yarn") : pm.name;
  if (declared === kind) return;
  const lockSays =
    kind === "berry"
      ? "a yarn 2+ (berry) yarn.lock"
      : kind === "yarn"
        ? "a yarn 1 (classic) yarn.lock"
        : lockFile;
  throw new KilnError({
    code: "package_manager_conflict",
    message: `package.json says "packageManager": "${pm.name}@${pm.version}", but the app's lock file is ${lockSays}`,
    hint:
      pm.name === "yarn" && (kind === "yarn" || kind === "berry")
        ? `run yarn install with yarn ${pm.version} and commit yarn.lock, or set packageManager to the yarn that wrote the lock`
        : `install with ${pm.name} and commit its lock file (deleting ${lockFile}), or change packageManager to the manager that wrote ${lockFile}`,
  });
}

export function lockMissingError(): KilnError {
  return new KilnError({
    code: "lockfile_missing",
    message:
      "package.json has dependencies but there is no package-lock.json (nor npm-shrinkwrap.json, yarn.lock or pnpm-lock.yaml)",
    hint: "create it with `npm install --package-lock-only` (or yarn install, or pnpm install --lockfile-only) and commit it: kiln installs exactly what the lock pins",
  });
}
