/**
 * git's smart HTTP protocol on the API's port, as `git http-backend` speaks it: the real
 * `git receive-pack` / `git upload-pack --stateless-rpc` answer, kiln only authenticates, bounds and
 * relays. Auth as Heroku's: HTTP Basic with any user name and an API token as the password (or
 * `Authorization: Bearer`); no credentials is a 401 with a Basic challenge (git then asks its
 * credential helper); an app the caller may not see is the API's 404. Also the app's git settings
 * (its deploy branch) under /v1.
 */
import { randomUUID } from "node:crypto";
import { createReadStream, mkdirSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { pipeline, type Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from "fastify";
import { KilnError } from "../../errors.js";
import { installHooks } from "../../git/hookScript.js";
import { type Access, deployBranchesOf, startPushServer } from "../../git/pushes.js";
import { createGitRepos, type GitService, gitEnv, serviceConfig, spawnService } from "../../git/repos.js";
import { run } from "../../process/run.js";
import { receiveUpload } from "../../source/upload.js";
import { type App, DEFAULT_DEPLOY_BRANCHES, setDeployBranch } from "../../store/apps.js";
import { type TokenInfo, verifyToken } from "../../store/tokens.js";
import { tokenOfHeader } from "../auth.js";
import type { ApiDeps, RouteDeps } from "../deps.js";
import * as wire from "../wire.js";

/** The API's own deps (maxSourceBytes is also the largest push, as a pack, accepted) and its tenancy. */
export type GitRoutesOptions = Pick<ApiDeps, "db" | "log" | "dataDir" | "queue" | "logs" | "maxSourceBytes"> &
  Pick<RouteDeps, "unpacked"> & {
    access: Access;
  };

/** A fetch's request (wants and haves) is small; a clone of a huge history has many haves. */
const MAX_UPLOAD_PACK_REQUEST = 16 * 1024 * 1024;

const SERVICES: readonly GitService[] = ["git-receive-pack", "git-upload-pack"];

const pktLine = (s: string) => `${(s.length + 4).toString(16).padStart(4, "0")}${s}`;

/** A branch name git accepts (git check-ref-format), refused with the reason otherwise. */
async function assertBranchName(name: string): Promise<void> {
  const r = await run("git", ["check-ref-format", "--branch", name], {
    env: gitEnv(),
    extendEnv: false,
    reject: false,
  });
  if (r.exitCode !== 0 || name.startsWith("-")) {
    throw new KilnError({
      code: "invalid_branch",
      message: `"${name}" is not a valid branch name`,
      hint: "use a name git accepts (git check-ref-format --branch NAME), e.g. main or production",
      details: { field: "deploy_branch" },
    });
  }
}

export const gitRoutes: FastifyPluginAsync<GitRoutesOptions> = async (api, opts) => {
  const { db } = opts;
  const repos = createGitRepos(opts.dataDir);
  await installHooks(repos.hooksDir);
  const tmp = join(opts.dataDir, "tmp");
  mkdirSync(tmp, { recursive: true });
  const pushes = await startPushServer(opts);
  api.addHook("onClose", async () => pushes.close());
  const config = serviceConfig({ hooksDir: repos.hooksDir, maxInputBytes: opts.maxSourceBytes });

  // git's request bodies are read by the routes, as streams.
  for (const s of SERVICES)
    api.addContentTypeParser(`application/x-${s}-request`, (_req, payload, done) => done(null, payload));

  const callerOf = (req: FastifyRequest, reply: FastifyReply): TokenInfo => {
    const token = tokenOfHeader(req.headers.authorization);
    const info = token ? verifyToken(db, token) : undefined;
    if (!info) {
      void reply.header("www-authenticate", 'Basic realm="kiln"');
      throw new KilnError({
        code: "unauthorized",
        message: token ? "that API token is not valid" : "a valid API token is required",
        hint: "git: kiln git:remote -a APP sets up the credential helper (or use an API token as the password)",
      });
    }
    return info;
  };
  const appOfRepo = (repo: string, caller: TokenInfo, need: "read" | "write"): App =>
    opts.access.appFor(caller, repo.endsWith(".git") ? repo.slice(0, -4) : repo, need);
  const serviceOf = (name: unknown): GitService => {
    if (!SERVICES.includes(name as GitService)) {
      throw new KilnError({
        code: "invalid_service",
        message: `kiln serves git-receive-pack and git-upload-pack, not ${String(name || "the dumb protocol")}`,
        hint: "use git 1.6.6 or later (smart HTTP)",
      });
    }
    return name as GitService;
  };

  api.get<{ Params: { repo: string }; Querystring: { service?: string } }>(
    "/git/:repo/info/refs",
    async (req, reply) => {
      const service = serviceOf(req.query.service);
      const caller = callerOf(req, reply);
      const app = appOfRepo(req.params.repo, caller, service === "git-receive-pack" ? "write" : "read");
      const repo = await repos.ensure(app);
      const git = spawnService({ service, repo, advertise: true, config });
      git.child.stdin?.end();
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        "content-type": `application/x-${service}-advertisement`,
        "cache-control": "no-cache, max-age=0, must-revalidate",
      });
      res.write(`${pktLine(`# service=${service}\n`)}0000`);
      git.child.stdout?.pipe(res);
      await git.exited;
    },
  );

  const rpc = (service: GitService) =>
    api.post<{ Params: { repo: string } }>(`/git/:repo/${service}`, async (req, reply) => {
      const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim();
      if (type !== `application/x-${service}-request`) {
        throw new KilnError({
          code: "unsupported_media_type",
          message: `${service} takes application/x-${service}-request, not ${type || "no content type"}`,
        });
      }
      const caller = callerOf(req, reply);
      const app = appOfRepo(req.params.repo, caller, service === "git-receive-pack" ? "write" : "read");
      const repo = await repos.ensure(app);
      // The whole request first (git sends all of it before it reads the answer): bounded, to a
      // file, so an oversize push is a 413 before git sees a byte of it.
      const file = join(tmp, `git-${randomUUID()}.request`);
      const encoding = (req.headers["content-encoding"] ?? "").trim();
      if (encoding && encoding !== "gzip" && encoding !== "x-gzip") {
        throw new KilnError({
          code: "unsupported_media_type",
          message: `a git request may be gzip-encoded, not ${encoding}`,
        });
      }
      const body = req.body as Readable;
      const maxBytes = service === "git-receive-pack" ? opts.maxSourceBytes : MAX_UPLOAD_PACK_REQUEST;
      try {
        // pipeline, not pipe: a client that hangs up mid-body destroys the gunzip stream too, so
        // the read fails and the partial file is removed (pipe left both open).
        await receiveUpload(encoding ? pipeline(body, createGunzip(), () => {}) : body, { file, maxBytes });
      } catch (err) {
        await rm(file, { force: true });
        if (err instanceof Error && "code" in err && String(err.code).startsWith("Z_"))
          throw new KilnError({
            code: "invalid_body",
            message: `the gzip-encoded request is broken: ${err.message}`,
          });
        throw err;
      }
      let finished!: () => void;
      const done = new Promise<void>((r) => (finished = r));
      const env = service === "git-receive-pack" ? pushes.open({ app, caller, repo, done }) : {};
      const git = spawnService({ service, repo, advertise: false, config, env });
      let stderr = "";
      git.child.stderr?.on("data", (d: Buffer) => {
        if (stderr.length < 8000) stderr += d.toString("utf8");
      });
      const input = createReadStream(file);
      input.on("error", () => git.child.stdin?.destroy());
      if (git.child.stdin) input.pipe(git.child.stdin);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        "content-type": `application/x-${service}-result`,
        "cache-control": "no-cache, max-age=0, must-revalidate",
      });
      const out = git.child.stdout;
      out?.pipe(res);
      // A pusher that hangs up does not stop its push: git goes on (and the build, and the ref
      // update after it) with its output drained to nowhere.
      res.on("close", () => {
        if (out && !out.readableEnded) {
          out.unpipe(res);
          out.resume();
          req.log.info({ app: app.name, service }, "git client gone; the push goes on");
        }
      });
      const end = await git.exited;
      finished();
      await rm(file, { force: true });
      if (end.exitCode !== 0)
        req.log.warn(
          { app: app.name, service, exit: end.exitCode, signal: end.signal, stderr },
          "git failed",
        );
      req.log.info({ app: app.name, service, user: caller.user, exit: end.exitCode }, "git request");
    });
  for (const s of SERVICES) rpc(s);

  // The app's git settings: where to push, and which branch deploys.
  const gitView = (app: App): wire.GitSettings => ({
    app: app.name,
    git_path: `/git/${app.name}.git`,
    deploy_branch: app.deployBranch,
    deploy_branches: [...deployBranchesOf(app)],
    default_deploy_branches: [...DEFAULT_DEPLOY_BRANCHES],
  });
  api.get<{ Params: { app: string } }>(
    "/v1/apps/:app/git",
    { schema: { response: { 200: wire.gitSettings } } },
    async (req, reply) => gitView(opts.access.appFor(callerOf(req, reply), req.params.app, "read")),
  );
  api.patch<{ Params: { app: string } }>(
    "/v1/apps/:app/git",
    { schema: { response: { 200: wire.gitSettings } } },
    async (req, reply) => {
      const app = opts.access.appFor(callerOf(req, reply), req.params.app, "write");
      const r = wire.gitSettingsPatch.safeParse(req.body);
      if (!r.success) {
        throw new KilnError({
          code: "invalid_body",
          message: 'invalid request: the body is {"deploy_branch": BRANCH} (null: main or master)',
          details: { field: "deploy_branch" },
        });
      }
      if (r.data.deploy_branch !== null) await assertBranchName(r.data.deploy_branch);
      return gitView(setDeployBranch(db, app.id, r.data.deploy_branch));
    },
  );
};
