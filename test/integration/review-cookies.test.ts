/**
 * Cookie tossing (review s3, M4): a tenant's app on a sibling subdomain sets a session cookie for
 * the parent domain with a longer Path. The browser sends it before the victim's own, and the
 * dashboard took the first: the victim acted as the attacker's session on the app pages. Real
 * Chromium (its own cookie jar) over HTTP: the dashboard at dash.kiln.test, the attacker's site at
 * evil.kiln.test, both mapped to loopback. The control shows the header Chromium sends makes the
 * cookie parser (@fastify/cookie's, what the dashboard read before the fix) pick the attacker's live session; kiln
 * now refuses a request naming its session cookie twice.
 */

import { mkdtempSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseCookie } from "cookie";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ControlPlane, startControlPlane } from "../../src/serve/controlPlane.js";
import { testContext } from "../helpers.js";

const CHROMIUM = "/usr/bin/chromium";

describe("dashboard session cookie tossed from a sibling subdomain", () => {
  let cp: ControlPlane;
  let evil: Server;
  let ctx: BrowserContext;
  let page: Page;
  let port = 0;
  let evilPort = 0;
  const tokens: Record<string, string> = {};
  let attackerSecret = "";
  const dash = (path: string) => `http://dash.kiln.test:${port}${path}`;

  const api = async (token: string, method: string, path: string, body: unknown) => {
    const res = await fetch(`${cp.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    // biome-ignore lint/suspicious/noExplicitAny: JSON bodies read field by field
    return { status: res.status, json: (await res.json()) as any };
  };

  beforeAll(async () => {
    cp = await startControlPlane(testContext({ dataDir: mkdtempSync(join(tmpdir(), "kiln-cookies-")) }), {
      host: "127.0.0.1",
      port: 0,
      dynos: false,
    });
    port = Number(new URL(cp.url).port);
    const admin = cp.adminToken ?? "";
    for (const name of ["alice", "mallory"]) {
      expect((await api(admin, "POST", "/v1/users", { name })).status).toBe(201);
      tokens[name] = (await api(admin, "POST", "/v1/tokens", { name, user: name })).json.token;
      expect((await api(tokens[name] ?? "", "POST", "/v1/apps", { name: `${name}-web` })).status).toBe(201);
    }
    // The attacker signs in to the dashboard as themselves: a live session whose secret they hold.
    const signin = await fetch(`${cp.url}/session`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `token=${encodeURIComponent(tokens.mallory ?? "")}`,
      redirect: "manual",
    });
    attackerSecret = /kiln_session=([^;]+)/.exec(signin.headers.get("set-cookie") ?? "")?.[1] ?? "";
    expect(attackerSecret).not.toBe("");
    // The attacker's app: it tosses that session to the whole domain, for the app pages.
    evil = createServer((_req, res) => {
      res.setHeader("set-cookie", `kiln_session=${attackerSecret}; Domain=kiln.test; Path=/apps; HttpOnly`);
      res.end("<p>nothing to see</p>");
    });
    await new Promise<void>((r) => evil.listen(0, "127.0.0.1", () => r()));
    evilPort = (evil.address() as { port: number }).port;
    ctx = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "kiln-chromium-")), {
      executablePath: CHROMIUM,
      headless: true,
      chromiumSandbox: false,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP *.kiln.test 127.0.0.1",
      ],
    });
    page = ctx.pages()[0] ?? (await ctx.newPage());
  });
  afterAll(async () => {
    await ctx?.close();
    await new Promise((r) => evil?.close(r));
    await cp?.close();
  });

  it("the victim signed in, then visited the attacker's app: the app pages refuse the doubled cookie instead of acting as the attacker", async () => {
    await page.goto(dash("/"));
    await page.fill("#token", tokens.alice ?? "");
    await page.click("button[type=submit]");
    await page.waitForSelector("table.applist");
    expect(await page.locator("table.applist tbody tr td:first-child a").allTextContents()).toEqual([
      "alice-web",
    ]);

    await page.goto(`http://evil.kiln.test:${evilPort}/`);
    const jar = await ctx.cookies(dash("/apps/mallory-web"));
    expect(jar.filter((c) => c.name === "kiln_session").map((c) => [c.domain, c.path])).toEqual(
      expect.arrayContaining([
        ["dash.kiln.test", "/"],
        [".kiln.test", "/apps"],
      ]),
    );

    let sent = "";
    page.on("request", async (r) => {
      if (r.url() === dash("/apps/mallory-web")) sent = (await r.allHeaders()).cookie ?? "";
    });
    const res = await page.goto(dash("/apps/mallory-web"));
    // Control: the attacker's cookie comes first, so the parser (before the fix, the session read)
    // picks it, and it is the attacker's live session: their app's page, with its forms.
    expect(parseCookie(sent).kiln_session).toBe(attackerSecret);
    const asAttacker = await fetch(`${cp.url}/apps/mallory-web`, {
      headers: { cookie: `kiln_session=${parseCookie(sent).kiln_session}` },
    });
    expect(asAttacker.status).toBe(200);
    expect(await asAttacker.text()).toContain("mallory-web");

    // kiln: neither cookie is used; the page says why and what to do.
    expect(res?.status()).toBe(403);
    const body = (await page.locator("main").textContent()) ?? "";
    expect(body).toContain("two dashboard session cookies");
    expect(body).toContain("https");
    // Outside the tossed cookie's Path only the victim's own is sent: she is herself there.
    expect((await page.goto(dash("/")))?.status()).toBe(200);
    expect(await page.locator("table.applist tbody tr td:first-child a").allTextContents()).toEqual([
      "alice-web",
    ]);
  });
});
