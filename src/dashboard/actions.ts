/**
 * The dashboard's actions, each what the API's route does (src/api/server.ts): the same
 * permission (tenancy's "write"), the same quotas, the same store calls, and the same hand-offs
 * to the dynos and the hosting platform afterwards. Form fields are validated with zod as the
 * API validates its JSON bodies.
 */
import { z } from "zod";
import type { ApiDeps } from "../api/server.js";
import { appFor, assertDynoQuota, type Quotas } from "../api/tenancy.js";
import { KilnError } from "../errors.js";
import { scaleFormation } from "../store/formation.js";
import { rollback } from "../store/releases.js";
import type { TokenInfo } from "../store/tokens.js";
import { describeIssues } from "../util/json.js";

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

const rollbackForm = z.object({ version: z.coerce.number().int().positive() });
const scaleForm = z.object({
  type: z.string().min(1).max(63),
  quantity: z.coerce.number().int(),
});
export const revealForm = z.object({ key: z.string().min(1).max(256) });

export async function rollbackApp(
  deps: ApiDeps,
  caller: TokenInfo,
  appName: string,
  body: unknown,
): Promise<number> {
  const app = appFor(deps.db, caller, appName, "write");
  const r = rollback(deps.db, app.id, parseForm(rollbackForm, body).version);
  await deps.platform?.release(app.name, r);
  deps.dynos?.reconcile(app.id);
  return r.version;
}

export async function scaleApp(
  deps: ApiDeps & { quotas: Quotas },
  caller: TokenInfo,
  appName: string,
  body: unknown,
): Promise<void> {
  const app = appFor(deps.db, caller, appName, "write");
  const { type, quantity } = parseForm(scaleForm, body);
  const updates = [{ type, quantity }];
  assertDynoQuota(deps.db, { caller, app, updates, quotas: deps.quotas });
  scaleFormation(deps.db, app.id, updates);
  deps.dynos?.reconcile(app.id);
  await deps.platform?.scale(app.name, updates);
}
