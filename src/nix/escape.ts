/**
 * The one way kiln turns values into Nix code. Anything kiln generates goes through `toNix`, so an
 * untrusted string can never end a string literal or start an antiquotation. (Most of kiln passes
 * JSON into hand-written .nix files instead; this is for the few generated expressions.)
 */
export type NixValue = string | number | boolean | null | NixValue[] | { [key: string]: NixValue };

/** Escapes a string for use inside a double-quoted Nix string literal (without the quotes). */
export function escapeNixString(s: string): string {
  return s
    .replaceAll("\\", "\\\\")
    .replaceAll('"', '\\"')
    .replaceAll("${", "\\${")
    .replaceAll("\n", "\\n")
    .replaceAll("\r", "\\r")
    .replaceAll("\t", "\\t");
}

const bareAttrName = /^[A-Za-z_][A-Za-z0-9_'-]*$/;
const reserved = new Set(["if", "then", "else", "assert", "with", "let", "in", "rec", "inherit", "or"]);

export function toNix(value: NixValue): string {
  if (value === null) return "null";
  if (typeof value === "string") return `"${escapeNixString(value)}"`;
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new TypeError(`cannot express ${value} in Nix`);
    // Nix has no exponent syntax and negative literals parse as unary minus.
    const text = Number.isInteger(value) ? value.toFixed(0) : value.toString();
    if (text.includes("e")) throw new TypeError(`cannot express ${value} in Nix`);
    return value < 0 ? `(${text})` : text;
  }
  if (Array.isArray(value)) return `[ ${value.map((v) => `(${toNix(v)})`).join(" ")} ]`;
  const entries = Object.keys(value)
    .sort()
    .map((k) => {
      const name = bareAttrName.test(k) && !reserved.has(k) ? k : toNix(k);
      return `${name} = ${toNix(value[k] as NixValue)};`;
    });
  return `{ ${entries.join(" ")} }`;
}

/** `(import PATH { … })`: a Nix file (or a directory's default.nix) applied to its arguments. */
export function importExpr(path: string, args: { [key: string]: NixValue }): string {
  return `(import ${toNix(path)} ${toNix(args)})`;
}

/** `(EXPR.NAME ARG …)`: an attribute of a generated expression, applied to values. */
export function selectExpr(expr: string, name: string, args: NixValue[] = []): string {
  if (!bareAttrName.test(name) || reserved.has(name))
    throw new TypeError(`not a bare attribute name: ${name}`);
  return `(${[`${expr}.${name}`, ...args.map((a) => `(${toNix(a)})`)].join(" ")})`;
}
