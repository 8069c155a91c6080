#!/usr/bin/env node
// `npm run setup`: takes a fresh Debian machine to a working kiln, then runs kiln's main job.
// Idempotent. As root it installs what is missing with apt-get; otherwise it says exactly what is
// missing and how to get it. Plain Node with no dependencies: it runs before `npm ci`.
//
//   npm run setup                 everything, then the main job (seed, both stacks, an example build)
//   npm run setup -- --no-main    only prepare the machine and the checkout
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const args = new Set(process.argv.slice(2));
const isRoot = process.getuid?.() === 0;

// What kiln needs from Debian: the command each package provides.
const APT_PACKAGES = [
  { pkg: "nix-bin", cmd: "nix", why: "builds everything" },
  { pkg: "bubblewrap", cmd: "bwrap", why: "sandboxes stacks and dynos" },
  { pkg: "dpkg", cmd: "dpkg-deb", why: "unpacks the seed's .debs" },
  { pkg: "git", cmd: "git", why: "lets Nix read the checkout as a flake" },
  { pkg: "socat", cmd: "socat", why: "relays traffic into each dyno's network namespace" },
  { pkg: "slirp4netns", cmd: "slirp4netns", why: "outbound network for dynos that ask for it" },
  {
    pkg: "python3-seccomp",
    test: "/usr/bin/python3 -c 'import seccomp'",
    why: "compiles the dynos' seccomp filter",
  },
  { pkg: "util-linux", cmd: "setpriv", why: "drops dynos to their app's uid (setpriv, prlimit, nsenter)" },
  { pkg: "diffoscope-minimal", cmd: "diffoscope", why: "kiln check's HTML report of differing slugs" },
  { pkg: "chromium", cmd: "chromium", why: "test tool: the dashboard's browser tests (npm test)" },
  { pkg: "skopeo", cmd: "skopeo", why: "test tool: reads kiln's OCI images (image.test)" },
  {
    pkg: "umoci",
    cmd: "umoci",
    why: "test tool: unpacks kiln's OCI images, checking every diff_id (image.test)",
  },
  { pkg: "podman", cmd: "podman", why: "test tool: runs kiln's OCI images (image.test; brings crun)" },
];

function step(msg) {
  process.stderr.write(`\n==> ${msg}\n`);
}

function sh(cmd, cmdArgs, opts = {}) {
  const r = spawnSync(cmd, cmdArgs, { stdio: "inherit", cwd: root, ...opts });
  if (r.status !== 0) {
    process.stderr.write(`\nsetup failed: ${cmd} ${cmdArgs.join(" ")} exited with ${r.status ?? r.signal}\n`);
    process.exit(r.status || 1);
  }
}

function has(p) {
  const test = p.test ?? `command -v ${p.cmd}`;
  return spawnSync("sh", ["-c", test], { stdio: "ignore" }).status === 0;
}

/** Age in hours of apt's newest package list, or Infinity when there is none. */
function aptListsAgeHours() {
  const dir = "/var/lib/apt/lists";
  try {
    const lists = readdirSync(dir).filter((f) => f.includes("_Packages"));
    if (lists.length === 0) return Number.POSITIVE_INFINITY;
    const newest = Math.max(...lists.map((f) => statSync(join(dir, f)).mtimeMs));
    return (Date.now() - newest) / 3600e3;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

if (process.platform !== "linux" || process.arch !== "x64") {
  process.stderr.write(`kiln needs x86_64 Linux (this is ${process.platform}/${process.arch})\n`);
  process.exit(1);
}

step("checking system tools");
const missing = APT_PACKAGES.filter((p) => !has(p));
// The seed's .debs are downloaded by exact version, which stale package lists may not know.
const listsAge = aptListsAgeHours();
if (isRoot) {
  if (missing.length > 0 || listsAge > 24) sh("apt-get", ["update", "-q"]);
  if (missing.length > 0) {
    sh("apt-get", ["install", "-y", "-q", "--no-install-recommends", ...missing.map((p) => p.pkg)], {
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
  }
} else if (missing.length > 0) {
  process.stderr.write(
    `missing: ${missing.map((p) => `${p.cmd} (${p.why})`).join(", ")}\n` +
      `install them as root:\n  apt-get update && apt-get install -y ${missing.map((p) => p.pkg).join(" ")}\n` +
      "then run `npm run setup` again.\n",
  );
  process.exit(1);
} else if (listsAge === Number.POSITIVE_INFINITY) {
  process.stderr.write(
    "apt has no package lists, so the seed's .debs cannot be downloaded.\nrun as root: apt-get update\n",
  );
  process.exit(1);
} else if (listsAge > 24) {
  process.stderr.write(
    "note: apt's package lists are over a day old; if a pinned .deb is not found, run apt-get update as root\n",
  );
}
for (const p of APT_PACKAGES) process.stderr.write(`  ${p.pkg.padEnd(16)} ${has(p) ? "ok" : "MISSING"}\n`);
// Nix builds as root run as the users of the group `nixbld` (its default build-users-group), so
// that a build cannot touch the store or another build. Debian's nix-bin does not create them
// (its nix-setup-systemd package does, and needs systemd): make them as Nix's own installer does.
if (isRoot && spawnSync("getent", ["group", "nixbld"]).status !== 0) {
  step("creating Nix's build users (group nixbld, users nixbld1-8)");
  sh("groupadd", ["--system", "nixbld"]);
  for (let i = 1; i <= 8; i++) {
    sh("useradd", [
      "--system",
      "--no-create-home",
      "--home-dir",
      "/var/empty",
      "--shell",
      "/usr/sbin/nologin",
      "--gid",
      "nixbld",
      "--groups",
      "nixbld",
      "--comment",
      `Nix build user ${i}`,
      `nixbld${i}`,
    ]);
  }
}
if (!isRoot && !existsSync("/nix/var/nix/daemon-socket/socket")) {
  process.stderr.write(
    "note: not root and no nix-daemon socket: Nix can only use the local store if /nix is writable by you.\n" +
      "      start the daemon (systemctl start nix-daemon) or run setup as root.\n",
  );
}

step("installing npm dependencies (npm ci)");
sh("npm", ["ci", "--no-audit", "--no-fund"]);

step("compiling kiln (tsc)");
sh("npm", ["run", "build", "--silent"]);

if (args.has("--no-main")) {
  process.stderr.write("\nthe machine is ready. Next: `npm test`, or `npm run kiln -- --help`.\n");
  process.exit(0);
}

step("importing the seed (pinned .debs and Node; cached after the first time)");
sh("node", ["bin/kiln.js", "seed"]);

step("building the stacks in the Nix sandbox");
sh("node", ["bin/kiln.js", "stack", "build"]);

step("building an example app (test/fixtures/apps/node-web) into a slug");
sh("node", ["bin/kiln.js", "build", "test/fixtures/apps/node-web"]);

if (isRoot) {
  // Dynos need root (an own uid and cgroups per app): check the lockdown works on this host.
  step("running the example as a one-off dyno (the full sandbox: own uid, namespaces, seccomp, cgroups)");
  sh("node", [
    "bin/kiln.js",
    "run",
    "node-web",
    "--",
    'echo "node $(node --version) in dyno $DYNO as uid $(id -u)"',
  ]);
}

if (isRoot) {
  // The main job: kiln builds itself with itself (stage0 → stage3), runs as an app on itself, and
  // checks the fixed point. Its own state directory, so a platform already on this machine is left alone.
  step("bootstrapping: kiln builds and hosts itself, stage0 → stage3, and checks the fixed point");
  sh("node", ["bin/kiln.js", "bootstrap", "--exit", "--api-port", "5180", "--router-port", "5100"], {
    env: { ...process.env, KILN_DATA_DIR: "/var/lib/kiln-bootstrap", KILN_RUN_DIR: "/run/kiln-bootstrap" },
  });
}

process.stderr.write(
  "\nkiln is set up.\n" +
    "  sudo npm run kiln -- bootstrap        kiln built by itself, hosting itself (API :5080, apps on :5000)\n" +
    "  npm run kiln -- run node-web          serve the example as a dyno (prints its URL; Ctrl-C stops it)\n" +
    "  npm run kiln -- build PATH/TO/APP     build your own app\n" +
    "  npm run kiln -- serve                 the platform: API, builds, releases, router (see the README)\n" +
    "(more: npm run kiln -- --help)\n",
);
