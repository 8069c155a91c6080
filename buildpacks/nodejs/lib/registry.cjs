// A registry on the sandbox's own loopback that serves only the build's pinned tarballs, for the
// package managers whose offline caches cannot be prefilled from outside (pnpm's store, yarn
// berry's zip cache): they fetch the lock's tarballs from here at the registry's conventional
// paths and verify them against the lock themselves. Nothing else is served: a package the plan
// did not pin is a 404, named on stderr. The build has no other network.
// Usage: node registry.js TARBALL_DIR PORT READY_FILE   (TARBALL_DIR/index.json: [{file, integrity, package, version}])

const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");

const [dir, port, ready] = process.argv.slice(2);
const index = JSON.parse(fs.readFileSync(path.join(dir, "index.json"), "utf8"));
const files = new Map();
for (const t of index) {
  files.set(`/kiln/-/${t.file}`, t.file);
  if (!t.package || !t.version) continue;
  const base = t.package.slice(t.package.lastIndexOf("/") + 1);
  // npm's conventional path; scoped names also with the scope in the file segment (older clients).
  files.set(`/${t.package}/-/${base}-${t.version}.tgz`, t.file);
  if (t.package.startsWith("@")) files.set(`/${t.package}/-/${t.package}-${t.version}.tgz`, t.file);
}

const server = http.createServer((req, res) => {
  let p;
  try {
    p = decodeURIComponent(new URL(req.url ?? "/", "http://loopback").pathname);
  } catch {
    p = "";
  }
  const file = files.get(p);
  if (!file || (req.method !== "GET" && req.method !== "HEAD")) {
    process.stderr.write(`kiln registry: ${req.method} ${p} is not a pinned tarball\n`);
    res.writeHead(404, { "content-type": "application/json" });
    res.end('{"error":"not pinned by the lock"}');
    return;
  }
  const data = fs.readFileSync(path.join(dir, file));
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": data.length });
  res.end(req.method === "HEAD" ? undefined : data);
});
server.listen(Number(port), "127.0.0.1", () => fs.writeFileSync(ready, String(process.pid)));
