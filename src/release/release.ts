/**
 * Release policy: what a new release is made of. src/store/releases.ts numbers and records
 * releases; this says what goes into one, so a build, an imported slug, kiln's own stage1 and a
 * config change cannot drift apart:
 *   - a new slug runs with its buildpacks' config defaults under the app's own config vars (the
 *     app's win, as on Heroku; for an imported release, the platform's own wiring wins);
 *   - a config change keeps the current slug and applies the change to the current release's
 *     config (buildpack defaults included).
 * Rolling back is store/releases.ts's `rollback` (vN's slug and config as they were).
 */
import { getConfig, patchConfig } from "../store/apps.js";
import type { Db } from "../store/db.js";
import { createRelease, currentRelease, type NewRelease, type Release } from "../store/releases.js";

export interface SlugRelease extends Omit<NewRelease, "config"> {
  /** Config vars that come with the slug (the buildpacks' release step): defaults, under the app's. */
  defaults: Record<string, string>;
}

/** A release of a new slug (a build, an imported release, bootstrap's stage1). */
export function releaseSlug(db: Db, r: SlugRelease): Release {
  const { defaults, ...rest } = r;
  return createRelease(db, { ...rest, config: { ...defaults, ...getConfig(db, r.appId) } });
}

/**
 * Sets (a string) and unsets (null) an app's config vars and, if it has a release, makes the next
 * one with the change applied, in one transaction.
 */
export function changeConfig(
  db: Db,
  appId: string,
  patch: Record<string, string | null>,
): { config: Record<string, string>; release: Release | undefined } {
  const keys = Object.keys(patch);
  const { config, result } = patchConfig(db, appId, patch, (cfg) => {
    const cur = currentRelease(db, appId);
    if (!cur) return undefined;
    const set = keys.filter((k) => patch[k] !== null);
    const unset = keys.filter((k) => patch[k] === null);
    const description = [
      set.length ? `Set ${set.join(", ")}` : "",
      unset.length ? `Unset ${unset.join(", ")}` : "",
    ]
      .filter(Boolean)
      .join("; ");
    const next = { ...cur.config };
    for (const k of unset) delete next[k];
    for (const k of set) next[k] = cfg[k] as string;
    // Everything else (slug, process types, build) as the current release has it.
    const { id: _id, version: _version, createdAt: _createdAt, ...same } = cur;
    return createRelease(db, { ...same, config: next, description });
  });
  return { config, release: result };
}
