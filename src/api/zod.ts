/**
 * zod as fastify's schema language: a type provider (route handlers see the parsed request and must
 * return what the response schema accepts), a validator compiler (a bad request is the same
 * KilnError `invalid_body` with its field that kiln has always answered, a 422) and a serializer
 * compiler (a 2xx body that breaks its schema is a kiln bug: a 500, logged, never sent).
 *
 * Why not `fastify-type-provider-zod`: it makes `@fastify/swagger` a required peer (npm would install
 * it and its tree for nothing here), and it answers validation failures in its own error shape, so
 * the error handler would have to translate them back; what kiln needs of it is these few lines.
 */
import type { FastifySchemaCompiler, FastifySerializerCompiler, FastifyTypeProvider } from "fastify";
import type { z } from "zod";
import { KilnError } from "../errors.js";
import { describeIssues } from "../util/json.js";

export interface ZodTypeProvider extends FastifyTypeProvider {
  validator: this["schema"] extends z.ZodType ? z.output<this["schema"]> : unknown;
  serializer: this["schema"] extends z.ZodType ? z.input<this["schema"]> : unknown;
}

/** Parses `value` (a body, query or params) with `schema`, or throws the API's 422. */
export function parseRequest<S extends z.ZodType>(schema: S, value: unknown): z.output<S> {
  const r = schema.safeParse(value);
  if (!r.success) throw invalidRequest(r.error);
  return r.data;
}

function invalidRequest(error: z.ZodError): KilnError {
  return new KilnError({
    code: "invalid_body",
    message: `invalid request: ${describeIssues(error)}`,
    hint: "see the API section of the README for the body each route takes",
    details: { field: error.issues[0]?.path.join(".") ?? "" },
  });
}

export const validatorCompiler: FastifySchemaCompiler<z.ZodType> =
  ({ schema }) =>
  (data) => {
    const r = schema.safeParse(data);
    return r.success ? { value: r.data } : { error: invalidRequest(r.error) };
  };

export const serializerCompiler: FastifySerializerCompiler<z.ZodType> =
  ({ schema, method, url }) =>
  (data) => {
    const r = schema.safeParse(data);
    if (!r.success)
      throw new Error(`response of ${method} ${url} broke its schema: ${describeIssues(r.error)}`);
    // What the route returned, as it returned it (the schema checks; it does not reshape).
    return JSON.stringify(data);
  };
