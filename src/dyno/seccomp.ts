/**
 * The seccomp policy every dyno runs under: at least as strict as Flatpak's (flatpak-run.c's
 * blocklist) plus what container runtimes block by default (Docker's profile: kexec, modules,
 * open_by_handle_at, bpf, io_uring …). Default allow, listed calls fail with an errno, so ordinary
 * programs keep working and attacks get a clean refusal.
 *
 * The policy is data here; libexec/kiln-seccomp.py compiles it with libseccomp into the BPF program
 * that bwrap loads (--seccomp FD). The compiled program is cached by the policy's hash.
 */
import { createHash } from "node:crypto";
import { mkdir, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { KilnError } from "../errors.js";
import { run } from "../process/run.js";
import { exists } from "../util/fs.js";

type Errno = "EPERM" | "ENOSYS" | "EAFNOSUPPORT";
interface ArgCheck {
  index: number;
  op: "EQ" | "NE" | "GE" | "MASKED_EQ";
  /** Decimal string: 64-bit values do not fit a JSON number. */
  value: string;
  mask?: string;
}
export interface SeccompRule {
  syscall: string;
  errno: Errno;
  args?: ArgCheck[];
}
export interface SeccompPolicy {
  extraArches: string[];
  rules: SeccompRule[];
}

const deny = (syscall: string, errno: Errno = "EPERM"): SeccompRule => ({ syscall, errno });
const denyMasked = (syscall: string, index: number, mask: bigint, value: bigint): SeccompRule => ({
  syscall,
  errno: "EPERM",
  args: [{ index, op: "MASKED_EQ", mask: String(mask), value: String(value) }],
});

/** Calls no dyno needs and every escape wants. Grouped as in the README's security section. */
const DENIED: string[] = [
  // Mounting and changing the root: the mount family old and new.
  "mount",
  "umount2",
  "pivot_root",
  "chroot",
  "open_tree",
  "move_mount",
  "fsopen",
  "fsconfig",
  "fsmount",
  "fspick",
  "mount_setattr",
  // Namespaces: no new ones, no joining others.
  "unshare",
  "setns",
  // The kernel keyring is not namespaced.
  "add_key",
  "keyctl",
  "request_key",
  // Tracing and reading other processes.
  "ptrace",
  "process_vm_readv",
  "process_vm_writev",
  "kcmp",
  "perf_event_open",
  // Kernel attack surface most exploits go through.
  "bpf",
  "userfaultfd",
  "io_uring_setup",
  "io_uring_enter",
  "io_uring_register",
  // The host itself: modules, kexec, reboot, swap, clocks, accounting, quotas, the kernel log.
  "init_module",
  "finit_module",
  "delete_module",
  "kexec_load",
  "kexec_file_load",
  "reboot",
  "swapon",
  "swapoff",
  "settimeofday",
  "clock_settime",
  "clock_adjtime",
  "adjtimex",
  "acct",
  "quotactl",
  "quotactl_fd",
  "syslog",
  "uselib",
  "iopl",
  "ioperm",
  "vhangup",
  "lookup_dcookie",
  "fanotify_init",
  "sethostname",
  "setdomainname",
  // NUMA policy calls (Flatpak: they can disturb other processes' memory).
  "mbind",
  "get_mempolicy",
  "set_mempolicy",
  "migrate_pages",
  "move_pages",
  // The "shocker" escape: file handles bypass the mount namespace.
  "open_by_handle_at",
  "name_to_handle_at",
];

/** Any of these clone flags creates a namespace. */
const CLONE_NS_FLAGS: Record<string, bigint> = {
  CLONE_NEWNS: 0x00020000n,
  CLONE_NEWCGROUP: 0x02000000n,
  CLONE_NEWUTS: 0x04000000n,
  CLONE_NEWIPC: 0x08000000n,
  CLONE_NEWUSER: 0x10000000n,
  CLONE_NEWPID: 0x20000000n,
  CLONE_NEWNET: 0x40000000n,
};

const TIOCSTI = 0x5412n;
const TIOCLINUX = 0x541cn;
const S_IFMT = 0o170000n;
const S_IFCHR = 0o020000n;
const S_IFBLK = 0o060000n;

/** Socket families a web app uses: unix, IPv4, IPv6, netlink (for getifaddrs). */
const ALLOWED_FAMILIES = [0, 1, 2, 10, 16];

export function dynoSeccompPolicy(): SeccompPolicy {
  const rules: SeccompRule[] = DENIED.map((s) => deny(s));
  // clone3 passes its flags in memory, where seccomp cannot look: ENOSYS makes glibc fall back to
  // clone, whose flags it can check (Flatpak does the same).
  rules.push(deny("clone3", "ENOSYS"));
  for (const flag of Object.values(CLONE_NS_FLAGS)) rules.push(denyMasked("clone", 0, flag, flag));
  // ioctl's request is 32 bits to the kernel but 64 to seccomp: mask, or TIOCSTI | 1<<32 slips by.
  for (const req of [TIOCSTI, TIOCLINUX]) rules.push(denyMasked("ioctl", 1, 0xffffffffn, req));
  // Device nodes: a regular file or fifo via mknod is fine, a character or block device is not.
  for (const kind of [S_IFCHR, S_IFBLK]) {
    rules.push(denyMasked("mknod", 1, S_IFMT, kind));
    rules.push(denyMasked("mknodat", 2, S_IFMT, kind));
  }
  // personality: only PER_LINUX (others turn off ASLR or make data executable).
  rules.push({ syscall: "personality", errno: "EPERM", args: [{ index: 0, op: "NE", value: "0" }] });
  // Unusual socket families (AF_PACKET, AF_VSOCK, AF_BLUETOOTH, AF_ALG, AF_KEY …).
  const maxAllowed = Math.max(...ALLOWED_FAMILIES);
  for (let family = 0; family < maxAllowed; family++) {
    if (ALLOWED_FAMILIES.includes(family)) continue;
    rules.push({
      syscall: "socket",
      errno: "EAFNOSUPPORT",
      args: [{ index: 0, op: "EQ", value: String(family) }],
    });
  }
  rules.push({
    syscall: "socket",
    errno: "EAFNOSUPPORT",
    args: [{ index: 0, op: "GE", value: String(maxAllowed + 1) }],
  });
  return { extraArches: ["X86"], rules };
}

export const SECCOMP_COMPILER = "libexec/kiln-seccomp.py";

/**
 * The compiled BPF program for the policy, cached under DATA_DIR/seccomp by the hash of the policy
 * and the compiler. Needs Debian's python3-seccomp (npm run setup installs it).
 */
export async function compiledSeccomp(opts: {
  dataDir: string;
  projectDir: string;
  policy?: SeccompPolicy;
}): Promise<string> {
  const policy = JSON.stringify(opts.policy ?? dynoSeccompPolicy());
  const compiler = join(opts.projectDir, SECCOMP_COMPILER);
  const hash = createHash("sha256")
    .update(policy)
    .update(await readFile(compiler))
    .digest("hex")
    .slice(0, 32);
  const dir = join(opts.dataDir, "seccomp");
  const file = join(dir, `${hash}.bpf`);
  if (await exists(file)) return file;
  await mkdir(dir, { recursive: true });
  const partial = `${file}.partial-${process.pid}`;
  const r = await run("/usr/bin/python3", [compiler], { input: policy, reject: false, outputFile: partial });
  if (r.failed) {
    await rm(partial, { force: true });
    throw new KilnError({
      code: "seccomp_unavailable",
      message: `could not compile the dyno seccomp filter: ${r.stderrTail.trim() || `exit ${r.exitCode}`}`,
      hint: "install libseccomp's Python binding as root: apt-get install python3-seccomp (npm run setup does)",
    });
  }
  await rename(partial, file);
  return file;
}
