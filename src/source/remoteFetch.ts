/**
 * Fetching a URL a tenant named (`source_blob`) without letting it aim the server at the server's
 * own network: https only, to addresses that are public (not loopback, private, link-local, CGNAT,
 * multicast or reserved), unless the operator allowed the origin (KILN_FETCH_ALLOW). The name is
 * resolved once, every address checked, and the connection made to the checked address (the
 * socket's `lookup` is ours), so DNS rebinding cannot swap it. Redirects are followed by hand and
 * each hop is checked the same way. Failures to connect all read the same, so a refused port and
 * a closed one cannot be told apart.
 */
import { lookup as dnsLookup } from "node:dns";
import type { IncomingMessage } from "node:http";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { BlockList, isIP, type LookupFunction } from "node:net";
import { KilnError } from "../errors.js";
import { originOf } from "./origins.js";

const MAX_REDIRECTS = 5;
const TIMEOUT_MS = 60_000;

/**
 * Addresses a tenant's URL may never reach (RFC 6890 special-purpose ranges, roughly). Two lists:
 * a BlockList matches IPv4 addresses against IPv6 rules too (as ::ffff:a.b.c.d).
 */
function blockedRanges(): { v4: BlockList; v6: BlockList } {
  const b = new BlockList();
  for (const [net, bits] of [
    ["0.0.0.0", 8],
    ["10.0.0.0", 8],
    ["100.64.0.0", 10],
    ["127.0.0.0", 8],
    ["169.254.0.0", 16],
    ["172.16.0.0", 12],
    ["192.0.0.0", 24],
    ["192.0.2.0", 24],
    ["192.88.99.0", 24],
    ["192.168.0.0", 16],
    ["198.18.0.0", 15],
    ["198.51.100.0", 24],
    ["203.0.113.0", 24],
    ["224.0.0.0", 4],
    ["240.0.0.0", 4],
  ] as const)
    b.addSubnet(net, bits, "ipv4");
  const b6 = new BlockList();
  for (const [net, bits] of [
    ["::", 128],
    ["::1", 128],
    ["::ffff:0:0", 96], // IPv4-mapped: checked as IPv4 below
    ["64:ff9b::", 96],
    ["100::", 64],
    ["2001::", 23],
    ["2001:db8::", 32],
    ["fc00::", 7],
    ["fe80::", 10],
    ["ff00::", 8],
  ] as const)
    b6.addSubnet(net, bits, "ipv6");
  return { v4: b, v6: b6 };
}
const BLOCKED = blockedRanges();

export function isPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return !BLOCKED.v4.check(address, "ipv4");
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped?.[1]) return !BLOCKED.v4.check(mapped[1], "ipv4");
    return !BLOCKED.v6.check(address, "ipv6");
  }
  return false;
}

function notAllowed(url: string): KilnError {
  return new KilnError({
    code: "source_url_refused",
    message: `the server does not download ${redact(url)}: a source_blob URL must be https to a public address`,
    hint: "host the tarball on a public https server, or ask the operator to allow its origin (KILN_FETCH_ALLOW)",
  });
}

function unreachable(url: string): KilnError {
  return new KilnError({
    code: "source_unreachable",
    message: `cannot download the source from ${redact(url)}`,
    hint: "the server itself downloads source_blob.url: it must be reachable from there",
  });
}

/** The URL without user info or query (which may hold credentials), for messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return "the given URL";
  }
}

/**
 * Checks `url` and opens it, following redirects hop by hop; resolves to the final 2xx response,
 * whose body the caller reads. `allow` holds the operator's origins (checks skipped for them).
 */
export async function openUntrustedUrl(
  url: string,
  opts: { allow: readonly string[]; signal?: AbortSignal },
): Promise<IncomingMessage> {
  let current = url;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const res = await openOnce(current, opts.allow, opts.signal);
    const status = res.statusCode ?? 0;
    if (status >= 300 && status < 400 && res.headers.location) {
      res.resume();
      current = new URL(res.headers.location, current).toString();
      continue;
    }
    if (status < 200 || status >= 300) {
      res.resume();
      throw new KilnError({
        code: "source_unreachable",
        message: `downloading the source from ${redact(current)} answered ${status}`,
        hint: "check the URL",
      });
    }
    return res;
  }
  throw new KilnError({
    code: "source_unreachable",
    message: `downloading the source from ${redact(url)} was redirected more than ${MAX_REDIRECTS} times`,
    hint: "give the tarball's final URL",
  });
}

async function openOnce(
  url: string,
  allow: readonly string[],
  signal?: AbortSignal,
): Promise<IncomingMessage> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw notAllowed(url);
  }
  const allowed = allow.includes(originOf(u.toString()) ?? "");
  if (!allowed && u.protocol !== "https:") throw notAllowed(url);
  // Resolved once here; the socket connects to exactly the address that was checked.
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const addresses = isIP(host)
    ? [{ address: host, family: isIP(host) }]
    : await new Promise<{ address: string; family: number }[]>((resolve) =>
        dnsLookup(host, { all: true }, (err, list) => resolve(err ? [] : list)),
      );
  if (addresses.length === 0) throw unreachable(url);
  if (!allowed && !addresses.every((a) => isPublicAddress(a.address))) throw notAllowed(url);
  const [first] = addresses as [{ address: string; family: number }];
  const pinned: LookupFunction = (_name, options, cb) => {
    if ((options as { all?: boolean }).all) cb(null, [first]);
    else cb(null, first.address, first.family);
  };
  const request = u.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(
      u,
      { lookup: pinned, agent: false, timeout: TIMEOUT_MS, ...(signal ? { signal } : {}) },
      resolve,
    );
    // One message for every failure to connect (refused, reset, timed out, TLS): no port oracle.
    req.on("error", () => reject(unreachable(url)));
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.end();
  });
}
