/** Option parsers shared by several commands. */
import { KilnError } from "../errors.js";

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
  return env;
}
