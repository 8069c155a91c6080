/** The one place where kiln's error codes become HTTP statuses and JSON error bodies. */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { isKilnError } from "../errors.js";

const STATUS_BY_CODE: Record<string, number> = {
  unauthorized: 401,
  forbidden: 403,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  queue_full: 429,
  build_quota_exceeded: 429,
  quota_exceeded: 422,
  dynos_disabled: 501,
  checks_disabled: 501,
  platform_handoff_failed: 502,
};

/** unknown_* → 404, invalid_* and other input errors → 422, the table above, else 500. */
export function httpStatusFor(code: string): number {
  const known = STATUS_BY_CODE[code];
  if (known) return known;
  if (code.startsWith("unknown_")) return 404;
  if (code.startsWith("invalid_") || code === "usage" || code.startsWith("source_")) return 422;
  return 500;
}

export interface ErrorBody {
  error: { code: string; message: string; hint?: string; field?: string };
}

export function errorHandler(err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): void {
  if (isKilnError(err)) {
    const status = httpStatusFor(err.code);
    if (status >= 500) req.log.error({ err }, "request failed");
    const body: ErrorBody = {
      error: {
        code: err.code,
        message: err.message,
        ...(err.hint ? { hint: err.hint } : {}),
        ...(typeof err.details?.field === "string" ? { field: err.details.field } : {}),
      },
    };
    void reply.status(status).send(body);
    return;
  }
  const fe = err as FastifyError;
  // fastify's own: body too large, bad JSON, unsupported content type.
  if (fe.statusCode && fe.statusCode < 500) {
    const code =
      fe.statusCode === 413
        ? "payload_too_large"
        : fe.statusCode === 415
          ? "unsupported_media_type"
          : "invalid_request";
    void reply.status(fe.statusCode).send({ error: { code, message: fe.message } } satisfies ErrorBody);
    return;
  }
  req.log.error({ err }, "request failed");
  void reply
    .status(500)
    .send({ error: { code: "internal", message: "internal error (logged on the server)" } });
}
