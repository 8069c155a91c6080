/**
 * git push to kiln: `kiln git:remote` points a checkout at an app's repository (a `kiln` remote and
 * a credential helper scoped to that URL), `kiln git:credential` is that helper (it hands git the
 * token kiln's own client config has, so no token is ever written into .git/config), and
 * `kiln git:branch` shows or sets which branch deploys.
 */
import { resolve } from "node:path";
import type { Command } from "commander";
import * as wire from "../api/wire.js";
import { KilnError } from "../errors.js";
import { run, shellQuote } from "../process/run.js";
import type { Client } from "./client.js";
import type { ContextFactory } from "./context.js";
import { printJson, printLines } from "./output.js";
import { clientOf, type ServerFlags, withServer } from "./serverOptions.js";

/** git's credential protocol: key=value lines. */
function parseCredentialRequest(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

const git = (cwd: string, ...args: string[]) => run("git", args, { cwd, reject: false });

export function registerGitCommands(program: Command, ctx: ContextFactory): void {
  const client = (cmd: Command): Client => clientOf(cmd, ctx);

  withServer(
    program
      .command("git:remote")
      .description("add a git remote for an app (git push kiln main deploys it) and its credential helper")
      .requiredOption("-a, --app <name>", "the app")
      .option("-r, --remote <name>", "the remote's name", "kiln")
      .option("-C, --dir <dir>", "the git checkout", "."),
  )
    .addHelpText(
      "after",
      `
The remote's URL is SERVER/git/APP.git. git asks kiln for the password (an API token) through a
credential helper set for that URL only (credential.URL.helper = kiln git:credential), which reads
the token the way every kiln command does (--token, KILN_TOKEN, ~/.config/kiln/client.json, this
machine's admin token): no token is written into .git/config, and other helpers (a global
credential.helper=store) are switched off for that URL, so none keeps a copy.

  kiln git:remote -a myapp
  git push kiln main`,
    )
    .action(async (opts: { app: string; remote: string; dir: string }, cmd: Command) => {
      const c = client(cmd);
      const info = await c.request(wire.gitSettings, "GET", `/v1/apps/${encodeURIComponent(opts.app)}/git`);
      const url = `${c.server}${info.git_path}`;
      const dir = resolve(opts.dir);
      const top = await git(dir, "rev-parse", "--show-toplevel");
      if (top.exitCode !== 0) {
        throw new KilnError({
          code: "not_a_git_checkout",
          message: `${dir} is not in a git checkout`,
          hint: "run it inside your app's repository (git init first), or pass -C DIR",
        });
      }
      const has = await git(dir, "remote", "get-url", opts.remote);
      await git(dir, "remote", has.exitCode === 0 ? "set-url" : "add", opts.remote, url);
      // The kiln that runs now answers git later (same node, same script), with this server.
      const self = [process.execPath, resolve(process.argv[1] ?? "kiln")].map(shellQuote).join(" ");
      const key = `credential.${url}.helper`;
      await git(dir, "config", "--unset-all", key);
      // An empty helper first resets the list: no other helper sees (or stores) the token.
      await git(dir, "config", "--add", key, "");
      await git(dir, "config", "--add", key, `!${self} git:credential --server ${shellQuote(c.server)}`);
      printLines([
        `${opts.remote}\t${url}`,
        `deploys from ${info.deploy_branches.join(" or ")}: git push ${opts.remote} ${info.deploy_branches[0] ?? "main"}`,
      ]);
    });

  const credential = program
    .command("git:credential")
    .description("git's credential helper for kiln remotes (set up by kiln git:remote)")
    .argument("<action>", "get, store or erase (git's credential protocol)");
  withServer(credential, {
    server: "answer only for this kiln server",
    token: "the API token to hand out",
  }).action(async (action: string, _opts: ServerFlags, cmd: Command) => {
    const req = parseCredentialRequest(await readStdin());
    // store and erase: kiln's token lives in kiln's config, git keeps nothing.
    if (action !== "get") return;
    const c = clientOf(cmd, ctx);
    const server = new URL(c.server);
    if (req.protocol !== server.protocol.replace(/:$/, "") || req.host !== server.host) return;
    const token = c.token;
    if (!token) return; // git then says the authentication failed
    process.stdout.write(`username=kiln\npassword=${token}\n`);
  });

  withServer(
    program
      .command("git:branch")
      .description("show or set the branch whose pushes deploy an app (default: main or master)")
      .requiredOption("-a, --app <name>", "the app")
      .argument("[branch]", "the branch to deploy from")
      .option("--default", "back to the default (main or master)")
      .option("--json", "print machine-readable JSON"),
  ).action(
    async (
      branch: string | undefined,
      opts: { app: string; default?: boolean; json?: boolean },
      cmd: Command,
    ) => {
      const c = client(cmd);
      const path = `/v1/apps/${encodeURIComponent(opts.app)}/git`;
      if (branch !== undefined && opts.default) {
        throw new KilnError({
          code: "usage",
          message: "give a branch or --default, not both",
          hint: `kiln git:branch production -a ${opts.app}`,
        });
      }
      const info =
        branch !== undefined || opts.default
          ? await c.request(wire.gitSettings, "PATCH", path, { deploy_branch: opts.default ? null : branch })
          : await c.request(wire.gitSettings, "GET", path);
      if (opts.json) return printJson(info);
      printLines([`${info.app} deploys pushes to ${info.deploy_branches.join(" or ")}`]);
    },
  );
}
