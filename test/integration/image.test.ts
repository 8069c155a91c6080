/**
 * OCI images of builds, through the real tools: one real build of the procfile-shell fixture
 * (through the API, over a real socket), exported by the API and by `kiln image`, read by skopeo,
 * unpacked by umoci (which checks every layer digest and diff_id), and run by podman (crun).
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { execa } from "execa";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startControlPlane } from "../../src/serve/controlPlane.js";
import { craftTarGz, kiln, projectDir, testContext } from "../helpers.js";
import { tempDir } from "../tmp.js";

const source = execFileSync("tar", [
  "czf",
  "-",
  "-C",
  join(projectDir, "test", "fixtures", "apps", "procfile-shell"),
  ".",
]);

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      s.close(() => resolve(typeof a === "object" && a ? a.port : 0));
    });
  });
}

/** Every blob of a layout, inflated where it is gzip: what a registry or a runtime would see. */
function layoutBytes(dir: string): Buffer[] {
  const blobs = join(dir, "blobs", "sha256");
  return readdirSync(blobs).map((f) => {
    const b = readFileSync(join(blobs, f));
    return b[0] === 0x1f && b[1] === 0x8b ? gunzipSync(b) : b;
  });
}

/**
 * podman as root with what this kind of machine needs: no overlay (vfs), cgroupfs, rlimits within
 * the container's own hard limits, and (on a hybrid cgroup host whose cgroup2 mount holds a
 * controller, which crun refuses) the cgroup2 mount hidden in a private mount namespace.
 */
function podman(work: string, args: string[]) {
  const p = [
    "podman",
    `--root=${join(work, "root")}`,
    `--runroot=${join(work, "run")}`,
    "--storage-driver=vfs",
    "--cgroup-manager=cgroupfs",
    "--events-backend=file",
    ...args,
  ]
    .map((a) => `'${a.replaceAll("'", `'\\''`)}'`)
    .join(" ");
  const script = `if grep -qs . /sys/fs/cgroup/unified/cgroup.controllers; then umount /sys/fs/cgroup/unified; fi; exec ${p}`;
  return execa("unshare", ["-m", "--propagation", "private", "sh", "-c", script], {
    reject: false,
    all: true,
  });
}

describe("kiln image", () => {
  const work = tempDir("kiln-image-");
  const secret = `kiln-secret-${randomBytes(12).toString("hex")}`;
  let cp: Awaited<ReturnType<typeof startControlPlane>>;
  let dataDir: string;
  let buildId: string;
  let slugSha256: string;
  let apiArchive: Buffer;
  let apiDigest: string;
  const layoutA = join(work, "a");
  const layoutB = join(work, "b");
  const env = () => ({ KILN_DATA_DIR: dataDir, KILN_LOG_LEVEL: "warn" });

  beforeAll(async () => {
    dataDir = tempDir("kiln-image-data-");
    cp = await startControlPlane(testContext({ dataDir }), { host: "127.0.0.1", port: 0, dynos: false });
    const admin = cp.adminToken ?? "";
    const call = async (token: string, method: string, path: string, body?: unknown) => {
      const res = await fetch(`${cp.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(Buffer.isBuffer(body) ? { "content-type": "application/gzip" } : {}),
          ...(body !== undefined && !Buffer.isBuffer(body) ? { "content-type": "application/json" } : {}),
        },
        ...(body === undefined
          ? {}
          : { body: Buffer.isBuffer(body) ? new Uint8Array(body) : JSON.stringify(body) }),
      });
      return res;
    };
    for (const name of ["alice", "bob"])
      expect((await call(admin, "POST", "/v1/users", { name })).status).toBe(201);
    const token = async (user: string) =>
      (
        (await (await call(admin, "POST", "/v1/tokens", { name: `${user}-t`, user })).json()) as {
          token: string;
        }
      ).token;
    alice = await token("alice");
    bob = await token("bob");
    expect((await call(alice, "POST", "/v1/apps", { name: "img-shell" })).status).toBe(201);
    // A secret set before the build (so the build and its release both know it).
    expect(
      (await call(alice, "PATCH", "/v1/apps/img-shell/config-vars", { API_SECRET: secret })).status,
    ).toBe(200);
    const build = (await (await call(alice, "POST", "/v1/apps/img-shell/builds", source)).json()) as {
      id: string;
      output_stream_url: string;
    };
    buildId = build.id;
    const out = await call(alice, "GET", build.output_stream_url.replace(cp.url, ""));
    expect(await out.text()).toMatch(/release v1/);
    const shown = (await (await call(alice, "GET", `/v1/apps/img-shell/builds/${buildId}`)).json()) as {
      status: string;
      slug: { id: string } | null;
    };
    expect(shown.status).toBe("succeeded");
    const manifests = readdirSync(join(dataDir, "builds", "img-shell")).filter((f) =>
      /^[0-9a-f]{64}\.json$/.test(f),
    );
    expect(manifests).toHaveLength(1);
    slugSha256 = (manifests[0] as string).slice(0, 64);

    const res = await call(alice, "GET", `/v1/apps/img-shell/builds/${buildId}/image`);
    expect(res.status).toBe(200);
    apiDigest = res.headers.get("x-kiln-image-digest") ?? "";
    apiArchive = Buffer.from(await res.arrayBuffer());
    bobImage = await call(bob, "GET", `/v1/apps/img-shell/builds/${buildId}/image`);
    bobMissing = await call(bob, "GET", "/v1/apps/no-such-app/builds/x/image");
  });
  let alice: string;
  let bob: string;
  let bobImage: Response;
  let bobMissing: Response;

  afterAll(async () => {
    await cp?.close();
  });

  it("serves the build's image to its owner only: another tenant gets the same 404 as a missing app", async () => {
    expect(apiArchive.length).toBeGreaterThan(1024 * 1024);
    expect(apiDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(bobImage.status).toBe(404);
    expect(bobMissing.status).toBe(404);
    const code = async (r: Response) => ((await r.json()) as { error: { code: string } }).error.code;
    expect(await code(bobImage)).toBe(await code(bobMissing));
  });

  it("writes a layout and an archive; two exports (and the API's) are byte-identical", async () => {
    const a = await kiln(
      ["image", "img-shell", "--output", layoutA, "--archive", join(work, "a.tar"), "--json"],
      {
        env: env(),
      },
    );
    expect(a.exitCode, a.all).toBe(0);
    const b = await kiln(
      ["image", slugSha256.slice(0, 12), "--output", layoutB, "--archive", join(work, "b.tar")],
      {
        env: env(),
      },
    );
    expect(b.exitCode, b.all).toBe(0);
    const info = JSON.parse(a.stdout) as { digest: string; layers: { digest: string }[] };
    expect(info.digest).toBe(apiDigest);
    // The slug is the layer as it is: its digest is the slug's sha256.
    expect(info.layers.map((l) => l.digest)).toContain(`sha256:${slugSha256}`);
    const archiveA = readFileSync(join(work, "a.tar"));
    expect(archiveA.equals(readFileSync(join(work, "b.tar")))).toBe(true);
    expect(archiveA.equals(apiArchive)).toBe(true);
    for (const f of ["oci-layout", "index.json"])
      expect(readFileSync(join(layoutA, f)).equals(readFileSync(join(layoutB, f)))).toBe(true);
    // No host paths in the documents (the data dir, the work dir).
    const docs = layoutBytes(layoutA)
      .filter((x) => x.length < 64 * 1024)
      .map((x) => x.toString("latin1"));
    for (const d of docs) expect(d).not.toContain(dataDir);

    // An output that is not empty is refused, and left as it was.
    const again = await kiln(["image", "img-shell", "--output", layoutA], { env: env() });
    expect(again.exitCode).not.toBe(0);
    expect(again.all).toMatch(/is not empty/);
    const none = await kiln(["image", "img-shell"], { env: env() });
    expect(none.exitCode).not.toBe(0);
    expect(none.all).toMatch(/--output DIR/);
  });

  it("never bakes config vars in: the secret is in the app's release, not in one byte of the image", async () => {
    // Control: the secret really is the app's (the release a dyno would run has it).
    const release = await fetch(`${cp.url}/v1/apps/img-shell/config-vars`, {
      headers: { authorization: `Bearer ${alice}` },
    });
    expect(await release.text()).toContain(secret);
    expect(apiArchive.includes(secret)).toBe(false);
    for (const blob of layoutBytes(layoutA)) expect(blob.includes(secret)).toBe(false);
  });

  it("is read by skopeo with kiln's config: non-root user, /app, the entrypoint, web by default, labels", async () => {
    const raw = await execa("skopeo", ["inspect", `oci:${layoutA}:latest`], { reject: false, all: true });
    expect(raw.exitCode, raw.all).toBe(0);
    expect(JSON.parse(raw.stdout).Digest).toBe(apiDigest);
    const cfg = await execa("skopeo", ["inspect", "--config", `oci-archive:${join(work, "a.tar")}`]);
    const c = JSON.parse(cfg.stdout) as {
      created: string;
      config: {
        User: string;
        WorkingDir: string;
        Entrypoint: string[];
        Cmd: string[];
        Env: string[];
        Labels: Record<string, string>;
      };
      rootfs: { diff_ids: string[] };
    };
    expect(c.config.User).toBe("1000:1000");
    expect(c.config.WorkingDir).toBe("/app");
    expect(c.config.Entrypoint).toEqual(["/kiln/launch"]);
    expect(c.config.Cmd).toEqual(["web"]);
    // The build's SOURCE_DATE_EPOCH (kiln's: 1980-01-01), not the time of the export.
    expect(new Date(c.created).getTime()).toBe(315532800000);
    expect(c.config.Labels["dev.kiln.slug.sha256"]).toBe(slugSha256);
    expect(c.config.Labels["dev.kiln.stack.name"]).toBe("stack-run");
    expect(c.config.Labels["dev.kiln.stack.narHash"]).toMatch(/^sha256-/);
    expect(c.config.Labels["dev.kiln.process.web"]).toMatch(/httpd/);
    expect(c.config.Env.join("\n")).not.toContain(secret);
    expect(c.rootfs.diff_ids).toHaveLength(3);
  });

  it("is unpacked by umoci, which checks every diff_id, and refuses a layer changed by one byte", async () => {
    const bundle = join(work, "bundle");
    const u = await execa("umoci", ["unpack", "--image", `${layoutA}:latest`, bundle], {
      reject: false,
      all: true,
    });
    expect(u.exitCode, u.all).toBe(0);
    const rootfs = join(bundle, "rootfs");
    expect(readFileSync(join(rootfs, "app", "Procfile"), "utf8")).toMatch(/^web: httpd/m);
    expect(readFileSync(join(rootfs, "kiln", "launch"), "utf8")).toMatch(/\.profile\.d/);
    expect(execFileSync("stat", ["-c", "%a %u", join(rootfs, "tmp")], { encoding: "utf8" }).trim()).toBe(
      "1777 0",
    );

    // Control: the same layout with one byte of the entrypoint layer changed is refused.
    const bad = join(work, "bad");
    execFileSync("cp", ["-a", layoutB, bad]);
    const launchLayer = readdirSync(join(bad, "blobs", "sha256"))
      .map((f) => join(bad, "blobs", "sha256", f))
      .find((f) => readFileSync(f).includes("kiln image entrypoint"));
    expect(launchLayer).toBeDefined();
    const bytes = readFileSync(launchLayer as string);
    const at = bytes.indexOf("kiln image entrypoint");
    bytes[at] = "K".charCodeAt(0);
    writeFileSync(launchLayer as string, bytes);
    const refused = await execa("umoci", ["unpack", "--image", `${bad}:latest`, join(work, "bad-bundle")], {
      reject: false,
      all: true,
    });
    expect(refused.exitCode).not.toBe(0);
    expect(refused.all).toMatch(/digest|mismatch|verify/i);
  });

  it("refuses a slug with entries outside app/ (it would replace the stack's files), naming the entry", async () => {
    const output = (name: string, extra: { name: string; type: "file"; data: string }[]) => {
      const dir = join(work, name);
      mkdirSync(dir);
      const slug = craftTarGz([
        { name: "app/Procfile", type: "file", data: "web: httpd -f -p $PORT\n" },
        ...extra,
      ]);
      copyFileSync(slug, join(dir, "slug.tgz"));
      writeFileSync(
        join(dir, "release.json"),
        JSON.stringify({ processTypes: { web: "httpd -f -p $PORT" }, configVars: {}, addons: [] }),
      );
      return dir;
    };
    // Control: the same slug with only app/ in it is an image.
    const fine = await kiln(["image", output("fine", []), "--output", join(work, "fine-image")], {
      env: env(),
    });
    expect(fine.exitCode, fine.all).toBe(0);
    const hostile = output("hostile", [
      { name: "etc/passwd", type: "file", data: "root::0:0:root:/root:/bin/sh\n" },
    ]);
    const r = await kiln(["image", hostile, "--output", join(work, "hostile-image")], { env: env() });
    expect(r.exitCode).not.toBe(0);
    expect(r.all).toMatch(/has etc\/passwd, outside app\//);
    expect(readdirSync(work)).not.toContain("hostile-image");
  });

  it("runs under podman: the web process answers 200 on $PORT, as uid 1000 in /app", async () => {
    const pod = join(work, "podman");
    const port = await freePort();
    const ulimits = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"];
    const who = await podman(pod, [
      "run",
      "--rm",
      "--network=none",
      ...ulimits,
      `oci-archive:${join(work, "a.tar")}`,
      "sh",
      "-c",
      'echo "$(id -u) $(pwd) $PORT"',
    ]);
    expect(who.exitCode, who.all).toBe(0);
    expect(who.stdout.trim().split("\n").at(-1)).toBe("1000 /app 5000");
    const name = `kiln-image-${port}`;
    const web = podman(pod, [
      "run",
      "--rm",
      "--name",
      name,
      "--network=host",
      ...ulimits,
      "-e",
      `PORT=${port}`,
      `oci-archive:${join(work, "a.tar")}`,
    ]);
    try {
      let status = 0;
      // The container's boot is podman's (copying the image into its store), not kiln's: wait for the port.
      for (let i = 0; i < 600 && status === 0; i++) {
        status = await fetch(`http://127.0.0.1:${port}/`).then(
          (r) => r.status,
          () => 0,
        );
        if (status === 0) await new Promise((r) => setTimeout(r, 100));
      }
      expect(status).toBe(200);
    } finally {
      await podman(pod, ["stop", "-t", "1", name]);
      await web;
    }
  });
});
