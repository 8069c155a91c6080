/**
 * kiln's pre-receive hook: a relay, nothing more. git runs it (from kiln's hooks directory, never
 * the repository's) with the pushed ref updates on stdin and the quarantine in its environment; it
 * hands both, with the push's secret, to the server over loopback (the server that spawned this
 * receive-pack put port and secret in its environment), prints what the server says (git sends it
 * to the pusher as `remote:` lines) and exits as the server decides: 0 lets git move the refs.
 * The build belongs to the server: this process only waits for its verdict.
 */
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";

/** Hook → server: one JSON line. Server → hook: JSON lines `{"say": TEXT}`, then `{"exit": N}`. */
export interface HookRequest {
  secret: string;
  /** pre-receive's stdin: "OLD NEW REF" lines. */
  updates: string;
  quarantine: string | null;
  pushOptions: string[];
}

// Plain CommonJS on node's built-ins (the file has no extension, so node reads it as CommonJS).
const HOOK_BODY = String.raw`
"use strict";
const net = require("node:net");
const chunks = [];
process.stdin.on("data", (d) => chunks.push(d));
process.stdin.on("end", () => {
  const env = process.env;
  const options = [];
  for (let i = 0; i < Number(env.GIT_PUSH_OPTION_COUNT || 0); i++) options.push(env["GIT_PUSH_OPTION_" + i] || "");
  const port = Number(env.KILN_PUSH_PORT);
  if (!port || !env.KILN_PUSH_SECRET) {
    process.stdout.write("kiln: this hook runs only under kiln's git server\n");
    process.exit(1);
  }
  let exitCode = 1;
  let held = "";
  const sock = net.connect({ host: "127.0.0.1", port });
  sock.setEncoding("utf8");
  sock.on("connect", () => {
    sock.write(JSON.stringify({
      secret: env.KILN_PUSH_SECRET,
      updates: Buffer.concat(chunks).toString("utf8"),
      quarantine: env.GIT_QUARANTINE_PATH || null,
      pushOptions: options,
    }) + "\n");
  });
  sock.on("data", (d) => {
    held += d;
    let nl;
    while ((nl = held.indexOf("\n")) !== -1) {
      const line = held.slice(0, nl);
      held = held.slice(nl + 1);
      let m;
      try { m = JSON.parse(line); } catch { continue; }
      if (typeof m.say === "string") process.stdout.write(m.say + "\n");
      if (typeof m.exit === "number") exitCode = m.exit;
    }
  });
  sock.on("error", (e) => process.stdout.write("kiln: lost the server (" + e.message + "): push not deployed\n"));
  sock.on("close", () => process.exit(exitCode));
});
`;

/** Writes the hook into kiln's hooks directory, run by this very node binary. */
export async function installHooks(hooksDir: string): Promise<void> {
  await mkdir(hooksDir, { recursive: true, mode: 0o755 });
  const file = join(hooksDir, "pre-receive");
  const text = `#!${process.execPath}\n${HOOK_BODY.trimStart()}`;
  const current = await readFile(file, "utf8").catch(() => undefined);
  if (current === text) return;
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, text, { mode: 0o755 });
  await chmod(tmp, 0o755);
  await rename(tmp, file);
}
