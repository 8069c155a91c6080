// Puts the pinned tarballs into npm's content-addressed cache (cacache) under each one's lock-file
// integrity, so `npm ci --offline` finds them by digest without any network or packument.
// Usage: node prefill-cache.js TARBALL_DIR NPM_CACHE_DIR   (TARBALL_DIR/index.json: [{file, integrity}])

const fs = require("node:fs");
const path = require("node:path");
const cacache = require("/usr/local/lib/node_modules/npm/node_modules/cacache");

async function main() {
  const [dir, cacheDir] = process.argv.slice(2);
  const index = JSON.parse(fs.readFileSync(path.join(dir, "index.json"), "utf8"));
  for (const t of index) {
    const data = fs.readFileSync(path.join(dir, t.file));
    const algorithm = t.integrity.split("-")[0];
    await cacache.put(path.join(cacheDir, "_cacache"), `kiln-tarball:${t.file}`, data, {
      integrity: t.integrity,
      algorithms: [algorithm],
    });
  }
  console.log(`cached ${index.length} tarballs`);
}
main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
