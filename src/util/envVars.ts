/**
 * What a process environment can hold, checked before a config var is stored: a value with a NUL
 * byte (or a lone UTF-16 surrogate, which has no UTF-8 form) cannot be passed to execve, and one
 * stored anyway makes every dyno of the app fail to start. Names are POSIX's portable ones, as a
 * shell can export them.
 */
import { KilnError } from "../errors.js";

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** Linux's MAX_ARG_STRLEN: execve refuses a longer `NAME=value` string (E2BIG). */
export const MAX_ENV_ENTRY_BYTES = 128 * 1024 - 1;

/** Why `NAME=value` cannot be in an environment, or undefined when it can. */
export function envVarProblem(name: string, value: string | null): string | undefined {
  if (!NAME.test(name))
    return "is not a valid environment variable name (letters, digits and _, not starting with a digit)";
  if (value === null) return undefined;
  if (value.includes("\0")) return "holds a NUL byte, which an environment cannot hold";
  if (LONE_SURROGATE.test(value)) return "holds a lone UTF-16 surrogate, which has no UTF-8 form";
  if (Buffer.byteLength(`${name}=${value}`) > MAX_ENV_ENTRY_BYTES)
    return `is longer than an environment entry may be (${MAX_ENV_ENTRY_BYTES} bytes with its name)`;
  return undefined;
}

/**
 * Throws a 422 naming the first key that cannot be set (its value is never quoted: it may be a
 * secret). `null` unsets: that key is left to the store's own name check.
 */
export function assertEnvVars(vars: Record<string, string | null>): void {
  for (const [name, value] of Object.entries(vars)) {
    if (value === null) continue;
    const problem = envVarProblem(name, value);
    if (problem)
      throw new KilnError({
        code: "invalid_config_var",
        message: `config var ${JSON.stringify(name)} ${problem}`,
        hint: "config vars become the dynos' environment: fix the name or the value and set it again",
      });
  }
}
