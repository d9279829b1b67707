#!/usr/bin/env python3
"""check_logparse.py: the log template parser's grouping accuracy on the
labelled samples of tests/data/logs/ (built by tests/data/logs/label.py).

For every SOURCE.tsv it runs `bench_logparse --accuracy FILE`, which adds
the lines in order and compares the groups it made with the labels:
    accuracy   the share of lines whose predicted group holds exactly the
               lines of their true group (the "parsing accuracy" of the
               Loghub benchmarks)
    F-measure  the harmonic mean of pairwise precision and recall (pairs of
               lines put in one group that belong in one group)
and prints one row per source and one for all of them together (one file
of all lines, each source's labels kept apart).

    python3 tests/check_logparse.py [--bin build/bench/bench_logparse]
                                    [--min-accuracy A] [-- extra options]

Exit 0; with --min-accuracy, 1 when the overall accuracy is below A.
"""
import argparse
import glob
import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def run(binary, path, extra):
    out = subprocess.run([binary, "--accuracy", path] + extra, check=True,
                         capture_output=True, text=True).stdout
    fields = dict(kv.split("=", 1) for kv in out.split("\n")[0].split())
    return fields


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "bench",
                                                  "bench_logparse"))
    ap.add_argument("--data", default=os.path.join(ROOT, "tests", "data",
                                                   "logs"))
    ap.add_argument("--min-accuracy", type=float)
    ap.add_argument("extra", nargs="*", help="passed to bench_logparse")
    args = ap.parse_args()
    files = sorted(glob.glob(os.path.join(args.data, "*.tsv")))
    if not files:
        print("no samples in %s: run tests/data/logs/label.py" % args.data)
        return 1
    print("%-13s %6s %6s %6s %9s %9s" % ("source", "lines", "true", "found",
                                         "accuracy", "F-measure"))
    with tempfile.NamedTemporaryFile("w", suffix=".tsv", delete=False) as all_:
        for path in files:
            source = os.path.splitext(os.path.basename(path))[0]
            r = run(args.bin, path, args.extra)
            print("%-13s %6s %6s %6s %9.3f %9.3f"
                  % (source, r["lines"], r["true_templates"],
                     r["predicted_templates"], float(r["accuracy"]),
                     float(r["f_measure"])))
            with open(path, encoding="utf-8") as f:
                for line in f:
                    all_.write(source + ":" + line)
    try:
        r = run(args.bin, all_.name, args.extra)
    finally:
        os.unlink(all_.name)
    accuracy = float(r["accuracy"])
    print("%-13s %6s %6s %6s %9.3f %9.3f"
          % ("all", r["lines"], r["true_templates"], r["predicted_templates"],
             accuracy, float(r["f_measure"])))
    if args.min_accuracy is not None and accuracy < args.min_accuracy:
        print("accuracy %.3f is below %.3f" % (accuracy, args.min_accuracy))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
