/** Commands that talk to a kiln server (kiln serve): apps, deploy, releases, config, formation, users, tokens, access. */

import { openAsBlob } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import type { Command } from "commander";
import * as wire from "../api/wire.js";
import { writeTarGzOf } from "../archive/tar.js";
import { KilnError } from "../errors.js";
import { deployFiles } from "../source/deploySource.js";
import { watchDir } from "../watch/watch.js";
import { type Client, parseAnswer, readResponse } from "./client.js";
import type { ContextFactory } from "./context.js";
import { escapeControl, printJson, printLines } from "./output.js";
import { clientOf, withApp, withServer } from "./serverOptions.js";

export function registerClientCommands(program: Command, ctx: ContextFactory): void {
  const client = (cmd: Command): Client => clientOf(cmd, ctx);

  withServer(program.command("apps").description("list the server's apps"))
    .option("--json", "print machine-readable JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const apps = await client(cmd).request(wire.app.array(), "GET", "/v1/apps");
      if (opts.json) return printJson(apps);
      printLines(apps.length ? apps.map((a) => a.name) : ["no apps yet: kiln apps:create NAME"]);
    });

  withServer(
    program.command("apps:create").description("create an app on the server").argument("<name>", "its name"),
  ).action(async (name: string, _opts: unknown, cmd: Command) => {
    const app = await client(cmd).request(wire.app, "POST", "/v1/apps", { name });
    printLines([`created ${app.name}; deploy it with: kiln deploy DIR --app ${app.name}`]);
  });

  withServer(
    program
      .command("apps:destroy")
      .description("delete an app and all its records")
      .argument("<name>", "the app"),
  )
    .requiredOption("--confirm <name>", "the app's name again")
    .action(async (name: string, opts: { confirm: string }, cmd: Command) => {
      if (opts.confirm !== name)
        throw new KilnError({
          code: "usage",
          message: "--confirm must repeat the app's name",
          hint: `--confirm ${name}`,
        });
      await client(cmd).request(wire.appDeleted, "DELETE", `/v1/apps/${encodeURIComponent(name)}`);
      printLines([`destroyed ${name}`]);
    });

  withApp(
    withServer(
      program
        .command("deploy")
        .description("upload an app directory, build it on the server (log streamed), release it")
        .argument("[dir]", "the app's source directory", "."),
    ),
  ).action(async (dir: string, opts: { app: string }, cmd: Command) => {
    const r = await deployDir(client(cmd), resolve(dir), opts.app);
    printLines([
      `released ${opts.app} v${r.version} (slug ${r.slug.slice(0, 12)})`,
      ...(r.webUrl ? [`  ${r.webUrl}`] : []),
    ]);
  });

  withApp(
    withServer(
      program
        .command("dev")
        .description("watch an app directory: on every change, build it on the server and roll its dynos")
        .argument("[dir]", "the app's source directory", "."),
    ),
  )
    .option("--debounce <ms>", "wait this long after the last change", (v) => Number(v), 300)
    .action(async (dir: string, opts: { app: string; debounce: number }, cmd: Command) => {
      const c = ctx(cmd.optsWithGlobals());
      const api = client(cmd);
      const root = resolve(dir);
      let running = Promise.resolve();
      let again = false;
      const cycle = async () => {
        try {
          const r = await deployDir(api, root, opts.app);
          process.stderr.write(
            `-----> ${opts.app} v${r.version} is live${r.webUrl ? ` at ${r.webUrl}` : ""}; watching ${root}\n`,
          );
        } catch (err) {
          // A failed build is part of developing: say why, keep watching.
          process.stderr.write(`-----> ${(err as Error).message}; watching for the next change\n`);
        }
      };
      // One build at a time; changes during a build make exactly one more.
      const trigger = () => {
        if (again) return;
        again = true;
        running = running.then(() => {
          again = false;
          return cycle();
        });
      };
      trigger();
      const watcher = watchDir(root, {
        debounceMs: opts.debounce,
        onSettled: (changed) => {
          process.stderr.write(`-----> ${changed.length} file(s) changed: rebuilding\n`);
          trigger();
        },
      });
      await new Promise<void>((r) => c.signal.addEventListener("abort", () => r(), { once: true }));
      await watcher.close();
      await running;
    });

  withApp(withServer(program.command("releases").description("an app's releases, newest first")))
    .option("--json", "print machine-readable JSON")
    .action(async (opts: { app: string; json?: boolean }, cmd: Command) => {
      const list = await client(cmd).request(
        wire.release.array(),
        "GET",
        `/v1/apps/${encodeURIComponent(opts.app)}/releases`,
      );
      if (opts.json) return printJson(list);
      printLines(
        list.length
          ? list.map(
              (r) =>
                `v${r.version}  ${r.created_at}  ${r.commit ? r.commit.slice(0, 7) : "-      "}  ${r.description}`,
            )
          : ["no releases yet"],
      );
    });

  withApp(
    withServer(
      program
        .command("builds")
        .description("an app's builds, newest first: status, slug, and where each ran (built on)"),
    ),
  )
    .option("--json", "print machine-readable JSON")
    .action(async (opts: { app: string; json?: boolean }, cmd: Command) => {
      const list = await client(cmd).request(
        wire.build.array(),
        "GET",
        `/v1/apps/${encodeURIComponent(opts.app)}/builds`,
      );
      if (opts.json) return printJson(list);
      printLines(list.length ? list.map(buildLine) : ["no builds yet"]);
    });

  withApp(
    withServer(
      program.command("rollback").description("release an earlier version again (as a new release)"),
    ),
  )
    .argument("<version>", "the release to go back to (v3 or 3)")
    .action(async (version: string, opts: { app: string }, cmd: Command) => {
      const n = Number(version.replace(/^v/, ""));
      if (!Number.isInteger(n) || n <= 0)
        throw new KilnError({
          code: "usage",
          message: `"${version}" is not a release version`,
          hint: "e.g. kiln rollback v3 -a APP",
        });
      const r = await client(cmd).request(
        wire.release,
        "POST",
        `/v1/apps/${encodeURIComponent(opts.app)}/releases`,
        { rollback: n },
      );
      printLines([`rolled back to v${n}: now v${r.version}`]);
    });

  withApp(withServer(program.command("config").description("an app's config vars")))
    .option("--json", "print machine-readable JSON")
    .action(async (opts: { app: string; json?: boolean }, cmd: Command) => {
      const cfg = await client(cmd).request(
        wire.configVars,
        "GET",
        `/v1/apps/${encodeURIComponent(opts.app)}/config-vars`,
      );
      if (opts.json) return printJson(cfg);
      printLines(
        Object.keys(cfg).length ? Object.entries(cfg).map(([k, v]) => `${k}=${v}`) : ["no config vars"],
      );
    });

  withApp(withServer(program.command("config:set").description("set config vars (a new release)")))
    .argument("<pairs...>", "NAME=value …")
    .action(async (pairs: string[], opts: { app: string }, cmd: Command) => {
      const patch: Record<string, string> = {};
      for (const p of pairs) {
        const i = p.indexOf("=");
        if (i <= 0)
          throw new KilnError({ code: "usage", message: `bad pair "${p}"`, hint: "write NAME=value" });
        patch[p.slice(0, i)] = p.slice(i + 1);
      }
      await client(cmd).request(
        wire.configVars,
        "PATCH",
        `/v1/apps/${encodeURIComponent(opts.app)}/config-vars`,
        patch,
      );
      printLines([`set ${Object.keys(patch).join(", ")}`]);
    });

  withApp(withServer(program.command("config:unset").description("unset config vars (a new release)")))
    .argument("<names...>", "NAME …")
    .action(async (names: string[], opts: { app: string }, cmd: Command) => {
      await client(cmd).request(
        wire.configVars,
        "PATCH",
        `/v1/apps/${encodeURIComponent(opts.app)}/config-vars`,
        Object.fromEntries(names.map((n) => [n, null])),
      );
      printLines([`unset ${names.join(", ")}`]);
    });

  withApp(withServer(program.command("ps:scale").description("set how many dynos of each type run")))
    .argument("<changes...>", "TYPE=N or TYPE=N:SIZE …")
    .action(async (changes: string[], opts: { app: string }, cmd: Command) => {
      const updates = changes.map((c) => {
        const m = /^([A-Za-z0-9_-]+)=(\d+)(?::([a-z0-9-]+))?$/.exec(c);
        if (!m)
          throw new KilnError({
            code: "usage",
            message: `bad scale "${c}"`,
            hint: "write e.g. web=2 or worker=1:basic",
          });
        return { type: m[1] as string, quantity: Number(m[2]), ...(m[3] ? { size: m[3] } : {}) };
      });
      const f = await client(cmd).request(
        wire.formation,
        "PATCH",
        `/v1/apps/${encodeURIComponent(opts.app)}/formation`,
        { updates },
      );
      printLines(f.map((e) => `${e.type}=${e.quantity} (${e.size})`));
    });

  withApp(withServer(program.command("ps:restart").description("restart an app's dynos (all, or one)")))
    .argument("[dyno]", "one dyno, e.g. web.1")
    .action(async (dyno: string | undefined, opts: { app: string }, cmd: Command) => {
      const path = `/v1/apps/${encodeURIComponent(opts.app)}/dynos${dyno ? `/${encodeURIComponent(dyno)}` : ""}`;
      const r = await client(cmd).request(wire.dynosRestarted, "DELETE", path);
      printLines([`restarted ${r.restarted} dyno(s)`]);
    });

  registerTenancyCommands(program, client);
}

/** Users (admins), tokens (a user's own; an admin's for anyone), and who works on an app (à la `heroku access`). */
function registerTenancyCommands(program: Command, client: (cmd: Command) => Client): void {
  withServer(program.command("whoami").description("the user this token acts for")).action(
    async (_opts: unknown, cmd: Command) => {
      const me = await client(cmd).request(wire.account, "GET", "/v1/account");
      printLines([`${me.name}${me.admin ? " (admin)" : ""}, token ${me.token.name} (${me.token.id})`]);
    },
  );

  withServer(program.command("users").description("list the server's users (admins only)"))
    .option("--json", "print machine-readable JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const users = await client(cmd).request(wire.user.array(), "GET", "/v1/users");
      if (opts.json) return printJson(users);
      printLines(users.map((u) => `${u.name}${u.admin ? " (admin)" : ""}`));
    });

  withServer(
    program
      .command("users:create")
      .description("make a user (admins only); then give them a token with kiln tokens:create")
      .argument("<name>", "their name (lowercase; an e-mail address fits)"),
  )
    .option("--admin", "a platform admin: may do everything, to every app")
    .action(async (name: string, opts: { admin?: boolean }, cmd: Command) => {
      const u = await client(cmd).request(wire.user, "POST", "/v1/users", {
        name,
        admin: opts.admin === true,
      });
      printLines([
        `created ${u.name}${u.admin ? " (admin)" : ""}; give them a token: kiln tokens:create NAME --user ${u.name}`,
      ]);
    });

  withServer(program.command("tokens").description("your tokens (an admin: everyone's)"))
    .option("--json", "print machine-readable JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const tokens = await client(cmd).request(wire.token.array(), "GET", "/v1/tokens");
      if (opts.json) return printJson(tokens);
      printLines(tokens.map((t) => `${t.id}  ${t.user}  ${t.name}  last used ${t.last_used_at ?? "never"}`));
    });

  withServer(
    program
      .command("tokens:create")
      .description("make an API token (shown once): yours, or (an admin) another user's")
      .argument("<name>", "what it is for, e.g. laptop or ci"),
  )
    .option("--user <user>", "whose token (admins only, for another user)")
    .action(async (name: string, opts: { user?: string }, cmd: Command) => {
      const t = await client(cmd).request(wire.tokenCreated, "POST", "/v1/tokens", {
        name,
        ...(opts.user ? { user: opts.user } : {}),
      });
      process.stderr.write(`token ${t.name} (${t.id}) for ${t.user}; it is shown this once:\n`);
      printLines([t.token ?? ""]);
    });

  withServer(
    program
      .command("tokens:revoke")
      .description("revoke a token (yours; an admin: any)")
      .argument("<id>", "its id"),
  ).action(async (id: string, _opts: unknown, cmd: Command) => {
    await client(cmd).request(wire.tokenRevoked, "DELETE", `/v1/tokens/${encodeURIComponent(id)}`);
    printLines([`revoked ${id}`]);
  });

  withApp(
    withServer(program.command("access").description("who works on an app: its owner and collaborators")),
  )
    .option("--json", "print machine-readable JSON")
    .action(async (opts: { app: string; json?: boolean }, cmd: Command) => {
      const list = await client(cmd).request(
        wire.collaborators,
        "GET",
        `/v1/apps/${encodeURIComponent(opts.app)}/collaborators`,
      );
      if (opts.json) return printJson(list);
      printLines(list.map((m) => `${m.user}  ${m.role}`));
    });

  withApp(
    withServer(
      program
        .command("access:add")
        .description("let a user deploy, configure and scale an app (its owner or an admin)")
        .argument("<user>", "the user"),
    ),
  ).action(async (user: string, opts: { app: string }, cmd: Command) => {
    await client(cmd).request(
      wire.collaborators,
      "POST",
      `/v1/apps/${encodeURIComponent(opts.app)}/collaborators`,
      { user },
    );
    printLines([`${user} now works on ${opts.app}`]);
  });

  withApp(
    withServer(
      program
        .command("access:remove")
        .description("take a collaborator off an app (its owner or an admin; or yourself, to leave)")
        .argument("<user>", "the user"),
    ),
  ).action(async (user: string, opts: { app: string }, cmd: Command) => {
    await client(cmd).request(
      wire.collaborators,
      "DELETE",
      `/v1/apps/${encodeURIComponent(opts.app)}/collaborators/${encodeURIComponent(user)}`,
    );
    printLines([`${user} no longer works on ${opts.app}`]);
  });
}

/** After a release: until a web dyno of it is up (or 60 s), so the printed URL answers. */
async function waitForWeb(api: Client, app: string, version: number): Promise<void> {
  const a = encodeURIComponent(app);
  const formation = await api.request(wire.formation, "GET", `/v1/apps/${a}/formation`);
  if (!formation.some((f) => f.type === "web" && f.quantity > 0)) return;
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const dynos = await api.request(wire.dynos, "GET", `/v1/apps/${a}/dynos`).catch((): wire.Dyno[] => []);
    if (dynos.some((d) => d.type === "web" && d.release === version && d.state === "up")) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  process.stderr.write(
    "note: no web dyno of the new release answered within 60 s (kiln ps -a APP, kiln logs APP)\n",
  );
}

/** Tar the directory (git's files, minus .gitignore and .slugignore), upload, stream the build, wait for the release. */
export async function deployDir(
  api: Client,
  root: string,
  app: string,
): Promise<{ version: number; slug: string; webUrl: string | null }> {
  const files = await deployFiles(root);
  if (files.length === 0)
    throw new KilnError({
      code: "usage",
      message: `${root} has nothing to deploy`,
      hint: "give the app's directory",
    });
  const a = encodeURIComponent(app);
  const tmp = await mkdtemp(join(tmpdir(), "kiln-deploy-"));
  try {
    const tarball = join(tmp, `${basename(root)}.tar.gz`);
    await writeTarGzOf(root, files, tarball);
    process.stderr.write(`-----> Uploading ${files.length} files to ${api.server}\n`);
    const res = await api.fetch(`/v1/apps/${a}/builds`, {
      method: "POST",
      headers: { "content-type": "application/gzip" },
      body: await openAsBlob(tarball),
    });
    const build = parseAnswer(wire.build, await readResponse(res), {
      server: api.server,
      what: `POST /v1/apps/${a}/builds`,
    });
    const out = await api.fetch(build.output_stream_url);
    if (out.body) for await (const chunk of out.body) process.stderr.write(chunk);
    const done = await api.request(wire.build, "GET", `/v1/apps/${a}/builds/${build.id}`);
    if (done.status !== "succeeded") {
      throw new KilnError({
        code: "build_failed",
        message: `build ${build.id} ${done.status}: ${done.failure_reason ?? ""}`,
        hint: "the build log above says why",
      });
    }
    const info = await api.request(wire.appShow, "GET", `/v1/apps/${a}`);
    if (info.web_url && info.release) await waitForWeb(api, app, info.release.version);
    return { version: info.release?.version ?? 0, slug: done.slug_sha256 ?? "", webUrl: info.web_url };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

/** `kiln ps -a APP`: the app's dynos on the server. */
export async function printRemoteDynos(api: Client, app: string, json: boolean): Promise<void> {
  const list = await api.request(wire.dynos, "GET", `/v1/apps/${encodeURIComponent(app)}/dynos`);
  if (json) return printJson({ dynos: list });
  printLines(
    list.length
      ? list.map(
          (d) =>
            `${d.name}: ${d.state} since ${d.since} (v${d.release}, ${d.restarts} restarts${d.last_exit ? `, last: ${d.last_exit}` : ""})`,
        )
      : [`no dynos: kiln ps:scale web=1 -a ${app}`],
  );
}

/** One build: where it ran is Nix's word (a builder's URI, "local"), or that nothing needed building. */
function buildLine(b: wire.Build): string {
  const where =
    b.built_on === null
      ? "-"
      : b.built_on.length
        ? b.built_on.map(escapeControl).join(", ")
        : "(nothing built)";
  const slug = b.slug_sha256 ? b.slug_sha256.slice(0, 12) : "-           ";
  return `${b.id.slice(0, 8)}  ${b.status.padEnd(9)}  ${b.created_at}  slug ${slug}  built on ${where}`;
}
