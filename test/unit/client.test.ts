import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import * as wire from "../../src/api/wire.js";
import { createClient, DEFAULT_SERVER } from "../../src/cli/client.js";
import { loadConfig } from "../../src/config/config.js";
import { tempDir } from "../tmp.js";

describe("finding the kiln server", () => {
  const dir = tempDir("kiln-client-");
  const env = { XDG_CONFIG_HOME: join(dir, "config"), KILN_DATA_DIR: dir };
  // The CLI's settings come from the environment only through Config.
  const settings = (e: NodeJS.ProcessEnv) => loadConfig(e);
  const noFile = { XDG_CONFIG_HOME: join(dir, "none"), KILN_DATA_DIR: dir };
  const clientConfigFile = (e: NodeJS.ProcessEnv) => settings(e).clientConfigFile;

  it("defaults to this machine's server", () => {
    expect(createClient({}, settings(env)).server).toBe(DEFAULT_SERVER);
  });

  it("takes the config file, then the environment, then flags", () => {
    mkdirSync(join(dir, "config", "kiln"), { recursive: true });
    writeFileSync(clientConfigFile(env), JSON.stringify({ server: "http://file:1/" }));
    expect(createClient({}, settings(env)).server).toBe("http://file:1");
    expect(createClient({}, settings({ ...env, KILN_SERVER: "http://env:2" })).server).toBe("http://env:2");
    expect(
      createClient({ server: "http://flag:3" }, settings({ ...env, KILN_SERVER: "http://env:2" })).server,
    ).toBe("http://flag:3");
  });

  it("says what is wrong with a bad config file", () => {
    writeFileSync(clientConfigFile(env), JSON.stringify({ sever: "typo" }));
    expect(() => createClient({}, settings(env))).toThrow(/client.json is not valid/);
  });

  it("names the server it cannot reach, with what to do", async () => {
    const api = createClient({ server: "http://127.0.0.1:9" }, settings(noFile));
    await expect(api.request(wire.app.array(), "GET", "/v1/apps")).rejects.toThrow(
      /cannot reach the kiln server at http:\/\/127.0.0.1:9/,
    );
  });

  it("refuses an answer that is not the API's shape, and keeps the server's own errors", async () => {
    // A real server on a real socket that speaks another API: apps without ids, then a 404.
    const server = createServer((req, res) => {
      res.setHeader("content-type", "application/json");
      if (req.url === "/v1/apps") return res.end(JSON.stringify([{ name: "web" }]));
      res.statusCode = 404;
      res.end(JSON.stringify({ error: { code: "unknown_app", message: "no app x", hint: "kiln apps" } }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    try {
      const { port } = server.address() as { port: number };
      const api = createClient({ server: `http://127.0.0.1:${port}`, token: "t" }, settings(noFile));
      await expect(api.request(wire.app.array(), "GET", "/v1/apps")).rejects.toMatchObject({
        code: "unexpected_response",
        message: expect.stringMatching(/GET \/v1\/apps .*0\.id/),
      });
      await expect(api.request(wire.app, "GET", "/v1/apps/x")).rejects.toMatchObject({
        code: "unknown_app",
        hint: "kiln apps",
      });
    } finally {
      server.close();
    }
  });
});
