/** Debian control-file paragraphs (the format `apt-cache show` prints) and dependency fields. */

export type Paragraph = Record<string, string>;

export function parseParagraphs(text: string): Paragraph[] {
  const out: Paragraph[] = [];
  let cur: Paragraph = {};
  let lastKey: string | undefined;
  for (const line of text.split("\n")) {
    if (line.trim() === "") {
      if (Object.keys(cur).length > 0) out.push(cur);
      cur = {};
      lastKey = undefined;
      continue;
    }
    if ((line.startsWith(" ") || line.startsWith("\t")) && lastKey) {
      cur[lastKey] += `\n${line.trim()}`;
      continue;
    }
    const i = line.indexOf(":");
    if (i <= 0) continue;
    lastKey = line.slice(0, i);
    cur[lastKey] = line.slice(i + 1).trim();
  }
  if (Object.keys(cur).length > 0) out.push(cur);
  return out;
}

/** `a (>= 1) | b, c:any` → [["a","b"],["c"]]: groups of alternatives, versions and arch qualifiers dropped. */
export function parseDependsField(field: string | undefined): string[][] {
  if (!field) return [];
  return field
    .split(",")
    .map((group) =>
      group
        .split("|")
        .map((alt) =>
          alt
            .trim()
            .replace(/\s*\(.*?\)/, "")
            .replace(/\s*\[.*?\]/, "")
            .replace(/\s*<.*?>/, "")
            .replace(/:\w+$/, ""),
        )
        .filter((n) => n.length > 0),
    )
    .filter((g) => g.length > 0);
}
