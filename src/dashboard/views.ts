/**
 * The dashboard's HTML: Eta templates (src/dashboard/views/*.eta) with auto-escaping on, so every
 * `<%= %>` is HTML-escaped; the only raw output (`<%~ %>`) is a layout's body, itself rendered
 * from escaped templates. Templates are read from the checkout (no build step), once.
 */
import { join } from "node:path";
import { Eta } from "eta";
import { defaultProjectDir } from "../config/config.js";

export const DASHBOARD_DIR = join(defaultProjectDir(), "src", "dashboard");

export function createViews(): Eta {
  return new Eta({ views: join(DASHBOARD_DIR, "views"), autoEscape: true, cache: true });
}

/** Helpers every template gets as `it.h`. */
export const helpers = {
  /** "3 min ago", from an ISO time (the full time is in the element's title). */
  ago(iso: string | null | undefined, now = Date.now()): string {
    if (!iso) return "—";
    const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  },
  /** A build's duration: finished − started, or so far when it is running. */
  duration(started: string | null, finished: string | null, now = Date.now()): string {
    if (!started) return "—";
    const s = Math.max(0, Math.round(((finished ? Date.parse(finished) : now) - Date.parse(started)) / 1000));
    return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
  },
  short: (id: string | null | undefined) => (id ? id.slice(0, 8) : "—"),
  /** A status's badge class: one of a fixed set, never the raw text. */
  tone(status: string | null | undefined): string {
    switch (status) {
      case "succeeded":
      case "up":
      case "reproducible":
        return "ok";
      case "failed":
      case "crashed":
      case "not_reproducible":
      case "build_failed":
      case "error":
        return "bad";
      case "building":
      case "pending":
      case "starting":
      case "running":
      case "stopping":
        return "busy";
      default:
        return "muted";
    }
  },
  /** A release's commit (recorded by git push once that lands), else its build. */
  commit(r: object): string | undefined {
    const c =
      (r as { commit?: unknown; commitId?: unknown }).commit ?? (r as { commitId?: unknown }).commitId;
    return typeof c === "string" && c ? c.slice(0, 7) : undefined;
  },
  url: (...parts: string[]) => `/${parts.map(encodeURIComponent).join("/")}`,
};
