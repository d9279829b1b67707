#!/usr/bin/env python3
"""check_cli.py NIGHTSHIFT: every command and sub-command listed by
`nightshift --help` answers --help with its own usage (exit 0), refuses an
unknown option naming its usage (exit 2); the bash completion script is
valid bash and offers every command; `nightshift version` names the
commit. Exit 0, or 1 with what is wrong. No servers needed."""
import re
import subprocess
import sys


def run(bin_, *args):
    return subprocess.run([bin_] + list(args), capture_output=True,
                          text=True, timeout=30)


def main():
    bin_ = sys.argv[1]
    problems = []
    top = run(bin_, "--help")
    if top.returncode != 0:
        problems.append("--help exited %d" % top.returncode)
    commands = re.findall(r"^  ([a-z-]+(?: [a-z]+)?)\s{2,}\S", top.stdout,
                          re.M)
    if len(commands) < 10:
        problems.append("--help lists only %r" % commands)
    for c in commands:
        words = c.split()
        for flag in ("--help", "-h"):
            r = run(bin_, *words, flag)
            if r.returncode != 0 or not r.stdout.startswith(
                    "usage: nightshift " + words[0]):
                problems.append("%s %s: exit %d, %r" % (c, flag, r.returncode,
                                                        r.stdout[:60]))
        if words[0] in ("completion", "version"):
            continue
        r = run(bin_, *words, "--no-such-flag")
        if r.returncode != 2 or "unknown option --no-such-flag" not in \
                r.stderr or "usage: nightshift " + words[0] not in r.stderr:
            problems.append("%s --no-such-flag: exit %d, %r"
                            % (c, r.returncode, r.stderr[:120]))
    r = run(bin_, "no-such-command")
    if r.returncode != 2 or "unknown command" not in r.stderr:
        problems.append("an unknown command: exit %d" % r.returncode)
    script = run(bin_, "completion", "bash").stdout
    check = subprocess.run(["bash", "-n"], input=script, text=True,
                           capture_output=True)
    if check.returncode != 0:
        problems.append("completion bash: %s" % check.stderr)
    for c in {c.split()[0] for c in commands}:
        if c not in script:
            problems.append("completion bash does not offer %s" % c)
    ver = run(bin_, "version").stdout
    if not re.match(r"nightshift \d+\.\d+\.\d+ \(commit \S+", ver):
        problems.append("version: %r" % ver[:80])
    for p in problems:
        print(p)
    print("%d commands checked, %d problem%s" % (
        len(commands), len(problems), "" if len(problems) == 1 else "s"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
