#!/usr/bin/env python3
"""check_layers.py: the arrows of docs/architecture.md, checked on the
#include lines of every C file.

Between folders: common/ (infrastructure) includes only itself; clients/,
text/ and jsonschema/ include themselves and common/; producer/ and ingest/
add nothing of the worker's; worker/ may use every library; cli/ anything.
Inside worker/: the consume loop -> item processing -> the failure paths
and fan-in -> the per-item context, each file including only headers of
its own layer or below; handlers/ see only handler.h of the worker.
producer/ may use text/ (the offline `nightshift logs parse`); ui/ (the
status page) sits on producer/'s read verbs.

Exit 0 when every include follows the arrows, 1 with one line per
violation (path:line: what and why) otherwise.
"""
import os
import re
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

# Folder -> folders whose headers it may include.
ALLOWED = {
    "common": {"common"},
    "clients": {"clients", "common"},
    "text": {"text", "common"},
    "jsonschema": {"jsonschema", "common"},
    "producer": {"producer", "common", "text"},
    "ingest": {"ingest", "common"},
    "ui": {"ui", "producer", "common"},
    "worker": {"worker", "common", "clients", "text", "jsonschema"},
    "cli": {"cli", "ui", "producer", "worker", "ingest", "clients", "text",
            "jsonschema", "common"},
}
LIBRARY_INCLUDES = ["common", "clients", "text", "jsonschema"]

# worker/ layers, bottom up (file stem -> layer).
WORKER_LAYERS = [
    ("the per-item context and thread resources",
     ["handler", "res", "bookkeeper", "tracker", "readyq", "pacing", "ctx"]),
    ("the failure paths and fan-in", ["deadletter", "finalize"]),
    ("stream items", ["stream"]),
    ("item processing", ["item", "item_internal", "batch", "calls"]),
    ("the consume loop and delivery",
     ["pool", "dispatch", "worker", "worker_internal", "outbox", "retrier"]),
]
# ctx.h sits above res.h and handler.h: give it its own rank.
WORKER_RANK = {}
for rank, (_, stems) in enumerate(WORKER_LAYERS):
    for stem in stems:
        WORKER_RANK[stem] = rank * 2
WORKER_RANK["ctx"] = 1

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def resolve(src_dir, name):
    """The repository path of an include, or None when not ours."""
    here = os.path.normpath(os.path.join(src_dir, name))
    if os.path.exists(here):
        return os.path.relpath(here, ROOT)
    for lib in LIBRARY_INCLUDES:
        p = os.path.join(ROOT, lib, "include", name)
        if os.path.exists(p):
            return os.path.relpath(p, ROOT)
    for d in ("worker", "worker/handlers", "producer", "ingest", "ui"):
        p = os.path.join(ROOT, d, name)
        if os.path.exists(p):
            return os.path.relpath(p, ROOT)
    return None


def stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def check_file(rel, problems):
    folder = rel.split("/")[0]
    src_dir = os.path.join(ROOT, os.path.dirname(rel))
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        lines = f.readlines()
    for no, line in enumerate(lines, 1):
        m = INCLUDE.match(line)
        if not m:
            continue
        name = m.group(1)
        where = "%s:%d" % (rel, no)
        if ".." in name.split("/"):
            problems.append('%s: "%s" reaches into another folder by path; '
                            "include its public header instead" % (where, name))
            continue
        target = resolve(src_dir, name)
        if target is None:
            continue  # generated or system
        tfolder = target.split("/")[0]
        if tfolder not in ALLOWED.get(folder, {folder}):
            problems.append('%s: %s/ includes "%s" of %s/: that arrow points '
                            "the wrong way" % (where, folder, name, tfolder))
            continue
        if folder != "worker" or tfolder != "worker":
            continue
        in_handlers = rel.startswith("worker/handlers/")
        t_handlers = target.startswith("worker/handlers/")
        if in_handlers:
            if not t_handlers and stem(target) != "handler":
                problems.append('%s: a handler includes "%s": handlers see '
                                "only handler.h of the worker" % (where, name))
            continue
        if t_handlers:
            problems.append('%s: "%s" is a handler\'s: the worker reaches '
                            "handlers through handler.h's table" % (where,
                                                                    name))
            continue
        mine = WORKER_RANK.get(stem(rel))
        theirs = WORKER_RANK.get(stem(target))
        if mine is None:
            problems.append("%s: %s has no layer in tests/check_layers.py; "
                            "add it to WORKER_LAYERS" % (where, rel))
            continue
        if theirs is None:
            problems.append('%s: "%s" has no layer in tests/check_layers.py'
                            % (where, name))
            continue
        if theirs > mine:
            problems.append('%s: "%s" is in a layer above %s: move what '
                            "both need into the lower file" % (where, name,
                                                                  rel))


def main():
    problems = []
    count = 0
    for folder in ALLOWED:
        base = os.path.join(ROOT, folder)
        for dirpath, _, files in os.walk(base):
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    rel = os.path.relpath(os.path.join(dirpath, f), ROOT)
                    check_file(rel, problems)
                    count += 1
    for p in problems:
        print(p)
    print("%d files checked, %d include%s against the arrows"
          % (count, len(problems), "" if len(problems) == 1 else "s"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
