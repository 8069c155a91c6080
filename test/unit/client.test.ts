import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { clientConfigFile, createClient, DEFAULT_SERVER } from "../../src/cli/client.js";
import { tempDir } from "../tmp.js";

describe("finding the kiln server", () => {
  const dir = tempDir("kiln-client-");
  const env = { XDG_CONFIG_HOME: join(dir, "config") };

  it("defaults to this machine's server", () => {
    expect(createClient({}, env, dir).server).toBe(DEFAULT_SERVER);
  });

  it("takes the config file, then the environment, then flags", () => {
    mkdirSync(join(dir, "config", "kiln"), { recursive: true });
    writeFileSync(clientConfigFile(env), JSON.stringify({ server: "http://file:1/" }));
    expect(createClient({}, env, dir).server).toBe("http://file:1");
    expect(createClient({}, { ...env, KILN_SERVER: "http://env:2" }, dir).server).toBe("http://env:2");
    expect(
      createClient({ server: "http://flag:3" }, { ...env, KILN_SERVER: "http://env:2" }, dir).server,
    ).toBe("http://flag:3");
  });

  it("says what is wrong with a bad config file", () => {
    writeFileSync(clientConfigFile(env), JSON.stringify({ sever: "typo" }));
    expect(() => createClient({}, env, dir)).toThrow(/client.json is not valid/);
  });

  it("names the server it cannot reach, with what to do", async () => {
    const api = createClient({ server: "http://127.0.0.1:9" }, {}, dir);
    await expect(api.request("GET", "/v1/apps")).rejects.toThrow(
      /cannot reach the kiln server at http:\/\/127.0.0.1:9/,
    );
  });
});
