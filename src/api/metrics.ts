/**
 * GET /metrics in Prometheus' text format: builds by status, build durations (histogram), the
 * queue, releases, and the dynos (by state, and their crash restarts). The platform's are the
 * admin's alone (they name remote builders, and every tenant's activity); a tenant's view of the
 * platform (the dashboard) is the same numbers over their own apps, without machines or dynos.
 */
import type { BuildQueue } from "../builds/queue.js";
import type { Db } from "../store/db.js";
import {
  type AppScope,
  buildCountsByMachine,
  buildCountsByStatus,
  finishedBuildSeconds,
  releaseCount,
} from "../store/stats.js";

const BUCKETS = [5, 10, 30, 60, 120, 300, 600, 900];

/** A Prometheus label value: backslash, quote and newline escaped. */
const promLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");

export function renderMetrics(
  db: Db,
  queue: BuildQueue,
  dynos: { state: string; restarts: number }[],
  scope?: AppScope,
): string {
  const lines: string[] = [];
  lines.push("# HELP kiln_builds Builds by status.", "# TYPE kiln_builds gauge");
  const byStatus = buildCountsByStatus(db, scope);
  const count = (status: string) => byStatus.find((r) => r.status === status)?.n ?? 0;
  for (const s of ["pending", "building", "succeeded", "failed", "cancelled"]) {
    lines.push(`kiln_builds{status="${s}"} ${byStatus.find((r) => r.status === s)?.n ?? 0}`);
  }
  lines.push(
    "# HELP kiln_builds_by_machine Succeeded builds by where their derivations ran (local or a remote builder).",
    "# TYPE kiln_builds_by_machine gauge",
  );
  if (!scope)
    for (const { machine, n } of buildCountsByMachine(db))
      lines.push(`kiln_builds_by_machine{machine="${promLabel(machine)}"} ${n}`);
  const durations = finishedBuildSeconds(db, scope);
  lines.push(
    "# HELP kiln_build_duration_seconds How long finished builds took.",
    "# TYPE kiln_build_duration_seconds histogram",
  );
  for (const le of BUCKETS)
    lines.push(`kiln_build_duration_seconds_bucket{le="${le}"} ${durations.filter((d) => d <= le).length}`);
  lines.push(`kiln_build_duration_seconds_bucket{le="+Inf"} ${durations.length}`);
  lines.push(`kiln_build_duration_seconds_sum ${durations.reduce((a, b) => a + b, 0).toFixed(3)}`);
  lines.push(`kiln_build_duration_seconds_count ${durations.length}`);
  lines.push("# HELP kiln_build_queue_depth Builds waiting to start.", "# TYPE kiln_build_queue_depth gauge");
  lines.push(`kiln_build_queue_depth ${scope ? count("pending") : queue.depth()}`);
  lines.push("# HELP kiln_builds_running Builds running now.", "# TYPE kiln_builds_running gauge");
  lines.push(`kiln_builds_running ${scope ? count("building") : queue.running()}`);
  const releases = releaseCount(db, scope);
  lines.push("# HELP kiln_releases_total Releases made.", "# TYPE kiln_releases_total counter");
  lines.push(`kiln_releases_total ${releases}`);
  if (scope) return `${lines.join("\n")}\n`;
  lines.push("# HELP kiln_dynos Dynos by state.", "# TYPE kiln_dynos gauge");
  for (const st of ["starting", "up", "crashed", "stopping"]) {
    lines.push(`kiln_dynos{state="${st}"} ${dynos.filter((d) => d.state === st).length}`);
  }
  lines.push(
    "# HELP kiln_dyno_restarts Crash restarts of the dynos running now.",
    "# TYPE kiln_dyno_restarts gauge",
  );
  lines.push(`kiln_dyno_restarts ${dynos.reduce((a, d) => a + d.restarts, 0)}`);
  return `${lines.join("\n")}\n`;
}
