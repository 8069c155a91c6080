/**
 * Dyno networking. Every dyno has its own network namespace with nothing in it but loopback: the
 * app cannot reach the host's loopback (kiln's API, other dynos' relays), other apps, or the
 * outside world, and nothing can reach it.
 *
 * The one way in is a relay: socat, started in the dyno's network namespace (nsenter, then
 * dropped to the app's uid), accepts on a Unix socket in kiln's run directory (a host path only
 * root reaches) and connects to 127.0.0.1:$PORT inside. The router (and `kiln run`'s local port)
 * connect to that socket. There is no address shared between the host and a dyno, so no firewall
 * rules are needed for isolation and none can be forgotten.
 *
 * Why not a veth pair: the host end would need an address on the host, and then every host
 * service listening on 0.0.0.0 is reachable unless nftables rules say otherwise.
 *
 * Outbound access is off unless the app asks for it (`--outbound`); then slirp4netns gives the
 * namespace a user-mode NAT (tap0, 10.0.2.100, DNS at 10.0.2.3) with the host's loopback cut off
 * (--disable-host-loopback), inside its own sandbox and seccomp filter. Its connections leave from
 * the host's network stack, so the host's own non-loopback addresses are as reachable as any other.
 */
import { connect, createServer, type Server } from "node:net";
import { pipeline } from "node:stream";
import { KilnError } from "../errors.js";
import { type LongProcess, spawnProcess } from "../process/run.js";
import { exists } from "../util/fs.js";
import { dropToUid, enterCgroups } from "./sandbox.js";

export interface Relay {
  socket: string;
  process: LongProcess;
  stop(): Promise<void>;
}

/**
 * Starts the relay for a dyno whose init has host pid `pid`; resolves when the socket exists. It
 * runs in the dyno's cgroups (it is the dyno's traffic, and whatever cleans up the dyno takes it).
 */
export async function startRelay(opts: {
  pid: number;
  uid: number;
  socket: string;
  port: number;
  cgroupDirs: string[];
}): Promise<Relay> {
  const enter = enterCgroups({ dirs: opts.cgroupDirs, keepFds: 3 });
  const proc = spawnProcess(
    enter.file,
    [
      ...enter.args,
      "nsenter",
      `--net=/proc/${opts.pid}/ns/net`,
      "--",
      // The parent-death signal is set after the uid change (which clears it): the relay dies
      // with kiln, even on kill -9.
      ...dropToUid(opts.uid, ["--pdeathsig=KILL"]),
      "socat",
      `UNIX-LISTEN:${opts.socket},fork,mode=600,unlink-early`,
      `TCP:127.0.0.1:${opts.port}`,
    ],
    // Its own process group: socat forks a child per connection, and stopping takes them all.
    { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" }, stdio: ["ignore", "ignore", "pipe"], detached: true },
  );
  let stderr = "";
  proc.child.stderr?.on("data", (d) => (stderr += d));
  const deadline = Date.now() + 5000;
  while (!(await exists(opts.socket))) {
    const gone = await Promise.race([proc.exited, new Promise((r) => setTimeout(r, 2, undefined))]);
    if (gone || Date.now() > deadline) {
      proc.child.kill("SIGKILL");
      throw new KilnError({
        code: "relay_failed",
        message: `the dyno's network relay did not start: ${stderr.trim() || (gone ? "it exited" : "timed out")}`,
        hint: "it needs socat and nsenter (apt-get install socat util-linux; npm run setup does)",
      });
    }
  }
  return {
    socket: opts.socket,
    process: proc,
    async stop() {
      try {
        process.kill(-proc.pid, "SIGKILL");
      } catch {
        // gone already
      }
      await proc.exited;
    },
  };
}

/** Gives the dyno whose init has host pid `pid` outbound network access; resolves when it is up. */
export async function startOutbound(opts: { pid: number; cgroupDirs: string[] }): Promise<LongProcess> {
  const enter = enterCgroups({ dirs: opts.cgroupDirs, keepFds: 4 });
  const proc = spawnProcess(
    enter.file,
    [
      ...enter.args,
      "setpriv",
      "--pdeathsig=KILL",
      "--",
      "slirp4netns",
      "--configure",
      "--mtu=65520",
      "--disable-host-loopback",
      "--enable-sandbox",
      "--enable-seccomp",
      // Root joins only the network namespace (as nsenter does), not the dyno's user namespace.
      "--userns-path=/proc/self/ns/user",
      "--netns-type=path",
      "--ready-fd=3",
      `/proc/${opts.pid}/ns/net`,
      "tap0",
    ],
    { env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" }, stdio: ["ignore", "ignore", "pipe", "pipe"] },
  );
  let stderr = "";
  proc.child.stderr?.on("data", (d) => (stderr += d));
  const ready = new Promise<boolean>((resolve) => {
    const fd3 = proc.child.stdio[3] as NodeJS.ReadableStream | null;
    fd3?.on("data", () => resolve(true));
    void proc.exited.then(() => resolve(false));
    setTimeout(() => resolve(false), 5000).unref();
  });
  if (!(await ready)) {
    proc.child.kill("SIGKILL");
    throw new KilnError({
      code: "outbound_failed",
      message: `could not give the dyno outbound network access: ${stderr.trim() || "slirp4netns did not get ready"}`,
      hint: "it needs slirp4netns (apt-get install slirp4netns; npm run setup does)",
    });
  }
  return proc;
}

/**
 * A TCP port on the host's loopback that forwards to a dyno's relay socket (what `kiln run` prints
 * as the URL). Port 0 picks a free port. Byte-level forwarding: HTTP routing by Host is the router's job.
 */
export async function forwardPort(opts: {
  host: string;
  port: number;
  /** The relay socket of the dyno serving now (it changes when a dyno restarts); none: refuse. */
  target: () => string | undefined;
}): Promise<Server> {
  const server = createServer((client) => {
    const socket = opts.target();
    if (!socket) return void client.destroy();
    const upstream = connect(socket);
    pipeline(client, upstream, client, () => {
      client.destroy();
      upstream.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        err.code === "EADDRINUSE"
          ? new KilnError({
              code: "port_in_use",
              message: `port ${opts.port} on ${opts.host} is already in use`,
              hint: "choose another with --port, or leave it out to get a free one",
            })
          : err,
      ),
    );
    server.listen(opts.port, opts.host, () => resolve());
  });
  return server;
}
