// kiln's static file server (vendored into static-site slugs; plain Node, no dependencies).
// static.json (optional): { "root": "dir", "clean_urls": true, "headers": { "/path/**": { "Name": "value" } } }

const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");

const appDir = process.env.KILN_STATIC_DIR || "/app";
let config = {};
try {
  config = JSON.parse(fs.readFileSync(path.join(appDir, "static.json"), "utf8"));
} catch (err) {
  if (err.code !== "ENOENT") throw err;
}
const root = path.resolve(appDir, config.root || ".");
const types = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".ico": "image/x-icon",
  ".txt": "text/plain; charset=utf-8",
  ".xml": "application/xml",
  ".wasm": "application/wasm",
  ".woff2": "font/woff2",
};

// "/assets/**" matches below /assets; "*" matches within one path segment.
function globToRegExp(glob) {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*" && glob[i + 1] === "*") {
      re += ".*";
      i++;
    } else if (c === "*") re += "[^/]*";
    else re += c.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}
const headerRules = Object.entries(config.headers || {}).map(([glob, headers]) => [
  globToRegExp(glob),
  headers,
]);

function resolveFile(urlPath) {
  const rel = decodeURIComponent(urlPath).replace(/\/+$/, "") || "/";
  const full = path.resolve(root, `.${rel}`);
  if (full !== root && !full.startsWith(root + path.sep)) return null;
  const candidates = [full, path.join(full, "index.html")];
  if (config.clean_urls) candidates.splice(1, 0, `${full}.html`);
  for (const c of candidates) {
    try {
      if (fs.statSync(c).isFile()) return c;
    } catch {}
  }
  return null;
}

const server = http.createServer((req, res) => {
  const urlPath = new URL(req.url, "http://localhost").pathname;
  for (const [re, headers] of headerRules)
    if (re.test(urlPath)) for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { Allow: "GET, HEAD" }).end();
    return;
  }
  let file = null;
  try {
    file = resolveFile(urlPath);
  } catch {}
  if (!file) {
    const notFound = path.join(root, "404.html");
    res.writeHead(404, { "Content-Type": "text/html; charset=utf-8" });
    res.end(
      req.method === "HEAD"
        ? undefined
        : fs.existsSync(notFound)
          ? fs.readFileSync(notFound)
          : "<h1>404 Not Found</h1>\n",
    );
    return;
  }
  res.writeHead(200, {
    "Content-Type": types[path.extname(file).toLowerCase()] || "application/octet-stream",
  });
  if (req.method === "HEAD") res.end();
  else fs.createReadStream(file).pipe(res);
});

const port = Number(process.env.PORT || 5000);
server.listen(port, () => console.log(`static site on port ${port}, serving ${root}`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
