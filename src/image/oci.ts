/**
 * The OCI documents of a kiln image (image-spec v1.0): the config, the manifest and the layout's
 * index, as bytes. Keys in fixed order and no host-dependent values, so that one build always
 * gives the same image digest.
 */
import { createHash } from "node:crypto";
import type { ImageSource } from "./source.js";

export const MEDIA = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layerGzip: "application/vnd.oci.image.layer.v1.tar+gzip",
  layer: "application/vnd.oci.image.layer.v1.tar",
} as const;

/** The stack's unprivileged user (etc/passwd of stack-run): what every container runs as. */
export const IMAGE_USER = "1000:1000";
/** $PORT when the platform running the image sets none (Heroku's dynos are given one). */
export const DEFAULT_PORT = 5000;
/** The tag every layout's one manifest carries (`oci:DIR:latest`, or `oci:DIR` alone). */
export const IMAGE_REF = "latest";
export const LAUNCHER_PATH = "/kiln/launch";

export interface Blob {
  mediaType: string;
  digest: string;
  size: number;
}

export interface LayerBlob extends Blob {
  diffId: string;
  /** What made it, for the config's history. */
  createdBy: string;
}

export interface StackLabel {
  name: string;
  narHash: string;
}

export function sha256(bytes: Buffer): string {
  return createHash("sha256").update(bytes).digest("hex");
}

const json = (v: unknown) => Buffer.from(`${JSON.stringify(v)}\n`);

/** The process type a container runs when given no arguments: web, else the first by name. */
export function defaultProcessType(types: Record<string, string>): string | undefined {
  if ("web" in types) return "web";
  return Object.keys(types).sort()[0];
}

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/**
 * The entrypoint: Heroku's contract in sh (the stack's busybox). $PORT defaults first (profile
 * scripts may read it), the slug's .profile.d scripts are sourced, then `$1` names a process type
 * (its command runs with `sh -c`, as a dyno's does) or is itself a command run in that
 * environment (`docker run IMAGE sh`).
 */
export function launcherScript(types: Record<string, string>): string {
  const names = Object.keys(types).sort();
  return [
    "#!/bin/sh",
    "# kiln image entrypoint: $PORT, the slug's .profile.d, then a process type (or a command).",
    `export PORT="\${PORT:-${DEFAULT_PORT}}"`,
    'for f in /app/.profile.d/*.sh; do [ -f "$f" ] && . "$f"; done',
    'case "$1" in',
    ...names.map((n) => `  ${quote(n)}) exec sh -c ${quote(types[n] as string)} ;;`),
    `  "") echo "usage: IMAGE [PROCESS_TYPE | COMMAND...]; process types: ${names.join(" ") || "(none)"}" >&2; exit 64 ;;`,
    "esac",
    'exec "$@"',
    "",
  ].join("\n");
}

export function imageConfig(opts: { src: ImageSource; stack: StackLabel; layers: LayerBlob[] }): Buffer {
  const { src, stack } = opts;
  const created = new Date(src.sourceDateEpoch * 1000).toISOString();
  const cmd = defaultProcessType(src.processTypes);
  const labels: Record<string, string> = {
    "org.opencontainers.image.created": created,
    ...(src.commit ? { "org.opencontainers.image.revision": src.commit } : {}),
    "org.opencontainers.image.title": src.app,
    "dev.kiln.app": src.app,
    "dev.kiln.slug.sha256": src.slugSha256,
    "dev.kiln.stack.name": stack.name,
    "dev.kiln.stack.narHash": stack.narHash,
    ...Object.fromEntries(
      Object.keys(src.processTypes)
        .sort()
        .map((t) => [`dev.kiln.process.${t}`, src.processTypes[t] as string]),
    ),
  };
  const env = {
    PATH: "/usr/local/bin:/usr/bin:/bin",
    HOME: "/app",
    LANG: "C.UTF-8",
    TZ: "UTC",
    KILN_SLUG_SHA256: src.slugSha256,
    ...src.defaults,
  };
  return json({
    created,
    architecture: "amd64",
    os: "linux",
    config: {
      User: IMAGE_USER,
      ExposedPorts: { [`${DEFAULT_PORT}/tcp`]: {} },
      Env: Object.keys(env)
        .sort()
        .map((k) => `${k}=${env[k as keyof typeof env]}`),
      Entrypoint: [LAUNCHER_PATH],
      ...(cmd ? { Cmd: [cmd] } : {}),
      WorkingDir: "/app",
      Labels: Object.fromEntries(
        Object.keys(labels)
          .sort()
          .map((k) => [k, labels[k]]),
      ),
    },
    rootfs: { type: "layers", diff_ids: opts.layers.map((l) => `sha256:${l.diffId}`) },
    history: opts.layers.map((l) => ({ created, created_by: l.createdBy })),
  });
}

export function imageManifest(config: Blob, layers: Blob[]): Buffer {
  const d = (b: Blob) => ({ mediaType: b.mediaType, digest: `sha256:${b.digest}`, size: b.size });
  return json({ schemaVersion: 2, mediaType: MEDIA.manifest, config: d(config), layers: layers.map(d) });
}

export function imageIndex(manifest: Blob): Buffer {
  return json({
    schemaVersion: 2,
    mediaType: MEDIA.index,
    manifests: [
      {
        mediaType: MEDIA.manifest,
        digest: `sha256:${manifest.digest}`,
        size: manifest.size,
        annotations: { "org.opencontainers.image.ref.name": IMAGE_REF },
      },
    ],
  });
}

export const OCI_LAYOUT = json({ imageLayoutVersion: "1.0.0" });
