#!/usr/bin/env python3
"""check_rules.py: the Prometheus alert rules in deploy/prometheus/ are
valid (promtool check rules), behave as their unit tests say (promtool
test rules), and name only metrics nightshift serves (every nightshift_*
name in the rules appears as a metric name in the C sources). Exit 0, or
1 with what is wrong."""
import os
import re
import shutil
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
RULES = os.path.join(ROOT, "deploy", "prometheus")


def served_metrics():
    names = set()
    for folder in ("common", "producer", "worker", "ingest"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for f in files:
                if f.endswith(".c"):
                    text = open(os.path.join(dirpath, f),
                                encoding="utf-8").read()
                    names.update(re.findall(r'"(nightshift_[a-z_]+)"', text))
    return names


def main():
    promtool = shutil.which("promtool")
    if promtool is None:
        print("promtool not found: apt-get install prometheus (scripts/"
              "test.sh installs it)")
        return 1
    problems = []
    for args in (["check", "rules", "nightshift-rules.yml"],
                 ["test", "rules", "nightshift-rules.test.yml"]):
        r = subprocess.run([promtool] + args, cwd=RULES, capture_output=True,
                           text=True)
        if r.returncode != 0:
            problems.append("promtool %s:\n%s%s" % (" ".join(args), r.stdout,
                                                     r.stderr))
    rules = open(os.path.join(RULES, "nightshift-rules.yml"),
                 encoding="utf-8").read()
    used = set(re.findall(r"\b(nightshift_[a-z_]+)", rules))
    served = served_metrics()
    for name in sorted(used - served):
        problems.append("the rules use %s, which nothing serves" % name)
    for p in problems:
        print(p)
    print("%d rule metrics, all served; %d problem%s" % (
        len(used), len(problems), "" if len(problems) == 1 else "s"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
