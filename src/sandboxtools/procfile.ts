/** Procfile: `name: command` per line (Heroku's format). Used on the host to validate before a
 * build, and in the sandbox to cut the release. */

export interface ProcfileError {
  line: number;
  text: string;
  reason: string;
}

export function parseProcfile(text: string): { processes: Record<string, string>; errors: ProcfileError[] } {
  const processes: Record<string, string> = {};
  const errors: ProcfileError[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const m = /^([A-Za-z0-9_-]+)\s*:\s*(.*)$/.exec(line);
    if (!m) {
      errors.push({
        line: i + 1,
        text: raw,
        reason: "expected `name: command` (a name of letters, digits, _ or -)",
      });
      return;
    }
    const [, name, command] = m as unknown as [string, string, string];
    if (command.trim() === "")
      errors.push({ line: i + 1, text: raw, reason: `process type "${name}" has no command` });
    else if (name in processes)
      errors.push({ line: i + 1, text: raw, reason: `process type "${name}" is defined twice` });
    else processes[name] = command.trim();
  });
  if (Object.keys(processes).length === 0 && errors.length === 0) {
    errors.push({ line: 0, text: "", reason: "the Procfile defines no process types" });
  }
  return { processes, errors };
}
