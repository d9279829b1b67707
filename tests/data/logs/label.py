#!/usr/bin/env python3
"""label.py: builds the labelled log samples of tests/data/logs/ from logs
that exist on a development machine, for judging the template parser's
grouping (tests/check_logparse.py).

Each output file SOURCE.tsv holds "label<TAB>line" lines in the order of
the original log. The label is the line's true template, assigned here by
hand-written regular expressions: every source has an ordered list of
(label, regex) rules, the first rule whose regex matches the whole line
(re.fullmatch) gives the label, and a line no rule matches is left out of
the sample (the script prints how many, per source). A rule stands for one
kind of event as an operator would count it: the variable parts (times,
ids, package names and versions, partitions, paths, numbers) are the
regex's wildcards, the constant words are spelt out. Where a program
prints one event with a variable number of words (apt's package lists),
that is still one label: the parser is judged on it as it is.

Secret-looking values (password=, secret, token, api key, credentials)
are replaced by REDACTED before a line is kept; a line with a private key
marker is dropped.

    python3 tests/data/logs/label.py [--out DIR] [--max N]

Sources (a missing file is skipped):
    dpkg          /var/log/dpkg.log
    apt_term      /var/log/apt/term.log
    apt_history   /var/log/apt/history.log
    alternatives  /var/log/alternatives.log
    kafka         $NS_DEV_STACK/kafka/logs/server.log
    postgres      $NS_DEV_STACK/pg/postgres.log
    redis         $NS_DEV_STACK/redis/redis.log
NS_DEV_STACK defaults to /tmp/ns-dev-stack (tests/stack.sh's dev stack).
--max N keeps at most N labelled lines per source, evenly spread over the
file (default 2000).
"""
import argparse
import os
import re
import sys

STACK = os.environ.get("NS_DEV_STACK", "/tmp/ns-dev-stack")

# Shorthands for the regexes.
PKG = r"\S+"                       # package, maybe with :arch
VER = r"\S+"                       # a Debian version or <none>
TS_DPKG = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
KTS = r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\] "
PGTS = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ UTC \[\d+\] (?:\S+@\S+ )?"
ANY = r".*"

DPKG = [
    ("dpkg.status", TS_DPKG + r" status (?:installed|unpacked|half-configured"
     r"|half-installed|triggers-pending|triggers-awaited|config-files"
     r"|not-installed) " + PKG + " " + VER),
    ("dpkg.configure", TS_DPKG + r" configure " + PKG + " " + VER + " " + VER),
    ("dpkg.install", TS_DPKG + r" install " + PKG + " " + VER + " " + VER),
    ("dpkg.upgrade", TS_DPKG + r" upgrade " + PKG + " " + VER + " " + VER),
    ("dpkg.remove", TS_DPKG + r" remove " + PKG + " " + VER + " " + VER),
    ("dpkg.purge", TS_DPKG + r" purge " + PKG + " " + VER + " " + VER),
    ("dpkg.trigproc", TS_DPKG + r" trigproc " + PKG + " " + VER + " " + VER),
    ("dpkg.startup_archives", TS_DPKG + r" startup archives unpack"),
    ("dpkg.startup_packages", TS_DPKG + r" startup packages (?:configure"
     r"|remove|purge)"),
]

APT_TERM = [
    ("term.log_started", r"Log started: " + TS_DPKG),
    ("term.log_ended", r"Log ended: " + TS_DPKG),
    ("term.selecting", r"Selecting previously unselected package " + PKG
     + r"\."),
    ("term.preparing", r"Preparing to unpack \S+\.deb \.\.\."),
    ("term.unpacking", r"Unpacking " + PKG + r" \(" + VER + r"\)"
     r"(?: over \(" + VER + r"\))? \.\.\."),
    ("term.setting_up", r"Setting up " + PKG + r" \(" + VER + r"\) \.\.\."),
    ("term.triggers", r"Processing triggers for " + PKG + r" \(" + VER
     + r"\) \.\.\."),
    ("term.reading_db", r"\(Reading database \.\.\. " + ANY),
    ("term.alternatives_using", r"update-alternatives: using \S+ to provide"
     r" \S+ \(\S+\) in auto mode"),
    ("term.symlink", r"Created symlink \S+ (?:→|->) \S+\."),
    ("term.debconf_unable", r"debconf: unable to initialize frontend: \S+"),
    ("term.debconf_falling", r"debconf: falling back to frontend: \S+"),
    ("term.debconf_reason", r"debconf: \((?:This|TERM) " + ANY + r"\)"),
    ("term.policy_rc", r"invoke-rc\.d: policy-rc\.d denied execution of "
     r"\S+\."),
    ("term.rc_could_not", r"invoke-rc\.d: could not determine current "
     r"runlevel"),
    ("term.diversion", r"Adding 'diversion of \S+ to \S+ by \S+'"),
    ("term.ca_adding", r"Adding debian:\S+\.pem"),
    ("term.creating_group", r"Creating group '\S+' with GID \d+\."),
    ("term.creating_user", r"Creating user '\S+' \(" + ANY + r"\) with UID"
     r" \d+ and GID \d+\."),
]

APT_HISTORY = [
    ("history.start", r"Start-Date: \d{4}-\d\d-\d\d  \d\d:\d\d:\d\d"),
    ("history.end", r"End-Date: \d{4}-\d\d-\d\d  \d\d:\d\d:\d\d"),
    ("history.commandline", r"Commandline: " + ANY),
    ("history.requested_by", r"Requested-By: " + ANY),
    ("history.install", r"Install: " + ANY),
    ("history.upgrade", r"Upgrade: " + ANY),
    ("history.remove", r"Remove: " + ANY),
    ("history.purge", r"Purge: " + ANY),
]

ALTERNATIVES = [
    ("alt.run", r"update-alternatives \S+ \S+: run with " + ANY),
    ("alt.link_updated", r"update-alternatives \S+ \S+: link group \S+ "
     r"updated to point to \S+"),
]

KAFKA = [
    # The broker's configuration dump at start: one event per value.
    ("kafka.config_value", r"\t\S+ = " + ANY),
    ("kafka.config_header", KTS + r"INFO \S+Config values: "),
    ("kafka.loading_state_till", KTS + r"INFO \[LogLoader partition=\S+, "
     r"dir=\S+\] Loading producer state till offset \d+ with message format"
     r" version \d+ \(kafka\.log\.UnifiedLog\$\)"),
    ("kafka.replayed_partition", KTS + r"INFO \[QuorumController id=\d+\] "
     r"Replayed PartitionRecord for new partition \S+ with topic ID \S+ and "
     r"PartitionRegistration" + ANY),
    ("kafka.log_loaded", KTS + r"INFO \[Partition \S+ broker=\d+\] Log "
     r"loaded for partition \S+ with initial high watermark \d+ "
     r"\(kafka\.cluster\.Partition\)"),
    ("kafka.no_checkpoint", KTS + r"INFO \[Partition \S+ broker=\d+\] No "
     r"checkpointed highwatermark is found for partition \S+ "
     r"\(kafka\.cluster\.Partition\)"),
    ("kafka.created_log", KTS + r"INFO Created log for partition \S+ in \S+ "
     r"with properties \{\} \(kafka\.log\.LogManager\)"),
    ("kafka.preparing_rebalance", KTS + r"INFO \[GroupCoordinator \d+\]: "
     r"Preparing to rebalance group \S+ in state PreparingRebalance with old "
     r"generation \d+ \(__consumer_offsets-\d+\) \(reason: " + ANY + r"\) "
     r"\(kafka\.coordinator\.group\.GroupCoordinator\)"),
    ("kafka.reloading_snapshot", KTS + r"INFO \[LogLoader partition=\S+, "
     r"dir=\S+\] Reloading from producer snapshot and rebuilding producer "
     r"state from offset \d+ \(kafka\.log\.UnifiedLog\$\)"),
    ("kafka.recovery_took", KTS + r"INFO \[LogLoader partition=\S+, "
     r"dir=\S+\] Producer state recovery took \d+ms for snapshot load and "
     r"\d+ms for segment recovery from offset \d+ "
     r"\(kafka\.log\.UnifiedLog\$\)"),
    ("kafka.loading_from_snapshot", KTS + r"INFO \[ProducerStateManager "
     r"partition=\S+\] Loading producer state from snapshot file " + ANY),
    ("kafka.dynamic_member", KTS + r"INFO \[GroupCoordinator \d+\]: Dynamic "
     r"member with unknown member id joins group \S+ in \S+ state\. Created "
     r"a new member id \S+ and request the member to rejoin with this id\. "
     r"\(kafka\.coordinator\.group\.GroupCoordinator\)"),
    ("kafka.assignment_received", KTS + r"INFO \[GroupCoordinator \d+\]: "
     r"Assignment received from leader \S+ for group \S+ for generation \d+"
     r"\. The group has \d+ members, \d+ of which are static\. "
     r"\(kafka\.coordinator\.group\.GroupCoordinator\)"),
    ("kafka.wrote_snapshot", KTS + r"INFO \[ProducerStateManager "
     r"partition=\S+\] Wrote producer snapshot at offset \d+ with \d+ "
     r"producer ids in \d+ ms\. \(org\.apache\.kafka\.storage\.internals\."
     r"log\.ProducerStateManager\)"),
    ("kafka.replayed_topic", KTS + r"INFO \[QuorumController id=\d+\] "
     r"Replayed TopicRecord for topic \S+ with topic ID \S+\. "
     r"\(org\.apache\.kafka\.controller\.ReplicationControlManager\)"),
    ("kafka.removed_fetcher", KTS + r"INFO \[ReplicaFetcherManager on broker"
     r" \d+\] Removed fetcher for partitions Set\(" + ANY + r"\) "
     r"\(kafka\.server\.ReplicaFetcherManager\)"),
    ("kafka.unloading_group", KTS + r"INFO \[GroupCoordinator \d+\]: "
     r"Unloading group metadata for \S+ with generation \d+ "
     r"\(kafka\.coordinator\.group\.GroupCoordinator\)"),
    ("kafka.loading_group", KTS + r"INFO \[GroupCoordinator \d+\]: Loading "
     r"group metadata for \S+ with generation \d+ "
     r"\(kafka\.coordinator\.group\.GroupCoordinator\)"),
    ("kafka.scheduling_unloading", KTS + r"INFO \[GroupMetadataManager "
     r"brokerId=\d+\] Scheduling unloading of offsets and group metadata "
     r"from \S+ \(kafka\.coordinator\.group\.GroupMetadataManager\)"),
    ("kafka.scheduling_loading", KTS + r"INFO \[GroupMetadataManager "
     r"brokerId=\d+\] Scheduling loading of offsets and group metadata from"
     r" \S+ for epoch \d+ \(kafka\.coordinator\.group\."
     r"GroupMetadataManager\)"),
    ("kafka.finished_unloading", KTS + r"INFO \[GroupMetadataManager "
     r"brokerId=\d+\] Finished unloading \S+ for coordinator epoch "
     r"OptionalInt\[\d+\]\. Removed \d+ cached offsets and \d+ cached "
     r"groups\. \(kafka\.coordinator\.group\.GroupMetadataManager\)"),
    ("kafka.finished_loading", KTS + r"INFO \[GroupMetadataManager "
     r"brokerId=\d+\] Finished loading offsets and group metadata from \S+ "
     r"in \d+ milliseconds for epoch \d+, of which \d+ milliseconds was "
     r"spent in the scheduler\. \(kafka\.coordinator\.group\."
     r"GroupMetadataManager\)"),
    ("kafka.resigned", KTS + r"INFO \[GroupCoordinator \d+\]: Resigned as "
     r"the group coordinator for partition \d+ in epoch \S+ "
     r"\(kafka\.coordinator\.group\.GroupCoordinator\)"),
    ("kafka.elected", KTS + r"INFO \[GroupCoordinator \d+\]: Elected as the"
     r" group coordinator for partition \d+ in epoch \d+ "
     r"\(kafka\.coordinator\.group\.GroupCoordinator\)"),
    ("kafka.auto_creation", KTS + r"INFO Sent auto-creation request for "
     r"Set\(\S+\) to the active controller\. "
     r"\(kafka\.server\.DefaultAutoTopicCreationManager\)"),
    ("kafka.completed_load", KTS + r"INFO Completed load of Log\(dir=\S+, "
     r"topicId=\S+, topic=\S+, partition=\d+, highWatermark=\d+, "
     r"lastStableOffset=\d+, logStartOffset=\d+, logEndOffset=\d+\) with "
     r"\d+ segments, local-log-start-offset \d+ and log-end-offset \d+ in "
     r"\d+ms \(\d+/\d+ completed in \S+\) \(kafka\.log\.LogManager\)"),
    ("kafka.thread_starting", KTS + r"INFO \[\S+\]:? Starting \(\S+\)"),
    ("kafka.thread_stopped", KTS + r"INFO \[\S+\]:? Stopped \(\S+\)"),
    ("kafka.thread_shutting_down", KTS + r"INFO \[\S+\]:? Shutting down "
     r"\(\S+\)"),
    ("kafka.thread_shutdown_completed", KTS + r"INFO \[\S+\]:? Shutdown "
     r"completed \(\S+\)"),
    ("kafka.deleted_snapshot", KTS + r"INFO \[ProducerStateManager "
     r"partition=\S+\] Deleted producer state snapshot \S+ "
     r"\(org\.apache\.kafka\.storage\.internals\.log\."
     r"SnapshotFile\)"),
    ("kafka.stabilized_group", KTS + r"INFO \[GroupCoordinator \d+\]: "
     r"Stabilized group \S+ generation \d+ \(__consumer_offsets-\d+\) with "
     r"\d+ members \(kafka\.coordinator\.group\.GroupCoordinator\)"),
    ("kafka.create_topics", KTS + r"INFO \[QuorumController id=\d+\] "
     r"CreateTopics result\(s\): " + ANY),
]

POSTGRES = [
    ("pg.terminating", PGTS + r"FATAL:  terminating connection due to "
     r"administrator command"),
    ("pg.unexpected_eof_tx", PGTS + r"LOG:  unexpected EOF on client "
     r"connection with an open transaction"),
    ("pg.unexpected_eof", PGTS + r"LOG:  could not receive data from client:"
     r" Connection reset by peer"),
    ("pg.prepared_missing", PGTS + r"ERROR:  prepared statement \"\S+\" "
     r"does not exist"),
    ("pg.statement", PGTS + r"STATEMENT:  " + ANY),
    ("pg.fast_shutdown", PGTS + r"LOG:  received fast shutdown request"),
    ("pg.shut_down", PGTS + r"LOG:  database system is shut down"),
    ("pg.listening_socket", PGTS + r"LOG:  listening on Unix socket \"\S+\""),
    ("pg.listening_ip", PGTS + r"LOG:  listening on IPv[46] address \"\S+\", "
     r"port \d+"),
    ("pg.starting", PGTS + r"LOG:  starting PostgreSQL " + ANY),
    ("pg.ready", PGTS + r"LOG:  database system is ready to accept "
     r"connections"),
    ("pg.was_shut_down", PGTS + r"LOG:  database system was shut down at "
     + ANY),
    ("pg.aborting_tx", PGTS + r"LOG:  aborting any active transactions"),
    ("pg.bgworker_exited", PGTS + r"LOG:  background worker \"[^\"]+\" "
     r"\(PID \d+\) exited with exit code \d+"),
    ("pg.shutting_down", PGTS + r"LOG:  shutting down"),
    ("pg.checkpoint_starting", PGTS + r"LOG:  checkpoint starting: " + ANY),
    ("pg.checkpoint_complete", PGTS + r"LOG:  checkpoint complete: " + ANY),
    ("pg.duplicate_key", PGTS + r"ERROR:  duplicate key value violates "
     r"unique constraint \"\S+\""),
    ("pg.detail", PGTS + r"DETAIL:  " + ANY),
    ("pg.db_missing", PGTS + r"FATAL:  database \"\S+\" does not exist"),
    ("pg.could_not_serialize", PGTS + r"ERROR:  could not serialize access "
     + ANY),
    ("pg.canceling", PGTS + r"ERROR:  canceling statement due to " + ANY),
]

REDIS = [
    ("redis.starting", r"\d+:C \d\d \w{3} \d{4} \S+ # oO0OoO0OoO0Oo Redis is "
     r"starting oO0OoO0OoO0Oo"),
    ("redis.version", r"\d+:C \d\d \w{3} \d{4} \S+ # Redis version=" + ANY),
    ("redis.config_loaded", r"\d+:C \d\d \w{3} \d{4} \S+ # Configuration "
     r"loaded"),
    ("redis.clock", r"\d+:M \d\d \w{3} \d{4} \S+ \* monotonic clock: " + ANY),
    ("redis.mode", r"\d+:M \d\d \w{3} \d{4} \S+ \* Running mode=\S+ port="
     r"\d+\."),
    ("redis.initialized", r"\d+:M \d\d \w{3} \d{4} \S+ # Server initialized"),
    ("redis.overcommit", r"\d+:M \d\d \w{3} \d{4} \S+ # WARNING Memory "
     r"overcommit must be enabled!" + ANY),
    ("redis.ready", r"\d+:M \d\d \w{3} \d{4} \S+ \* Ready to accept "
     r"connections"),
]

SOURCES = [
    ("dpkg", "/var/log/dpkg.log", DPKG),
    ("apt_term", "/var/log/apt/term.log", APT_TERM),
    ("apt_history", "/var/log/apt/history.log", APT_HISTORY),
    ("alternatives", "/var/log/alternatives.log", ALTERNATIVES),
    ("kafka", os.path.join(STACK, "kafka/logs/server.log"), KAFKA),
    ("postgres", os.path.join(STACK, "pg/postgres.log"), POSTGRES),
    ("redis", os.path.join(STACK, "redis/redis.log"), REDIS),
]

SECRET = re.compile(r"(?i)\b(password|passwd|secret|token|api[_-]?key|"
                    r"credentials?)(\s*[=:]\s*)(?!null\b|\[hidden\])"
                    r"([^\s,)]+)")


def redact(line):
    """The line with secret-looking values replaced, or None to drop it."""
    if "PRIVATE KEY" in line:
        return None
    return SECRET.sub(lambda m: m.group(1) + m.group(2) + "REDACTED", line)


def label_file(path, rules):
    """(labelled [(label, line)], unlabelled count, total lines)."""
    compiled = [(name, re.compile(rx)) for name, rx in rules]
    out, missed, total = [], 0, 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\n")
            # apt's term.log redraws progress with \r: keep the last frame.
            line = line.split("\r")[-1].rstrip()
            if not line.strip():
                continue
            total += 1
            line = redact(line)
            if line is None or "\t" in line.lstrip("\t"):
                missed += 1
                continue
            for name, rx in compiled:
                if rx.fullmatch(line):
                    out.append((name, line))
                    break
            else:
                missed += 1
    return out, missed, total


def spread(items, limit):
    """At most limit items, evenly spaced, in their order."""
    if len(items) <= limit:
        return items
    step = len(items) / limit
    return [items[int(i * step)] for i in range(limit)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(
        __file__)))
    ap.add_argument("--max", type=int, default=2000)
    ap.add_argument("--show-missed", metavar="SOURCE")
    args = ap.parse_args()
    for name, path, rules in SOURCES:
        if not os.path.exists(path):
            print("%-13s %s: missing, skipped" % (name, path))
            continue
        if args.show_missed == name:
            compiled = [re.compile(rx) for _, rx in rules]
            with open(path, encoding="utf-8", errors="replace") as f:
                for raw in f:
                    line = raw.rstrip("\n").split("\r")[-1].rstrip()
                    if line.strip() and not any(rx.fullmatch(line)
                                                for rx in compiled):
                        print(line[:200])
            continue
        out, missed, total = label_file(path, rules)
        out = spread(out, args.max)
        dest = os.path.join(args.out, name + ".tsv")
        with open(dest, "w", encoding="utf-8") as f:
            for label, line in out:
                f.write("%s\t%s\n" % (label, line))
        labels = len({label for label, _ in out})
        print("%-13s %5d lines of %5d labelled (%d left out), %d labels -> %s"
              % (name, len(out), total, missed, labels, dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
