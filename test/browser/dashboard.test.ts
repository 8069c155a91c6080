/**
 * The dashboard in a real browser: Debian's Chromium driven by playwright-core, against a real
 * control plane (real SQLite file, real Nix builds, real dynos) on a real socket. Alice signs in,
 * sees her apps (not Bob's), follows a build's log as it runs, rolls back, scales, reveals a
 * config var; Bob's app is a 404 to her exactly like a missing one; a form without its CSRF token
 * is refused. Every page is photographed at 1280 px and at phone width (test/screenshots/).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ControlPlane, startControlPlane } from "../../src/serve/controlPlane.js";
import { projectDir, testContext } from "../helpers.js";

const CHROMIUM = "/usr/bin/chromium";
const SHOTS = join(projectDir, "test", "screenshots");
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 900 };

/** The ticker app's source, with a nonce: a source Nix has never built, so the build really runs. */
function tickerSource(): Buffer {
  const dir = mkdtempSync(join(tmpdir(), "kiln-dash-src-"));
  cpSync(join(projectDir, "test", "fixtures", "apps", "dash-ticker"), dir, { recursive: true });
  writeFileSync(join(dir, "nonce.txt"), randomBytes(8).toString("hex"));
  return execFileSync("tar", ["czf", "-", "-C", dir, "."]);
}

describe("dashboard in Chromium", () => {
  let cp: ControlPlane;
  let ctx: BrowserContext;
  let page: Page;
  const tokens: Record<string, string> = {};
  const secret = `hunter2-${randomBytes(6).toString("hex")}`;
  const consoleErrors: string[] = [];
  let buildId = "";

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
      json: text.startsWith("{") || text.startsWith("[") ? JSON.parse(text) : text,
    };
  };
  const url = (path: string) => `${cp.url}${path}`;
  /** The page at 1280 px and at phone width, whole, into test/screenshots/. */
  const shoot = async (name: string) => {
    await page.screenshot({ path: join(SHOTS, `${name}-1280.png`), fullPage: true });
    await page.setViewportSize(PHONE);
    await page.screenshot({ path: join(SHOTS, `${name}-phone.png`), fullPage: true });
    await page.setViewportSize(DESKTOP);
  };
  const expectNoConsoleErrors = () => expect(consoleErrors).toEqual([]);

  beforeAll(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`${CHROMIUM} is missing: npm run setup installs Debian's chromium`);
    mkdirSync(SHOTS, { recursive: true });
    const dataDir = mkdtempSync(join(tmpdir(), "kiln-dash-"));
    // The dynos' uids must reach the slugs under it (mkdtemp makes it 0700).
    chmodSync(dataDir, 0o711);
    cp = await startControlPlane(testContext({ dataDir }), { host: "127.0.0.1", port: 0 });
    tokens.admin = cp.adminToken ?? "";
    for (const name of ["alice", "bob"]) {
      expect((await api("admin", "POST", "/v1/users", { name })).status).toBe(201);
      const t = await api("admin", "POST", "/v1/tokens", { name: `${name}-browser`, user: name });
      tokens[name] = t.json.token;
    }
    expect((await api("alice", "POST", "/v1/apps", { name: "shop" })).status).toBe(201);
    expect((await api("alice", "PATCH", "/v1/apps/shop/config-vars", { SECRET_KEY: secret })).status).toBe(
      200,
    );
    expect((await api("bob", "POST", "/v1/apps", { name: "bobs-app" })).status).toBe(201);
    ctx = await chromium.launchPersistentContext(mkdtempSync(join(tmpdir(), "kiln-chromium-")), {
      executablePath: CHROMIUM,
      headless: true,
      chromiumSandbox: false,
      viewport: DESKTOP,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    page = ctx.pages()[0] ?? (await ctx.newPage());
    page.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push(`${page.url()}: ${m.text()}`);
    });
    page.on("pageerror", (e) => consoleErrors.push(`${page.url()}: ${e.message}`));
  });
  afterAll(async () => {
    await ctx?.close();
    await cp?.close();
  });

  it("signs in with a token (a wrong one is refused) and lists the caller's apps only", async () => {
    await page.goto(url("/apps/shop"));
    // Not signed in: the sign-in page (no app data).
    expect(new URL(page.url()).pathname).toBe("/");
    await expect(page.locator("h1").textContent()).resolves.toBe("Sign in to kiln");
    await shoot("signin");

    await page.fill("#token", "kiln_not-a-real-token-000000000000");
    await page.click("button[type=submit]");
    await expect(page.locator(".alert.bad").textContent()).resolves.toContain("not valid");
    consoleErrors.length = 0; // the 401 answer is logged by Chromium as a failed load

    await page.fill("#token", tokens.alice ?? "");
    await page.click("button[type=submit]");
    await page.waitForSelector("table.applist");
    const names = await page.locator("table.applist tbody tr td:first-child a").allTextContents();
    expect(names).toEqual(["shop"]);
    // The cookie is HttpOnly and SameSite=Strict, and holds no token.
    const cookie = (await ctx.cookies()).find((c) => c.name === "kiln_session");
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict" });
    expect(cookie?.value).not.toContain(tokens.alice);
    await shoot("apps-empty-builds");
    expectNoConsoleErrors();
  });

  it("follows a build's log live while the build runs, then shows it finished", async () => {
    const b = await api("alice", "POST", "/v1/apps/shop/builds", tickerSource());
    expect(b.status).toBe(201);
    buildId = b.json.id;
    await page.goto(url(`/apps/shop/builds/${buildId}`));
    // The page was rendered while the build was queued or running: it follows the stream.
    await expect(page.locator("#build-log").getAttribute("data-stream")).resolves.toBe(
      `/apps/shop/builds/${buildId}/events`,
    );
    // A marker that a reload would wipe: lines that appear while it is there came over the stream.
    await page.evaluate(() => {
      (window as unknown as { stay: boolean }).stay = true;
    });
    await page.waitForFunction(
      () =>
        (window as unknown as { stay?: boolean }).stay === true &&
        /ticker: step 3 of/.test(document.querySelector("#build-log")?.textContent ?? ""),
      undefined,
      { timeout: 10 * 60 * 1000 },
    );
    await expect(page.locator(".live[data-live-for=build-log]").isVisible()).resolves.toBe(true);
    await shoot("build-live");
    // At its end the page reloads itself and shows the result.
    await page.waitForFunction(
      () =>
        (window as unknown as { stay?: boolean }).stay === undefined &&
        document.querySelector("#build-status")?.textContent === "succeeded",
      undefined,
      { timeout: 10 * 60 * 1000, polling: 500 },
    );
    const log = (await page.locator("#build-log").textContent()) ?? "";
    expect(log).toContain("ticker: done");
    expect(await page.locator("#build-log").getAttribute("data-stream")).toBeNull();
    await shoot("build-done");
    expectNoConsoleErrors();
  });

  it("shows the app: release, formation, dynos, masked config, builds, logs", async () => {
    await page.goto(url("/apps/shop"));
    await expect(page.locator("#releases tbody tr").first().textContent()).resolves.toContain("v1");
    await expect(page.locator("#builds tbody tr").first().textContent()).resolves.toContain("succeeded");
    const types = await page.locator("#formation .row .mono.strong").allTextContents();
    expect(types).toEqual(["web", "worker"]);
    // The value is not in the page at all until revealed.
    expect(await page.content()).not.toContain(secret);
    await expect(page.locator("#config .masked").count()).resolves.toBe(1);
    // The web dyno of v1 comes up (the page shows what the dyno manager says).
    await expect
      .poll(
        async () => {
          await page.reload();
          return page.locator("#dynos tbody").textContent();
        },
        { timeout: 120_000, interval: 1000 },
      )
      .toMatch(/web\.1\s*up/);
    await page.goto(url("/"));
    const row = await page.locator("table.applist tbody tr").first().textContent();
    expect(row).toMatch(/v1/);
    expect(row).toMatch(/1\/1 up/);
    expect(row).toMatch(/succeeded/);
    await shoot("apps");
    await page.goto(url("/apps/shop"));
    await shoot("app");
    expectNoConsoleErrors();
  });

  it("reveals a config var on a POST of its own", async () => {
    await page.goto(url("/apps/shop"));
    await page.click("#config form button");
    await expect(page.locator('[data-revealed="SECRET_KEY"]').textContent()).resolves.toBe(secret);
    await shoot("app-config-revealed");
    // Going back to the page masks it again.
    await page.goto(url("/apps/shop"));
    expect(await page.content()).not.toContain(secret);
    expectNoConsoleErrors();
  });

  it("rolls back to an earlier release", async () => {
    // v2: a config change (as `kiln config:set` makes one).
    expect((await api("alice", "PATCH", "/v1/apps/shop/config-vars", { FEATURE: "on" })).status).toBe(200);
    await page.goto(url("/apps/shop"));
    await page.click('#releases button:has-text("Roll back to v1")');
    await expect(page.locator(".alert.ok").textContent()).resolves.toBe("Released v3.");
    const top = await page.locator("#releases tbody tr").first().textContent();
    expect(top).toContain("v3");
    expect(top).toContain("Rollback to v1");
    const rels = await api("alice", "GET", "/v1/apps/shop/releases");
    expect(rels.json[0]).toMatchObject({ version: 3, description: "Rollback to v1" });
    expect(rels.json[0].config_vars.FEATURE).toBeUndefined();
    expectNoConsoleErrors();
  });

  it("scales a process type, and the new dyno shows up", async () => {
    await page.goto(url("/apps/shop"));
    await page.fill("#q-worker", "1");
    await page.click('#formation .row:has-text("worker") button');
    await expect(page.locator(".alert.ok").textContent()).resolves.toContain("Scaled");
    const formation = await api("alice", "GET", "/v1/apps/shop/formation");
    expect(formation.json.find((f: { type: string }) => f.type === "worker")?.quantity).toBe(1);
    await expect
      .poll(
        async () => {
          await page.reload();
          return page.locator("#dynos tbody").textContent();
        },
        { timeout: 120_000, interval: 1000 },
      )
      .toMatch(/worker\.1\s*up/);
    await shoot("app-scaled");
    expectNoConsoleErrors();
  });

  it("follows the app's log lines live", async () => {
    await page.goto(url("/apps/shop#logs"));
    await page.waitForSelector(".live[data-live-for=app-log]:not([hidden])");
    await page.evaluate(() => {
      (window as unknown as { stay: boolean }).stay = true;
    });
    const before = await page.locator("#app-log .logline").count();
    // A restart writes kiln's lines about it (and the dyno's own) to the app's log.
    expect((await api("alice", "DELETE", "/v1/apps/shop/dynos/worker.1")).status).toBe(200);
    await page.waitForFunction(
      (n) =>
        (window as unknown as { stay?: boolean }).stay === true &&
        document.querySelectorAll("#app-log .logline").length > n,
      before,
      { timeout: 120_000 },
    );
    await shoot("app-logs-live");
    expectNoConsoleErrors();
  });

  it("answers 404 for another user's app, word for word as for a missing one", async () => {
    const theirs = await page.goto(url("/apps/bobs-app"));
    expect(theirs?.status()).toBe(404);
    const theirText = (await page.locator(".error-page").textContent()) ?? "";
    await shoot("not-found");
    const missing = await page.goto(url("/apps/no-such-app"));
    expect(missing?.status()).toBe(404);
    const missingText = (await page.locator(".error-page").textContent()) ?? "";
    expect(theirText.replaceAll("bobs-app", "X")).toBe(missingText.replaceAll("no-such-app", "X"));
    // Its build log stream, its log stream and its actions too.
    for (const path of ["/apps/bobs-app/logs/events", "/apps/bobs-app/builds/x/events"]) {
      expect((await page.request.get(url(path))).status()).toBe(404);
    }
    consoleErrors.length = 0;
    // Control: Bob himself sees it.
    const bob = await fetch(url("/session"), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: tokens.bob ?? "" }),
      redirect: "manual",
    });
    expect(bob.status).toBe(303);
    const bobCookie = (bob.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
    expect((await fetch(url("/apps/bobs-app"), { headers: { cookie: bobCookie } })).status).toBe(200);
    expect((await fetch(url("/apps/shop"), { headers: { cookie: bobCookie } })).status).toBe(404);
    expect((await fetch(url("/apps/shop/logs/events"), { headers: { cookie: bobCookie } })).status).toBe(404);
    // No session: the event streams are 401 (pages send to the sign-in).
    expect((await fetch(url("/apps/shop/logs/events"))).status).toBe(401);
    expect((await fetch(url("/apps/shop"), { redirect: "manual" })).status).toBe(303);
  });

  it("refuses a form without its session's CSRF token (403), changing nothing", async () => {
    const before = (await api("alice", "GET", "/v1/apps/shop/releases")).json.length;
    await page.goto(url("/apps/shop"));
    const csrf = (await page.locator('#releases input[name="csrf"]').first().inputValue()) ?? "";
    expect(csrf.length).toBeGreaterThan(20);
    const post = (form: Record<string, string>) =>
      page.request.post(url("/apps/shop/rollback"), { form, maxRedirects: 0 });
    expect((await post({ version: "1" })).status()).toBe(403);
    expect((await post({ version: "1", csrf: `${csrf.slice(0, -2)}xx` })).status()).toBe(403);
    // Another session's token is not this one's.
    const other = await fetch(url("/session"), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token: tokens.alice ?? "" }),
      redirect: "manual",
    });
    const otherCookie = (other.headers.get("set-cookie") ?? "").split(";")[0] ?? "";
    const otherPage = await (await fetch(url("/apps/shop"), { headers: { cookie: otherCookie } })).text();
    const otherCsrf = /name="csrf" value="([^"]+)"/.exec(otherPage)?.[1] ?? "";
    expect(otherCsrf).not.toBe(csrf);
    expect((await post({ version: "1", csrf: otherCsrf })).status()).toBe(403);
    expect(
      (
        await page.request.post(url("/apps/shop/formation"), { form: { type: "web", quantity: "3" } })
      ).status(),
    ).toBe(403);
    expect((await page.request.post(url("/session/delete"), { form: {} })).status()).toBe(403);
    expect((await api("alice", "GET", "/v1/apps/shop/releases")).json.length).toBe(before);
    // Control: the same POST with the page's token goes through.
    expect((await post({ version: "1", csrf })).status()).toBe(303);
    expect((await api("alice", "GET", "/v1/apps/shop/releases")).json.length).toBe(before + 1);
    // A sign-in posted from another site is refused too (no login CSRF).
    const cross = await fetch(url("/session"), {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: "http://evil.example" },
      body: new URLSearchParams({ token: tokens.bob ?? "" }),
      redirect: "manual",
    });
    expect(cross.status).toBe(403);
    consoleErrors.length = 0;
  });

  it("creates an app from the list (a bad name or a missing CSRF token changes nothing)", async () => {
    await page.goto(url("/"));
    const csrf = await page.locator('#create input[name="csrf"]').inputValue();
    const names = async () =>
      (await api("alice", "GET", "/v1/apps")).json.map((a: { name: string }) => a.name);
    const before = await names();
    // The server checks the name itself (the input's pattern is only the browser's help).
    const bad = await page.request.post(url("/apps"), { form: { csrf, name: "Bad_Name" }, maxRedirects: 0 });
    expect(bad.status()).toBe(422);
    expect(await bad.text()).toContain("lowercase letters");
    expect(
      (await page.request.post(url("/apps"), { form: { name: "forged" }, maxRedirects: 0 })).status(),
    ).toBe(403);
    expect(await names()).toEqual(before);
    await page.fill("#app-name", "blog");
    await page.click("#create button[type=submit]");
    expect(new URL(page.url()).pathname).toBe("/apps/blog");
    await expect(page.locator(".alert.ok").textContent()).resolves.toContain("App created");
    expect((await api("alice", "GET", "/v1/apps/blog")).json).toMatchObject({ name: "blog", owner: "alice" });
    await page.goto(url("/"));
    await shoot("apps-create");
    expectNoConsoleErrors();
  });

  it("sets and unsets a config var (each a release); another user's app refuses the form", async () => {
    await page.goto(url("/apps/shop"));
    await page.fill("#config-key", "GREETING");
    await page.fill("#config-value", "hello <b>world</b>");
    await page.click(".configset button[type=submit]");
    await expect(page.locator(".alert.ok").textContent()).resolves.toMatch(
      /^Config changed\. Released v\d+\.$/,
    );
    expect((await api("alice", "GET", "/v1/apps/shop/config-vars")).json.GREETING).toBe("hello <b>world</b>");
    const rel = (await api("alice", "GET", "/v1/apps/shop/releases")).json[0];
    expect(rel).toMatchObject({ description: "Set GREETING" });
    expect(rel.config_vars.GREETING).toBe("hello <b>world</b>");
    await shoot("app-config-set");
    await page.click('#config button[aria-label="Unset GREETING"]');
    await expect(page.locator(".alert.ok").textContent()).resolves.toMatch(
      /^Config changed\. Released v\d+\.$/,
    );
    expect((await api("alice", "GET", "/v1/apps/shop/config-vars")).json.GREETING).toBeUndefined();
    expect((await api("alice", "GET", "/v1/apps/shop/releases")).json[0].description).toBe("Unset GREETING");
    // Alice's own session and CSRF token, aimed at Bob's app: the same 404 as a missing app.
    const csrf = await page.locator('.configset input[name="csrf"]').inputValue();
    const form = { csrf, key: "PWNED", value: "1" };
    const theirs = await page.request.post(url("/apps/bobs-app/config"), { form, maxRedirects: 0 });
    expect(theirs.status()).toBe(404);
    expect((await api("bob", "GET", "/v1/apps/bobs-app/config-vars")).json.PWNED).toBeUndefined();
    // Control: the same request at her own app goes through.
    expect((await page.request.post(url("/apps/shop/config"), { form, maxRedirects: 0 })).status()).toBe(303);
    expect((await api("alice", "GET", "/v1/apps/shop/config-vars")).json.PWNED).toBe("1");
    expectNoConsoleErrors();
  });

  it("restarts a dyno", async () => {
    const web = async () => {
      const [rels, dynos] = await Promise.all([
        api("alice", "GET", "/v1/apps/shop/releases"),
        api("alice", "GET", "/v1/apps/shop/dynos"),
      ]);
      const d = dynos.json.find((x: { name: string }) => x.name === "web.1");
      return d?.state === "up" && d.release === rels.json[0].version ? d.since : undefined;
    };
    // The config changes' releases roll out first.
    await expect.poll(web, { timeout: 120_000, interval: 500 }).toBeTruthy();
    const since = await web();
    await page.goto(url("/apps/shop#dynos"));
    await page.click('#dynos button[aria-label="Restart web.1"]');
    await expect(page.locator(".alert.ok").textContent()).resolves.toBe("Restarted 1 dyno.");
    const after = (await api("alice", "GET", "/v1/apps/shop/dynos")).json.find(
      (x: { name: string }) => x.name === "web.1",
    );
    expect(after.since).not.toBe(since);
    await shoot("app-restarted");
    expectNoConsoleErrors();
  });

  it("cancels a running build from its page", async () => {
    const b = await api("alice", "POST", "/v1/apps/shop/builds", tickerSource());
    expect(b.status).toBe(201);
    await page.goto(url(`/apps/shop/builds/${b.json.id}`));
    await page.click("#cancel-build");
    await expect(page.locator(".alert.ok").textContent()).resolves.toBe("Build cancelled.");
    await expect(page.locator("#build-status").textContent()).resolves.toBe("cancelled");
    expect((await api("alice", "GET", `/v1/apps/shop/builds/${b.json.id}`)).json.status).toBe("cancelled");
    await expect(page.locator("#cancel-build").count()).resolves.toBe(0);
    await shoot("build-cancelled");
    expectNoConsoleErrors();
  });

  it("shows the platform page, then signs out (the session is gone)", async () => {
    await page.goto(url("/platform"));
    await expect(page.locator(".stats").textContent()).resolves.toContain("releases");
    await shoot("platform");
    const cookie = (await ctx.cookies()).find((c) => c.name === "kiln_session");
    await page.click(".me button");
    await expect(page.locator("h1").textContent()).resolves.toBe("Sign in to kiln");
    expect((await ctx.cookies()).find((c) => c.name === "kiln_session")).toBeUndefined();
    // The old cookie opens nothing any more.
    const res = await fetch(url("/apps/shop"), {
      headers: { cookie: `kiln_session=${cookie?.value}` },
      redirect: "manual",
    });
    expect(res.status).toBe(303);
    expectNoConsoleErrors();
  });
});
