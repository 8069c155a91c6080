/**
 * Where kiln may fetch on a tenant's behalf. Dependency tarballs: only from npm's configured
 * registry and the operator's KILN_FETCH_ALLOW origins, compared as URL origins (scheme, host,
 * port), so `resolved` URLs cannot aim the host's fetcher at its loopback services or other apps'
 * dynos. nix/build/node-deps.nix applies the same rule in pure Nix.
 */

/**
 * `https://Host:443/x` → `https://host`; undefined for what is not an http(s) URL. Textual, the
 * same regular expression as node-deps.nix's `originOf`, so both sides read a URL alike; an origin
 * is allowed only when it equals an allowed one exactly.
 */
export function originOf(url: string): string | undefined {
  const m = /^(https?):\/\/([^/?#@]*@)?([^/?#]*)/is.exec(url);
  if (!m) return undefined;
  // ASCII only, as Nix's replaceStrings does it (toLowerCase would fold e.g. U+212A to "k").
  const lower = (t: string) => t.replace(/[A-Z]/g, (c) => c.toLowerCase());
  const scheme = lower(m[1] ?? "");
  const host = lower(m[3] ?? "");
  const port = scheme === "https" ? ":443" : ":80";
  return `${scheme}://${host.endsWith(port) ? host.slice(0, -port.length) : host}`;
}

/** The registry's origin and the operator's allow-list, normalised. */
export function allowedOrigins(registry: string | undefined, allow: readonly string[]): string[] {
  const all = [...(registry ? [registry] : []), ...allow].map(originOf);
  return [...new Set(all.filter((o): o is string => o !== undefined))].sort();
}
