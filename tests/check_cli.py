#!/usr/bin/env python3
"""check_cli.py NIGHTSHIFT: every command and sub-command listed by
`nightshift --help` answers --help with its own usage (exit 0), refuses an
unknown option naming its usage (exit 2); the bash completion script is
valid bash and offers every command; `nightshift version` names the
commit; every read verb answers --json with JSON (`version`, `config
check` on the repo's jobs file, valid and not). Exit 0, or 1 with what is
wrong. No servers needed."""
import json
import os
import re
import subprocess
import sys


def run(bin_, *args):
    return subprocess.run([bin_] + list(args), capture_output=True,
                          text=True, timeout=30)


def check_json(bin_):
    problems = []
    r = run(bin_, "version", "--json")
    try:
        v = json.loads(r.stdout)
        if not re.match(r"\d+\.\d+\.\d+$", v["version"]) or \
                not v["commit"] or "librdkafka" not in v["libraries"]:
            problems.append("version --json: %r" % v)
    except (ValueError, KeyError, TypeError) as e:
        problems.append("version --json: %s in %r" % (e, r.stdout[:80]))
    jobs_file = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                             "..", "config", "jobs.yaml")
    text = run(bin_, "config", "check", jobs_file)
    r = run(bin_, "config", "check", jobs_file, "--json")
    try:
        doc = json.loads(r.stdout)
        n = int(re.search(r"ok \((\d+) jobs?\)", text.stdout).group(1))
        if r.returncode != 0 or doc["ok"] is not True or len(doc["jobs"]) != n:
            problems.append("config check --json: exit %d, %d jobs, text says "
                            "%d" % (r.returncode, len(doc["jobs"]), n))
        for job in doc["jobs"]:
            scheduled = job["schedule"] is not None and not job["suspend"]
            if scheduled != (job["next_fire"] is not None) or \
                    job["name"] not in text.stdout:
                problems.append("config check: job %r" % job)
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        problems.append("config check --json: %s in %r" % (e, r.stdout[:80]))
    r = run(bin_, "config", "check", "/nonexistent/jobs.yaml", "--json")
    try:
        doc = json.loads(r.stdout)
        if r.returncode != 2 or doc["ok"] is not False or \
                "/nonexistent/jobs.yaml" not in doc["error"]:
            problems.append("config check --json of a missing file: %r" % doc)
    except (ValueError, KeyError, TypeError) as e:
        problems.append("config check --json of a missing file: %s" % e)
    return problems


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
        if words[0] == "completion":
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
    problems += check_json(bin_)
    for p in problems:
        print(p)
    print("%d commands checked, %d problem%s" % (
        len(commands), len(problems), "" if len(problems) == 1 else "s"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
