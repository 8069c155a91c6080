/**
 * Runs buildpack programs inside the build sandbox, streaming their output line by line with the
 * phase in front (`compile | …`), so the kiln CLI can show it live. (The tools run inside the
 * sandbox with only Node's standard library and a few pure-JS packages: no execa here.)
 */
import { spawn } from "node:child_process";

export function say(phase: string, line: string): void {
  process.stdout.write(`${phase.padEnd(7)} | ${line}\n`);
}

export interface SpawnResult {
  code: number;
  stdout: string;
}

/** Runs `cmd`; each output line is echoed with the phase (unless `capture`, which collects stdout). */
export function runPhase(
  phase: string,
  cmd: string,
  args: string[],
  opts: { cwd: string; capture?: boolean; env?: NodeJS.ProcessEnv },
): Promise<SpawnResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    const pipe = (stream: NodeJS.ReadableStream, isStdout: boolean) => {
      let buf = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => {
        if (isStdout && opts.capture) {
          stdout += chunk;
          return;
        }
        buf += chunk;
        let i = buf.indexOf("\n");
        while (i !== -1) {
          say(phase, buf.slice(0, i));
          buf = buf.slice(i + 1);
          i = buf.indexOf("\n");
        }
      });
      stream.on("end", () => {
        if (buf) say(phase, buf);
      });
    };
    if (child.stdout) pipe(child.stdout, true);
    if (child.stderr) pipe(child.stderr, false);
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), stdout }));
  });
}
