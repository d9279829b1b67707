#!/usr/bin/env python3
"""check_shippers.py: the example Fluent Bit and Vector configurations in
config/shippers/ send what nightshift reads: JSON to logs.raw, keyed by the
service, with the timestamp field the sample records in tests/data/shippers
carry (those samples are decoded by tests/unit/test_logline.c). Exit 0, or
1 with what is wrong. Neither tool needs to be installed."""
import json
import os
import sys
import tomllib

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def fluent_bit_sections(path):
    """Fluent Bit's classic format: [SECTION] then 'Key  value' lines."""
    sections, cur = [], None
    for raw in open(path, encoding="utf-8"):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            cur = {"_section": line[1:-1].strip().upper()}
            sections.append(cur)
            continue
        if cur is None:
            raise ValueError("%s: a key before any section: %r" % (path, line))
        key, _, value = line.partition(" ")
        cur[key.lower()] = value.strip()
    return sections


def main():
    problems = []
    fb = fluent_bit_sections(os.path.join(ROOT, "config", "shippers",
                                          "fluent-bit.conf"))
    outs = [s for s in fb if s["_section"] == "OUTPUT" and
            s.get("name") == "kafka"]
    sample = json.load(open(os.path.join(ROOT, "tests", "data", "shippers",
                                         "fluent-bit.json")))
    if len(outs) != 1:
        problems.append("fluent-bit.conf: one [OUTPUT] Name kafka expected")
    else:
        o = outs[0]
        want = {"topics": "logs.raw", "format": "json",
                "message_key_field": "service",
                "timestamp_format": "iso8601_ns"}
        for k, v in want.items():
            if o.get(k) != v:
                problems.append("fluent-bit.conf: %s is %r, not %r"
                                % (k, o.get(k), v))
        if o.get("timestamp_key") not in sample:
            problems.append("fluent-bit.conf: Timestamp_Key %r is not the "
                            "sample's time field" % o.get("timestamp_key"))
    with open(os.path.join(ROOT, "config", "shippers", "vector.toml"),
              "rb") as f:
        vec = tomllib.load(f)
    sink = vec.get("sinks", {}).get("nightshift", {})
    sample = json.load(open(os.path.join(ROOT, "tests", "data", "shippers",
                                         "vector.json")))
    checks = [("type", sink.get("type"), "kafka"),
              ("topic", sink.get("topic"), "logs.raw"),
              ("key_field", sink.get("key_field"), "service"),
              ("encoding.codec", sink.get("encoding", {}).get("codec"),
               "json"),
              ("encoding.timestamp_format",
               sink.get("encoding", {}).get("timestamp_format"), "rfc3339")]
    for name, got, want in checks:
        if got != want:
            problems.append("vector.toml: sinks.nightshift.%s is %r, not %r"
                            % (name, got, want))
    for inp in sink.get("inputs", []):
        if inp not in vec.get("transforms", {}) and \
                inp not in vec.get("sources", {}):
            problems.append("vector.toml: input %r is not defined" % inp)
    for field in ("timestamp", "message", "service"):
        if field not in sample:
            problems.append("vector.json: the sample lacks %r" % field)
    for p in problems:
        print(p)
    print("%d problem%s in config/shippers" % (len(problems),
                                                "" if len(problems) == 1
                                                else "s"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
