/** The error-code table (src/errors.ts): one status per code, and bugs printed as bugs. */
import { describe, expect, it } from "vitest";
import { formatError } from "../../src/cli/output.js";
import { bug, ERROR_CODES, isErrorCode, KilnError, statusOf } from "../../src/errors.js";

describe("error codes", () => {
  it("give every code an HTTP error status, unknown_* as 404 and invalid_* as 422", () => {
    for (const [code, status] of Object.entries(ERROR_CODES)) {
      expect(status, code).toBeGreaterThanOrEqual(400);
      expect(status, code).toBeLessThan(600);
      if (code.startsWith("unknown_")) expect(status, code).toBe(404);
      if (code.startsWith("invalid_")) expect(status, code).toBe(422);
    }
    expect(statusOf("unknown_app")).toBe(404);
    expect(statusOf("queue_full")).toBe(429);
    expect(statusOf("nix_build_failed")).toBe(500);
  });

  it("answer a code this kiln does not list (another kiln's) with 500", () => {
    expect(isErrorCode("no_such_code")).toBe(false);
    expect(statusOf("no_such_code")).toBe(500);
    expect(isErrorCode("toString")).toBe(false);
  });

  it("print a user error with its hint, a bug with the bug line and its stack", () => {
    const user = formatError(new KilnError({ code: "unknown_app", message: "no app x", hint: "kiln apps" }));
    expect(user.text).toBe("error: no app x\nhint: kiln apps");
    expect(user.json.error.code).toBe("unknown_app");
    let thrown: unknown;
    try {
      bug("no build stack");
    } catch (err) {
      thrown = err;
    }
    expect(thrown).not.toBeInstanceOf(KilnError);
    const b = formatError(thrown);
    expect(b.text).toMatch(/^error: no build stack\n\(this is a bug in kiln; the stack trace follows\)\n/);
    expect(b.json.error.code).toBe("internal");
  });
});
