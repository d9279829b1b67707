"""`nightshift config check`: the shipped config passes; bad files are
rejected with FILE:LINE: message and exit status 2. Needs no servers."""
import os
import subprocess
import sys
import tempfile
import unittest

import harness

GOOD_JOB = """jobs:
  - name: a
    schedule: "0 2 * * *"
    timezone: Europe/Berlin
    source: {type: one}
    handler: analyzer.project
"""


class ConfigCheckTest(unittest.TestCase):
    def check(self, text):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml",
                                         delete=False) as f:
            f.write(text)
        try:
            res = subprocess.run([harness.BIN, "config", "check", f.name],
                                 capture_output=True, text=True, timeout=30)
        finally:
            os.unlink(f.name)
        return res.returncode, (res.stdout + res.stderr).replace(f.name,
                                                                 "FILE")

    def test_shipped_config(self):
        path = os.path.join(harness.SRC, "config", "jobs.yaml")
        res = subprocess.run([harness.BIN, "config", "check", path],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("ok", res.stdout)

    def test_good(self):
        self.assertEqual(self.check(GOOD_JOB)[0], 0)
        self.assertEqual(self.check(
            GOOD_JOB + '    notify: {email: {to: "a@x.org, B <b@x.org>"}}\n'
        )[0], 0)

    def test_errors_name_the_line(self):
        cases = [
            (GOOD_JOB.replace("handler: analyzer.project",
                              "handler: stopwords.cnt"),
             'FILE:6: unknown handler "stopwords.cnt"'),
            (GOOD_JOB.replace('"0 2 * * *"', '"61 2 * * *"'),
             "FILE:3: "),
            (GOOD_JOB.replace("Europe/Berlin", "Mars/Base"),
             'FILE:4: unknown time zone "Mars/Base"'),
            (GOOD_JOB + "    handlr: x\n", 'FILE:7: unknown key "handlr"'),
            (GOOD_JOB.replace("name: a", "name: a\n    name: b"),
             "FILE:3: duplicate key"),
            ("jobs:\n  - name: [unclosed\n", "FILE:"),
            # Addresses are checked as the mailer will: no header
            # injection through the configuration either.
            (GOOD_JOB + '    notify: {email: {to: "a@x.org\\r\\nBcc: '
             'evil@x.org"}}\n', "FILE:7: notify.email.to: "),
            (GOOD_JOB + "    notify: {email: {to: []}}\n",
             "FILE:7: notify.email.to is empty"),
            (GOOD_JOB + "    notify: {email: {}}\n",
             'FILE:7: notify.email needs "to"'),
            ("smtp: {starttls: maybe}\n" + GOOD_JOB,
             'smtp.starttls is "maybe"'),
        ]
        for text, expected in cases:
            code, out = self.check(text)
            self.assertEqual(code, 2, out)
            self.assertIn(expected, out)

    def test_cron_message_names_the_field(self):
        code, out = self.check(GOOD_JOB.replace('"0 2 * * *"',
                                                '"61 2 * * *"'))
        self.assertIn("minute: 61 is out of range 0-59", out)


if __name__ == "__main__":
    result = unittest.TextTestRunner(verbosity=2).run(
        unittest.defaultTestLoader.loadTestsFromModule(
            sys.modules[__name__]))
    failed = len(result.failures) + len(result.errors)
    print("%d passed, %d failed" % (result.testsRun - failed, failed))
    sys.exit(1 if failed else 0)
