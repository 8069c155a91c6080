import { resolve } from "node:path";
import { type Command, Option } from "commander";
import { KilnError } from "../errors.js";
import { formatBytes } from "../nix/events.js";
import { stackExec } from "../stacks/sandbox.js";
import {
  buildStacks,
  checkStack,
  exportStack,
  parseStackName,
  STACK_NAMES,
  type StackName,
  stackInfo,
} from "../stacks/stacks.js";
import type { ContextFactory } from "./context.js";
import { printJson, printLines } from "./output.js";

function parseBind(value: string, previous: { src: string; dest: string }[] = []) {
  const i = value.indexOf(":");
  if (i <= 0 || i === value.length - 1) {
    throw new KilnError({
      code: "usage",
      message: `bad bind "${value}"`,
      hint: "write it as HOST_PATH:PATH_INSIDE",
    });
  }
  return [...previous, { src: resolve(value.slice(0, i)), dest: value.slice(i + 1) }];
}

export function registerStackCommands(program: Command, ctx: ContextFactory): void {
  const stack = program
    .command("stack")
    .description(`the stack images (${STACK_NAMES.join(", ")}): rootfs trees built from the seed`);

  stack
    .command("build")
    .description("build stacks (a no-op when already built); --check rebuilds and compares the bytes")
    .argument("[names...]", `which stacks (${STACK_NAMES.join(", ")})`, STACK_NAMES.join(","))
    .option("--check", "rebuild an already-built stack and fail if the result differs")
    .option("--json", "print machine-readable JSON")
    .action(async (names: string[] | string, opts: { check?: boolean; json?: boolean }, cmd: Command) => {
      const list = (Array.isArray(names) ? names : names.split(",")).map(parseStackName);
      const c = ctx(cmd.optsWithGlobals(), opts);
      const started = Date.now();
      const built = await buildStacks(c, list, { onProgress: c.progress.nix, signal: c.signal });
      if (opts.check) for (const s of list) await checkStack(c, s, { onProgress: c.progress.nix });
      c.progress.done();
      const infos = await Promise.all(built.map(async (b) => ({ ...b, ...(await stackInfo(c, b)) })));
      const seconds = (Date.now() - started) / 1000;
      if (opts.json) printJson({ stacks: infos, checked: !!opts.check, seconds });
      else
        printLines(
          infos.map(
            (s) =>
              `stack-${s.name}: ${s.storePath}\n  ${formatBytes(s.narSize)}, ${s.narHash}${opts.check ? ", rebuilt byte-identical" : ""}`,
          ),
        );
    });

  stack
    .command("info")
    .description("show a stack's store path, NAR hash and size (building it if needed)")
    .argument("<name>", STACK_NAMES.join(" | "))
    .option("--json", "print machine-readable JSON")
    .action(async (name: string, opts: { json?: boolean }, cmd: Command) => {
      const c = ctx(cmd.optsWithGlobals(), opts);
      const [b] = await buildStacks(c, [parseStackName(name)], { onProgress: c.progress.nix });
      c.progress.done();
      if (!b) return;
      const info = await stackInfo(c, b);
      if (opts.json) printJson({ ...b, ...info });
      else
        printLines([
          `stack-${b.name}`,
          `  path      ${b.storePath}`,
          `  NAR hash  ${info.narHash}`,
          `  size      ${formatBytes(info.narSize)}`,
          `  drv       ${b.drvPath}`,
        ]);
    });

  stack
    .command("export")
    .description("write a stack as a deterministic tar.gz (same bytes on every machine)")
    .argument("<name>", STACK_NAMES.join(" | "))
    .argument("<file>", "the .tar.gz to write")
    .option("--json", "print machine-readable JSON")
    .action(async (name: string, file: string, opts: { json?: boolean }, cmd: Command) => {
      const c = ctx(cmd.optsWithGlobals(), opts);
      c.progress.step(`exporting stack-${name}`);
      const r = await exportStack(c, parseStackName(name), resolve(file), { onProgress: c.progress.nix });
      c.progress.done();
      if (opts.json) printJson({ file: resolve(file), ...r });
      else printLines([`wrote ${file}`, `  sha256 ${r.sha256}`]);
    });

  stack
    .command("exec")
    .description("run a command in bubblewrap with the stack as / (no network, nothing of the host)")
    .argument("<name>", STACK_NAMES.join(" | "))
    .argument("<command...>", "the command and its arguments (put them after --)")
    .addOption(
      new Option("--ro-bind <host:inside>", "bind a host path read-only (repeatable)").argParser(parseBind),
    )
    .addOption(
      new Option("--bind <host:inside>", "bind a host path read-write (repeatable)").argParser(parseBind),
    )
    .option("--net", "share the host's network")
    .action(
      async (
        name: string,
        command: string[],
        opts: {
          roBind?: { src: string; dest: string }[];
          bind?: { src: string; dest: string }[];
          net?: boolean;
        },
        cmd: Command,
      ) => {
        const c = ctx(cmd.optsWithGlobals());
        const stackName: StackName = parseStackName(name);
        const [b] = await buildStacks(c, [stackName], { onProgress: c.progress.nix });
        c.progress.done();
        if (!b) return;
        const r = await stackExec(c.nix.realPath(b.storePath), command, {
          roBinds: opts.roBind ?? [],
          binds: opts.bind ?? [],
          ...(opts.net ? { shareNet: true } : {}),
          inherit: true,
          signal: c.signal,
        });
        process.exitCode = c.signal.aborted ? 130 : (r.exitCode ?? 1);
      },
    );
}
