"""The log analyzer reading a window from Elasticsearch (params.source:
elasticsearch) against a fake that speaks the point-in-time search API:
2,500 documents of the window are read in pages of 1,000 with
search_after (three searches, the point in time closed after), documents
of other windows are not asked for, a document without a message is a
bad line; a 503 is retried; wrong credentials fail the run
with a reason that names the setting."""
import json
import re
import time
import unittest

import harness

WINDOW = 900


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + \
        ".%03dZ" % (ms % 1000)


class LogsElasticsearchTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.env = env = harness.Env("logses")
        cls.es = harness.Fake(env, "fake_elasticsearch.py", "--user",
                              "reader", "--password", "s3cret-es")
        cls.job = env.job("eslogs")
        cls.cfg = env.config(
            "jobs:\n"
            "  - name: %s\n"
            "    source: {type: windows, window_seconds: %d}\n"
            "    handler: logs.window\n"
            "    retry: {max_attempts: 3, backoff_seconds: 0.2, "
            "backoff_max_seconds: 0.5}\n"
            "    params: {source: elasticsearch, grace_seconds: 0, "
            "elasticsearch: {url: \"%s\", index: \"logs-*\", page_size: "
            "1000}}\n" % (cls.job, WINDOW, cls.es.url))
        cls.start = (int(time.time() // WINDOW) - 3) * WINDOW * 1000
        docs = []
        for i in range(2500):
            ms = cls.start + i * 300
            docs.append({"@timestamp": iso(ms), "service": "api",
                         "level": "error" if i % 10 == 0 else "info",
                         "message": "request %d served in %dms" % (i, i % 97)
                         if i % 10 else "upstream timeout after %ds" % (i % 7)})
        docs.append({"@timestamp": iso(cls.start + 5), "service": "api"})
        for k in range(3):  # the window before and after: not asked for
            docs.append({"@timestamp": iso(cls.start - 1000 - k),
                         "message": "old", "service": "api"})
            docs.append({"@timestamp": iso(cls.start + WINDOW * 1000 + k),
                         "message": "new", "service": "api"})
        cls.es.control("docs", {"index": "logs-app", "docs": docs})
        cls.es.control("docs", {"index": "other", "docs": [
            {"@timestamp": iso(cls.start + 10), "message": "not ours"}]})
        cls.wenv = dict(env.env, NS_ELASTICSEARCH_USER="reader",
                        NS_ELASTICSEARCH_PASSWORD="s3cret-es")
        cls.worker = env.start("worker", "-c", cls.cfg, log="worker",
                               env=cls.wenv)
        env.wait_log(cls.worker, "assigned", timeout=60)

    @classmethod
    def tearDownClass(cls):
        cls.env.close()

    def run_window(self, check=True):
        slot = time.strftime("%Y-%m-%dT%H:%MZ",
                             time.gmtime(self.start / 1000 + WINDOW))
        return self.env.nightshift("run", self.job, "--slot", slot, "--wait",
                                   "--timeout", "120", "-c", self.cfg,
                                   check=check)

    def test_1_a_window_in_pages(self):
        before = self.es.control("stats")
        # A 503 (on opening the point in time) is retried.
        self.es.faults({"kind": "status", "status": 503})
        res = self.run_window()
        self.assertIn("succeeded", res.stdout)
        lines, bad, templates = self.env.sql(
            "SELECT lines, bad_lines, templates FROM log_windows WHERE job = "
            "%s", (self.job,))[0]
        self.assertEqual((lines, bad), (2500, 1))
        self.assertEqual(templates, 2)
        stats = self.es.control("stats")
        # 1,000 + 1,000 + 500: the short page ends it.
        self.assertEqual(stats["searches"] - before["searches"], 3)
        self.assertEqual(stats["largest_page"], 1000)
        self.assertEqual(stats["open_pits"], 0, "every point in time closed")
        reasons = [r for (r,) in self.env.sql(
            "SELECT reason FROM dead_letters WHERE job = %s", (self.job,))]
        self.assertEqual(len(reasons), 1)
        self.assertIn("no message", reasons[0])
        log = open(self.worker.log_path, errors="replace").read()
        self.assertNotIn("s3cret-es", log)

    def test_2_wrong_credentials_fail_with_the_reason(self):
        env = self.env
        bad_env = dict(env.env, NS_ELASTICSEARCH_USER="reader",
                       NS_ELASTICSEARCH_PASSWORD="wrong")
        w2 = env.start("worker", "-c", self.cfg, log="worker-bad",
                       env=bad_env)
        env.stop(self.worker)
        env.wait_log(w2, "assigned", timeout=60)
        res = self.run_window(check=False)
        self.assertNotEqual(res.returncode, 0)
        err = env.scalar("SELECT i.error FROM items i JOIN runs r USING "
                         "(run_id) WHERE r.job = %s ORDER BY r.run_id DESC "
                         "LIMIT 1", (self.job,))
        self.assertIn("check the elasticsearch user", err or "")
        self.assertTrue(re.search(r"HTTP 401", err or ""), err)


if __name__ == "__main__":
    harness.run(globals())
