import type { Command } from "commander";
import { KilnError } from "../errors.js";
import { layoutRef, prepareImage, writeImageLayout, writeOciArchive } from "../image/export.js";
import { defaultProcessType } from "../image/oci.js";
import { resolveImageSource } from "../image/source.js";
import { formatBytes } from "../nix/events.js";
import type { ContextFactory } from "./context.js";
import { printJson, printLines } from "./output.js";

export function registerImageCommands(program: Command, ctx: ContextFactory): void {
  program
    .command("image")
    .description("export a build as an OCI image: the run stack, then the slug at /app (no config vars)")
    .argument(
      "<app-or-build>",
      "an app (its latest build), a build id (slug sha256 prefix), a manifest or a build output dir",
    )
    .option("-o, --output <dir>", "write an OCI image layout to this new or empty directory")
    .option("--archive <file>", "write an oci-archive (a tar of the layout) to this file")
    .option("--json", "print machine-readable JSON")
    .addHelpText(
      "after",
      [
        "",
        "The image runs the web process by default; name another process type (or give a command):",
        "  skopeo copy oci-archive:app.tar docker-daemon:myapp:latest   (or podman load -i app.tar)",
        "  podman run -p 5000:5000 myapp            # web, on $PORT (default 5000)",
        "  podman run myapp worker                  # another process type",
        "  podman run -e DATABASE_URL=… myapp       # config vars are given at run time, never baked in",
      ].join("\n"),
    )
    .action(
      async (ref: string, opts: { output?: string; archive?: string; json?: boolean }, cmd: Command) => {
        if (!opts.output && !opts.archive)
          throw new KilnError({
            code: "usage",
            message: "say where to write the image",
            hint: "kiln image APP --output DIR (an OCI layout) or --archive FILE (an oci-archive)",
          });
        const c = ctx(cmd.optsWithGlobals(), opts);
        const started = Date.now();
        const src = await resolveImageSource({ nix: c.nix, dataDir: c.config.dataDir }, ref);
        const img = await prepareImage(c, src, (s) => c.progress.step(s));
        if (opts.output) {
          c.progress.step(`writing the layout to ${opts.output}`);
          await writeImageLayout(img, opts.output);
        }
        if (opts.archive) {
          c.progress.step(`writing the oci-archive to ${opts.archive}`);
          await writeOciArchive(c, img, opts.archive);
        }
        c.progress.done();
        const bytes = img.layers.reduce((n, l) => n + l.size, 0) + img.config.size + img.manifest.size;
        const out = {
          app: src.app,
          digest: `sha256:${img.digest}`,
          layers: img.layers.map((l) => ({
            digest: `sha256:${l.digest}`,
            size: l.size,
            createdBy: l.createdBy,
          })),
          bytes,
          slugBytes: img.layers[1]?.size ?? 0,
          processTypes: src.processTypes,
          ...(opts.output ? { output: opts.output } : {}),
          ...(opts.archive ? { archive: opts.archive } : {}),
          seconds: (Date.now() - started) / 1000,
        };
        if (opts.json) return printJson(out);
        const def = defaultProcessType(src.processTypes);
        printLines([
          `${src.app}: image sha256:${img.digest} (${formatBytes(bytes)}, ${img.layers.length} layers)`,
          ...(opts.output ? [`  layout   ${opts.output}   (${layoutRef(opts.output)})`] : []),
          ...(opts.archive ? [`  archive  ${opts.archive}   (oci-archive:${opts.archive})`] : []),
          `  runs     ${def ? `${def} by default` : "no process type: give a command"}; types: ${Object.keys(src.processTypes).sort().join(", ") || "none"}`,
        ]);
      },
    );
}
