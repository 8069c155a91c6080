/**
 * The control plane against what tenants and operators get wrong, through a real `kiln serve`:
 * config vars an environment cannot hold, a release that cannot start, forged forwarding headers,
 * escape sequences in app output, a port in use, a data directory dynos cannot pass.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { kiln, projectDir } from "../helpers.js";
import { type ServeProcess, serveProcess, until } from "../serveProcess.js";
import { freePort } from "../slugRunner.js";
import { tempDir } from "../tmp.js";

const fixture = (name: string) => join(projectDir, "test", "fixtures", "apps", name);

/** node-web with a route that echoes the request's headers, a crash switch and a noisy boot line. */
function echoApp(): string {
  const src = tempDir("kiln-echo-src-");
  cpSync(fixture("node-web"), src, { recursive: true });
  writeFileSync(
    join(src, "server.js"),
    `const express = require("express");
if (process.env.CRASH) { console.log("crashing on purpose"); process.exit(1); }
const app = express();
app.get("/", (_req, res) => res.send("echo\\n"));
app.get("/headers", (req, res) => res.json(req.headers));
app.get("/env/:name", (req, res) => res.send(\`\${process.env[req.params.name] ?? ""}\\n\`));
const port = Number(process.env.PORT || 5000);
console.log("boot \\x1b[31mred\\x1b[0m bell\\x07 csi\\u009b2J del\\x7f end");
app.listen(port, () => console.log(\`listening on \${port}\`));
`,
  );
  return src;
}

describe("the control plane refuses what would break an app", () => {
  let s: ServeProcess;
  beforeAll(async () => {
    s = await serveProcess({ prefix: "kiln-plane-" });
    await s.start();
    expect((await s.k("apps:create", "echo")).exitCode).toBe(0);
    const d = await s.k("deploy", echoApp(), "-a", "echo");
    expect(d.exitCode, d.all).toBe(0);
    await until("echo to serve", async () => (await s.viaRouter("/", "echo.localhost")).status === 200);
  });
  afterAll(async () => {
    await s?.kill();
  });

  const patchConfig = (body: unknown) =>
    s.api("/v1/apps/echo/config-vars", {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  it("rejects config an environment cannot hold with 422 naming the key, changing nothing", async () => {
    const releases = async () => ((await (await s.api("/v1/apps/echo/releases")).json()) as unknown[]).length;
    const before = await releases();
    for (const [body, key] of [
      [{ SECRET: "a\u0000b" }, "SECRET"],
      [{ OK: "fine", "BAD-NAME": "x" }, "BAD-NAME"],
      [{ "1X": "x" }, "1X"],
      [{ LONE: "\ud800" }, "LONE"],
      [{ HUGE: "x".repeat(200_000) }, "HUGE"],
    ] as const) {
      const res = await patchConfig(body);
      expect(res.status).toBe(422);
      const err = ((await res.json()) as { error: { code: string; message: string } }).error;
      expect(err.code).toBe("invalid_config_var");
      expect(err.message).toContain(JSON.stringify(key));
    }
    expect(await releases()).toBe(before);
    expect(await (await s.api("/v1/apps/echo/config-vars")).json()).toEqual({});
    // The CLI says the same (a NUL cannot even be an argument; a bad name can).
    const cli = await s.k("config:set", "BAD-NAME=x", "-a", "echo");
    expect(cli.exitCode).toBe(1);
    expect(cli.stderr).toContain('config var "BAD-NAME" is not a valid environment variable name');
  });

  it("keeps the old release serving when the new one cannot start, and reports it failed", async () => {
    const statuses: number[] = [];
    let stop = false;
    const load = (async () => {
      while (!stop)
        statuses.push((await s.viaRouter("/", "echo.localhost").catch(() => ({ status: 0 }))).status);
    })();
    expect((await s.k("config:set", "CRASH=1", "-a", "echo")).exitCode).toBe(0);
    let ps = "";
    await until(
      "the failed release in kiln ps",
      async () => {
        ps = (await s.k("ps", "-a", "echo")).stdout;
        return /^release\.v\d+: failed /m.test(ps);
      },
      180_000,
    );
    stop = true;
    await load;
    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.filter((x) => x !== 200)).toEqual([]);
    expect(ps).toMatch(/^web\.1: up since .*\(v1, /m);
    expect(ps).toMatch(/^release\.v2: failed since .*last: web\.1 /m);
    const logs = (await s.k("logs", "echo", "-n", "500")).stdout;
    expect(logs).toMatch(/kiln\[release\]: Release v2 failed: web\.1 .*; v1 keeps running$/m);
    expect(logs).toContain("crashing on purpose");
    // Fixed by the next release, which rolls as usual.
    expect((await s.k("config:unset", "CRASH", "-a", "echo")).exitCode).toBe(0);
    await until("v3 to serve", async () => {
      const out = (await s.k("ps", "-a", "echo")).stdout;
      return /^web\.1: up since .*\(v3, /m.test(out) && !out.includes("failed");
    });
  });

  it("replaces a client's Forwarded and X-Forwarded-* headers with what the router saw", async () => {
    const forged = {
      forwarded: "for=10.9.9.9;proto=https;host=bank.example",
      "x-forwarded-for": "10.9.9.9",
      "x-forwarded-proto": "https",
      "x-forwarded-host": "bank.example",
      "x-forwarded-port": "443",
    };
    const body = await new Promise<string>((resolve, reject) => {
      // node's http.request, to set Host and the forged headers.
      import("node:http").then(({ request }) => {
        const req = request(
          {
            port: s.routerPort,
            path: "/headers",
            headers: { host: `echo.localhost:${s.routerPort}`, ...forged },
            agent: false,
          },
          (res) => {
            let b = "";
            res.setEncoding("utf8").on("data", (d) => (b += d));
            res.on("end", () => resolve(b));
          },
        );
        req.on("error", reject);
        req.end();
      }, reject);
    });
    const seen = JSON.parse(body) as Record<string, string>;
    expect(seen).toMatchObject({
      forwarded: `for=127.0.0.1;proto=http;host="echo.localhost:${s.routerPort}"`,
      "x-forwarded-for": "127.0.0.1",
      "x-forwarded-proto": "http",
      "x-forwarded-host": `echo.localhost:${s.routerPort}`,
      "x-forwarded-port": String(s.routerPort),
    });
  });

  it("escapes control characters from app output on a terminal; --raw keeps them", async () => {
    // script(1) gives kiln logs a pseudo-terminal, as an operator's shell would.
    const onTty = (...args: string[]) =>
      execFileSync(
        "script",
        [
          "-qec",
          ["node", join(projectDir, "bin", "kiln.js"), "logs", "echo", "-n", "500", ...args].join(" "),
          "/dev/null",
        ],
        { env: { ...process.env, ...s.env() }, encoding: "utf8" },
      );
    const escaped = onTty();
    expect(escaped).toContain("boot \\x1b[31mred\\x1b[0m bell\\x07 csi\\u009b2J del\\x7f end");
    expect(escaped).not.toContain("\x1b[31m");
    const raw = onTty("--raw");
    expect(raw).toContain("boot \x1b[31mred\x1b[0m bell\x07 csi\u009b2J del\x7f end");
    // A pipe is not a terminal: the lines as logged.
    expect((await s.k("logs", "echo", "-n", "500")).stdout).toContain("\x1b[31mred");
  });

  it("says which port is in use and the flag to change it", async () => {
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", () => r()));
    const port = (busy.address() as { port: number }).port;
    try {
      // A data directory of its own: a server that cannot start must not touch another's.
      const dataDir = tempDir("kiln-port-");
      chmodSync(dataDir, 0o711);
      const env = { KILN_DATA_DIR: dataDir };
      const api = await kiln(["serve", "--no-dynos", "--port", String(port)], { env });
      expect(api.exitCode).toBe(1);
      expect(api.stderr).toContain(`the API's port ${port} on 127.0.0.1 is already in use`);
      expect(api.stderr).toContain("--port");
      expect(api.stderr).not.toContain("this is a bug in kiln");
      const router = await kiln(
        ["serve", "--port", String(await freePort()), "--router-port", String(port)],
        {
          env,
        },
      );
      expect(router.exitCode).toBe(1);
      expect(router.stderr).toContain(`the router's port ${port} on 127.0.0.1 is already in use`);
      expect(router.stderr).toContain("--router-port");
    } finally {
      busy.close();
    }
  });

  it("refuses to start dynos from a data directory their uids cannot pass", async () => {
    const parent = tempDir("kiln-closed-");
    chmodSync(parent, 0o700);
    const dataDir = join(parent, "data");
    mkdirSync(dataDir);
    const r = await kiln(
      ["serve", "--port", String(await freePort()), "--router-port", String(await freePort())],
      { env: { KILN_DATA_DIR: dataDir } },
    );
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain(`cannot pass ${parent} (mode 700)`);
    expect(r.stderr).toContain(`chmod o+x ${parent}`);
  });
});
