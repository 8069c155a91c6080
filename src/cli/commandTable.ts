/**
 * Every command module, and what `kiln --help` lists for it, without importing it: a module (and
 * the fastify, SQLite, chokidar behind it) loads only when one of its commands runs or shows its
 * own --help. A new module is ONE entry here; test/unit/commandTable.test.ts fails (printing the
 * lines to paste) when a module's commands and its entry disagree.
 */
import type { Command } from "commander";
import type { ContextFactory } from "./context.js";

export type Register = (program: Command, ctx: ContextFactory) => void;

export interface CommandModule {
  load: () => Promise<Register>;
  /** Its commands as `kiln --help` lists them: [term, description]; the term's first word is the name. */
  commands: readonly (readonly [string, string])[];
}

export const COMMAND_MODULES: readonly CommandModule[] = [
  {
    load: async () => (await import("./buildCommands.js")).registerBuildCommands,
    commands: [
      [
        "build [options] [dir]",
        "build an app directory into a slug and a release, hermetically, in the Nix sandbox",
      ],
    ],
  },
  {
    load: async () => (await import("./checkCommands.js")).registerCheckCommands,
    commands: [
      [
        "check [options] [dir]",
        "rebuild an app with variations that must not matter and prove the slugs are byte-identical",
      ],
    ],
  },
  {
    load: async () => (await import("./dynoCommands.js")).registerDynoCommands,
    commands: [
      [
        "run [options] <slug-or-build> [command...]",
        "run a built app as a dyno in the foreground (a process type, or a one-off command after --)",
      ],
      [
        "ps [options] [app]",
        "list the dynos running on this machine (state, limits enforced); -a APP: an app's on a server",
      ],
      ["logs [options] <app>", "show an app's logs (dyno output and kiln's events); -t follows them"],
    ],
  },
  {
    load: async () => (await import("./seedCommands.js")).registerSeedCommands,
    commands: [
      ["seed [options]", "the bootstrap seed: pinned Debian packages and Node, imported into the Nix store"],
    ],
  },
  {
    load: async () => (await import("./serveCommands.js")).registerServeCommands,
    commands: [
      ["serve [options]", "run kiln's HTTP build API: apps, config, builds (queued), releases, formation"],
    ],
  },
  {
    load: async () => (await import("./bootstrapCommands.js")).registerBootstrapCommands,
    commands: [
      [
        "bootstrap [options]",
        "kiln builds itself with itself (stage0 → stage3), hosts itself, and checks the fixed point",
      ],
    ],
  },
  {
    load: async () => (await import("./clientCommands.js")).registerClientCommands,
    commands: [
      ["apps [options]", "list the server's apps"],
      ["apps:create [options] <name>", "create an app on the server"],
      ["apps:destroy [options] <name>", "delete an app and all its records"],
      [
        "deploy [options] [dir]",
        "upload an app directory, build it on the server (log streamed), release it",
      ],
      [
        "dev [options] [dir]",
        "watch an app directory: on every change, build it on the server and roll its dynos",
      ],
      ["releases [options]", "an app's releases, newest first"],
      ["builds [options]", "an app's builds, newest first: status, slug, and where each ran (built on)"],
      ["rollback [options] <version>", "release an earlier version again (as a new release)"],
      ["config [options]", "an app's config vars"],
      ["config:set [options] <pairs...>", "set config vars (a new release)"],
      ["config:unset [options] <names...>", "unset config vars (a new release)"],
      ["ps:scale [options] <changes...>", "set how many dynos of each type run"],
      ["ps:restart [options] [dyno]", "restart an app's dynos (all, or one)"],
      ["whoami [options]", "the user this token acts for"],
      ["users [options]", "list the server's users (admins only)"],
      [
        "users:create [options] <name>",
        "make a user (admins only); then give them a token with kiln tokens:create",
      ],
      ["tokens [options]", "your tokens (an admin: everyone's)"],
      [
        "tokens:create [options] <name>",
        "make an API token (shown once): yours, or (an admin) another user's",
      ],
      ["tokens:revoke [options] <id>", "revoke a token (yours; an admin: any)"],
      ["access [options]", "who works on an app: its owner and collaborators"],
      [
        "access:add [options] <user>",
        "let a user deploy, configure and scale an app (its owner or an admin)",
      ],
      [
        "access:remove [options] <user>",
        "take a collaborator off an app (its owner or an admin; or yourself, to leave)",
      ],
    ],
  },
  {
    load: async () => (await import("./imageCommands.js")).registerImageCommands,
    commands: [
      [
        "image [options] <app-or-build>",
        "export a build as an OCI image: the run stack, then the slug at /app (no config vars)",
      ],
    ],
  },
  {
    load: async () => (await import("./stackCommands.js")).registerStackCommands,
    commands: [["stack", "the stack images (run, build): rootfs trees built from the seed"]],
  },
  {
    load: async () => (await import("./gitCommands.js")).registerGitCommands,
    commands: [
      [
        "git:remote [options]",
        "add a git remote for an app (git push kiln main deploys it) and its credential helper",
      ],
      [
        "git:credential [options] <action>",
        "git's credential helper for kiln remotes (set up by kiln git:remote)",
      ],
      [
        "git:branch [options] [branch]",
        "show or set the branch whose pushes deploy an app (default: main or master)",
      ],
    ],
  },
  {
    load: async () => (await import("./cacheCommands.js")).registerCacheCommands,
    commands: [
      [
        "verify [options] <file>",
        "check a file against its signed provenance (an in-toto bundle of DSSE envelopes)",
      ],
      ["provenance", "this kiln's provenance signing key"],
      ["cache", "kiln's signed Nix binary cache (served by kiln serve)"],
    ],
  },
  {
    load: async () => (await import("./inventoryCommands.js")).registerInventoryCommands,
    commands: [
      ["inventory", "the pinned Node.js, npm, yarn and pnpm releases builds choose from (nix/inventory/)"],
    ],
  },
];

/** The module a command name belongs to. */
export function moduleOf(name: string): CommandModule | undefined {
  return COMMAND_MODULES.find((m) => m.commands.some(([term]) => term.split(" ")[0] === name));
}
