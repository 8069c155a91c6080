/**
 * The dashboard's actions: a form's fields checked with zod (as the API checks its JSON bodies),
 * the app loaded through tenancy with the need the API's route has, then the very function the
 * API's route calls (src/api/actions.ts), so a form and `kiln …` cannot do different things.
 */
import { z } from "zod";
import {
  cancelBuild,
  createAppAs,
  restartDynos,
  rollbackTo,
  scaleApp,
  setConfigVars,
} from "../api/actions.js";
import type { RouteDeps } from "../api/deps.js";
import { appFor } from "../api/tenancy.js";
import { KilnError } from "../errors.js";
import type { App } from "../store/apps.js";
import type { TokenInfo } from "../store/tokens.js";
import { describeIssues } from "../util/json.js";
import { appBuild } from "./model.js";

export function parseForm<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body);
  if (!r.success) {
    throw new KilnError({
      code: "invalid_form",
      message: `invalid form: ${describeIssues(r.error)}`,
      hint: "submit the form from the dashboard's page",
    });
  }
  return r.data;
}

const key = z.string().trim().min(1).max(256);
export const revealForm = z.object({ key });
const createForm = z.object({ name: z.string().trim().min(1).max(64) });
const rollbackForm = z.object({ version: z.coerce.number().int().positive() });
const scaleForm = z.object({ type: z.string().min(1).max(63), quantity: z.coerce.number().int() });
const setForm = z.object({ key, value: z.string().max(64 * 1024) });
const unsetForm = z.object({ key });
const restartForm = z.object({ dyno: z.string().min(1).max(80).optional() });

/** What an action is given: the deps, the session's token, the app's name (from the URL), the form. */
export interface Act {
  deps: RouteDeps;
  caller: TokenInfo;
  app: string;
  body: unknown;
}

const writable = (a: Act): App => appFor(a.deps.db, a.caller, a.app, "write");

export const createFromForm = (deps: RouteDeps, caller: TokenInfo, body: unknown): App =>
  createAppAs(deps.db, caller, parseForm(createForm, body));

export async function rollbackFromForm(a: Act): Promise<number> {
  const app = writable(a);
  return (await rollbackTo(a.deps, app, parseForm(rollbackForm, a.body).version)).version;
}

export async function scaleFromForm(a: Act): Promise<void> {
  const app = writable(a);
  await scaleApp(a.deps, { caller: a.caller, app, updates: [parseForm(scaleForm, a.body)] });
}

/** Sets or (unset) removes one config var; the release it made, if the app had one. */
export async function configFromForm(a: Act & { unset?: boolean }): Promise<number | undefined> {
  const app = writable(a);
  const patch: Record<string, string | null> = {};
  if (a.unset) patch[parseForm(unsetForm, a.body).key] = null;
  else {
    const f = parseForm(setForm, a.body);
    patch[f.key] = f.value;
  }
  return (await setConfigVars(a.deps, app, patch)).release?.version;
}

export async function restartFromForm(a: Act): Promise<number> {
  const app = writable(a);
  return restartDynos(a.deps, app, parseForm(restartForm, a.body).dyno);
}

export async function cancelFromForm(a: Act & { build: string }): Promise<void> {
  await cancelBuild(a.deps, appBuild(a.deps.db, a.caller, a.app, a.build, "write").build);
}
