#!/usr/bin/python3
"""Compiles kiln's dyno seccomp policy (JSON on stdin) to a BPF program (stdout) with libseccomp.

The policy itself lives in src/dyno/seccomp.ts; this only turns it into the bytes bwrap's --seccomp
loads, through libseccomp (Debian's python3-seccomp), which knows each architecture's syscall
numbers, the i386 socketcall multiplexer and x32's numbering, so nothing here is hand-assembled.
"""
import errno
import json
import sys

import seccomp

OPS = {
    "EQ": seccomp.EQ,
    "NE": seccomp.NE,
    "GE": seccomp.GE,
    "MASKED_EQ": seccomp.MASKED_EQ,
}


def main() -> int:
    policy = json.load(sys.stdin)
    f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    # 32-bit code would otherwise be a way around the native rules (Flatpak adds x86 the same way).
    for arch in policy["extraArches"]:
        f.add_arch(seccomp.Arch(getattr(seccomp.Arch, arch)))
    for rule in policy["rules"]:
        action = seccomp.ERRNO(getattr(errno, rule["errno"]))
        args = []
        for a in rule.get("args", []):
            op = OPS[a["op"]]
            value = int(a["value"])
            if a["op"] == "MASKED_EQ":
                args.append(seccomp.Arg(a["index"], op, int(a["mask"]), value))
            else:
                args.append(seccomp.Arg(a["index"], op, value))
        try:
            f.add_rule(action, rule["syscall"], *args)
        except Exception as e:  # name unknown to this libseccomp: say which, never skip silently
            print(f"kiln-seccomp: cannot add rule for {rule['syscall']}: {e}", file=sys.stderr)
            return 1
    f.export_bpf(sys.stdout.buffer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
