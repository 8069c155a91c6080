/** Where kiln's errors become JSON error bodies, with the status src/errors.ts's table gives. */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { isKilnError, statusOf } from "../errors.js";

export interface ErrorBody {
  error: { code: string; message: string; hint?: string; field?: string };
}

export function errorHandler(err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): void {
  if (isKilnError(err)) {
    const status = statusOf(err.code);
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
