/**
 * The one place commands that talk to a kiln server get `--server` / `--token` and their client:
 * flags first, then Config (KILN_SERVER, KILN_TOKEN, the client file, this machine's admin token).
 */
import { type Command, Option } from "commander";
import { type Client, createClient } from "./client.js";
import type { ContextFactory } from "./context.js";

export interface ServerFlags {
  server?: string;
  token?: string;
}

/** --server, for a chain's `.addOption()`; `help` rewords it where a server is optional. */
export const serverOption = (help = "the kiln server (env KILN_SERVER; default http://127.0.0.1:5080)") =>
  new Option("--server <url>", help);

/** --token, for a chain's `.addOption()`. */
export const tokenOption = (help = "an API token (env KILN_TOKEN; default: this machine's admin token)") =>
  new Option("--token <token>", help);

/** Adds --server and --token (`help` rewords them). */
export function withServer(cmd: Command, help: ServerFlags = {}): Command {
  return cmd.addOption(serverOption(help.server)).addOption(tokenOption(help.token));
}

/** Adds -a/--app, required unless `optional` (then `help` says what it changes). */
export function withApp(cmd: Command, optional?: { help: string }): Command {
  return optional
    ? cmd.option("-a, --app <name>", optional.help)
    : cmd.requiredOption("-a, --app <name>", "the app");
}

/** The client for this command's flags. */
export function clientOf(cmd: Command, ctx: ContextFactory): Client {
  const o = cmd.optsWithGlobals() as ServerFlags;
  const { config } = ctx(cmd.optsWithGlobals());
  return createClient(
    { ...(o.server ? { server: o.server } : {}), ...(o.token ? { token: o.token } : {}) },
    config,
  );
}

/** The server a command was pointed at (--server, else KILN_SERVER), if any: commands that run locally otherwise. */
export function remoteServer(cmd: Command, ctx: ContextFactory): string | undefined {
  const o = cmd.optsWithGlobals() as ServerFlags;
  return o.server ?? ctx(cmd.optsWithGlobals()).config.server;
}
