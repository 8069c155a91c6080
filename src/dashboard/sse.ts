/**
 * Server-sent events (text/event-stream) over the raw response: the dashboard's live parts follow
 * the streams the API already has (build logs, app logs). A comment every 15 s keeps proxies from
 * closing an idle stream and finds a vanished client (the write fails, the request closes).
 */
import type { FastifyReply, FastifyRequest } from "fastify";

export interface EventStream {
  /** One event; a multi-line `data` becomes one data: field per line (the browser joins them). */
  send(data: string, event?: string): void;
  /** Aborts when the client goes away. */
  closed: AbortSignal;
  end(): void;
}

const KEEPALIVE_MS = 15_000;

export function openEventStream(req: FastifyRequest, reply: FastifyReply): EventStream {
  reply.hijack();
  reply.raw.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
    // Reverse proxies that buffer (nginx) would hold the events back.
    "x-accel-buffering": "no",
  });
  const closed = new AbortController();
  const keepalive = setInterval(() => reply.raw.write(": keepalive\n\n"), KEEPALIVE_MS);
  req.raw.on("close", () => {
    clearInterval(keepalive);
    closed.abort();
  });
  return {
    send(data, event) {
      if (closed.signal.aborted) return;
      const fields = data.split(/\r\n|\r|\n/).map((l) => `data: ${l}`);
      reply.raw.write(`${event ? `event: ${event}\n` : ""}${fields.join("\n")}\n\n`);
    },
    closed: closed.signal,
    end() {
      clearInterval(keepalive);
      reply.raw.end();
    },
  };
}

/** Splits a text stream into whole lines (a chunk may end mid-line). */
export function lineSplitter(onLine: (line: string) => void): { push(text: string): void; flush(): void } {
  let partial = "";
  return {
    push(text) {
      const parts = (partial + text).split("\n");
      partial = parts.pop() ?? "";
      for (const p of parts) onLine(p);
    },
    flush() {
      if (partial) onLine(partial);
      partial = "";
    },
  };
}
