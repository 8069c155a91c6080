/**
 * Platform numbers are the admin's (review s3, L1): /metrics and the dashboard's platform page
 * showed every tenant's builds (and /metrics the remote builders' addresses) to any token. A real
 * control plane over a real socket and one real build of Bob's (it fails at once: nothing detects
 * a lone README). The control is the admin, who sees Bob's build in both; Alice gets a 403 from
 * /metrics and her own apps' numbers (none) on the platform page.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ControlPlane, startControlPlane } from "../../src/serve/controlPlane.js";
import { testContext } from "../helpers.js";
import { until } from "../serveProcess.js";

describe("platform numbers: the admin's, a tenant's own", () => {
  let cp: ControlPlane;
  const tokens: Record<string, string> = {};

  const api = async (who: string, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${cp.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${tokens[who]}`,
        ...(Buffer.isBuffer(body)
          ? { "content-type": "application/gzip" }
          : body !== undefined
            ? { "content-type": "application/json" }
            : {}),
      },
      ...(body === undefined
        ? {}
        : { body: Buffer.isBuffer(body) ? new Uint8Array(body) : JSON.stringify(body) }),
    });
    const text = await res.text();
    return {
      status: res.status,
      text,
      json: text.startsWith("{") || text.startsWith("[") ? JSON.parse(text) : {},
    };
  };
  /** The platform page as `who` sees it, through a dashboard session. */
  const platformPage = async (who: string) => {
    const signin = await fetch(`${cp.url}/session`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `token=${encodeURIComponent(tokens[who] ?? "")}`,
      redirect: "manual",
    });
    const cookie = (signin.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
    const res = await fetch(`${cp.url}/platform`, { headers: { cookie } });
    expect(res.status).toBe(200);
    return res.text();
  };
  const stat = (html: string, label: string) =>
    new RegExp(`<span class="stat-n">([^<]*)</span><span class="stat-l">${label}</span>`).exec(html)?.[1];

  beforeAll(async () => {
    cp = await startControlPlane(testContext({ dataDir: mkdtempSync(join(tmpdir(), "kiln-scope-")) }), {
      host: "127.0.0.1",
      port: 0,
      dynos: false,
    });
    tokens.admin = cp.adminToken ?? "";
    for (const name of ["alice", "bob"]) {
      expect((await api("admin", "POST", "/v1/users", { name })).status).toBe(201);
      tokens[name] = (await api("admin", "POST", "/v1/tokens", { name, user: name })).json.token;
      expect((await api(name, "POST", "/v1/apps", { name: `${name}-web` })).status).toBe(201);
    }
    const src = mkdtempSync(join(tmpdir(), "kiln-scope-src-"));
    writeFileSync(join(src, "README"), "no app here\n");
    const build = await api(
      "bob",
      "POST",
      "/v1/apps/bob-web/builds",
      execFileSync("tar", ["czf", "-", "-C", src, "."]),
    );
    expect(build.status, build.text).toBe(201);
    await until("Bob's build to end", async () => {
      const b = (await api("bob", "GET", "/v1/apps/bob-web/builds")).json[0];
      return b?.status === "failed";
    });
  });
  afterAll(async () => {
    await cp?.close();
  });

  it("/metrics: the admin sees Bob's failed build (control); Alice gets 403 and no numbers", async () => {
    const admin = await api("admin", "GET", "/metrics");
    expect(admin.status).toBe(200);
    expect(admin.text).toMatch(/^kiln_builds\{status="failed"\} 1$/m);
    const alice = await api("alice", "GET", "/metrics");
    expect(alice.status).toBe(403);
    expect(alice.text).not.toContain("kiln_builds");
    expect(alice.json.error?.message ?? alice.text).toContain("only an admin token");
  });

  it("the platform page: the admin sees the platform's numbers (control); Alice her own apps' (none of Bob's)", async () => {
    expect(stat(await platformPage("admin"), "builds failed")).toBe("1");
    const html = await platformPage("alice");
    expect(stat(html, "builds failed")).toBe("0");
    expect(html).toContain("the numbers of your apps");
    expect(stat(await platformPage("bob"), "builds failed")).toBe("1");
  });
});
