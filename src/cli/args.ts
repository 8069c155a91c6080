/** Option parsers shared by several commands. */
import { KilnError } from "../errors.js";
import { assertEnvVars } from "../util/envVars.js";

/** For repeatable options: each use appends. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** NAME=value pairs (from repeated -e) into an object. */
export function parseEnv(pairs: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const p of pairs) {
    const i = p.indexOf("=");
    if (i <= 0)
      throw new KilnError({ code: "usage", message: `bad --env "${p}"`, hint: "write it as NAME=value" });
    env[p.slice(0, i)] = p.slice(i + 1);
  }
  assertEnvVars(env);
  return env;
}

/** A positive number option (`--port 5080`, `--concurrency 4`). */
export function positive(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0)
      throw new KilnError({
        code: "usage",
        message: `${name} must be a positive number`,
        hint: `e.g. ${name} 4`,
      });
    return n;
  };
}
