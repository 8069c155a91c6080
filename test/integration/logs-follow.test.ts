/**
 * `kiln logs -t` (the real CLI, following the real log files) while lines are written across
 * several rotations of the app's log: every line arrives, once, in order — not just the last.
 */
import { spawn } from "node:child_process";

import { describe, expect, it } from "vitest";
import { DEFAULT_LOG_FILE_BYTES, openAppLog } from "../../src/dyno/logs.js";
import { kilnBin } from "../helpers.js";
import { until } from "../serveProcess.js";
import { tempDir } from "../tmp.js";

describe("kiln logs -t across rotations", () => {
  it("loses no line when the log rotates under it", async () => {
    const dataDir = tempDir("kiln-follow-");
    const log = await openAppLog(dataDir, "busy");
    log.write("kiln[web.1]", "marker 1");
    const follower = spawn(process.execPath, [kilnBin, "logs", "busy", "-t"], {
      env: { ...process.env, KILN_DATA_DIR: dataDir },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    follower.stdout.setEncoding("utf8").on("data", (d) => (out += d));
    try {
      await until("the recent lines", () => out.includes("marker 1"));
      // A second marker, written after the first was shown, can only arrive by following.
      await until("following", () => {
        log.write("kiln[web.1]", "marker 2");
        return out.includes("marker 2");
      });
      // Several rotations' worth, as fast as the writer goes.
      const pad = "y".repeat(400);
      const n = Math.ceil((3.5 * DEFAULT_LOG_FILE_BYTES) / 450);
      for (let i = 0; i < n; i++) log.write("kiln[web.1]", `line ${i} ${pad}`);
      log.write("kiln[web.1]", "the end");
      await until("the last line", () => out.includes("the end"), 120_000);
      const got = [...out.matchAll(/: line (\d+) /g)].map((m) => Number(m[1]));
      expect(got.length).toBe(n);
      expect(got).toEqual(Array.from({ length: n }, (_, i) => i));
    } finally {
      follower.kill("SIGINT");
    }
  });
});
