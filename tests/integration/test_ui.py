"""The status page (`nightshift ui`) in headless Chromium, during real runs
on the real stack: the jobs table shows each schedule's next fire time;
progress moves while a run's webhook calls are let through ten at a time
(the fake holds the rest, so every step is a known state, not a timing);
hostile item keys show as text and run no script; a dead letter is
replayed from the page with the token, and refused without it, from
another origin, or as a form post. Every API answer is checked against
the OpenAPI document the server publishes, and that document against the
OpenAPI 3.1 specification.

NS_UI_SCREENSHOT=PATH keeps a screenshot of the page mid-run (the README's).
"""
import http.server as http_server
import json
import os
import re
import subprocess
import threading
import unittest
import urllib.error
import urllib.request

import harness

N_ITEMS = 30
STEP = 10
TOKEN = "ui-test-token-0123456789abcdef"
HOSTILE = ["<img src=x onerror=window.__xss=1>",
           "<script>window.__xss=2</script>",
           "\"><svg onload=window.__xss=3>",
           "=HYPERLINK(\"http://evil.example\")"]


def have_browser():
    return (os.path.exists("/usr/bin/chromium") and
            os.path.exists("/usr/bin/chromedriver"))


def call(url, method="GET", body=None, headers=None):
    """(status, parsed JSON or text, headers) of one request."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw, hdrs = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), e.headers
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = raw.decode("utf-8", "replace")
    return status, doc, hdrs


class UiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        env = cls.env = harness.Env("ui")
        cls.hook = harness.Fake(env, "fake_webhook.py")
        cls.bad = harness.Fake(env, "fake_webhook.py", "--status", "400")
        cls.prog = env.job("uiprog")
        cls.hostile = env.job("uihostile")
        keys = " UNION ALL ".join(
            "SELECT %s AS id" % ("'" + k.replace("'", "''") + "'")
            for k in HOSTILE)
        cls.cfg = env.config(
            "jobs:\n"
            "  - name: %s\n"
            "    schedule: \"30 6 * * *\"\n"
            "    timezone: Europe/Berlin\n"
            "    source: {type: sql, query: \"SELECT g AS id FROM "
            "generate_series(1, %d) g\", key: id}\n"
            "    handler: webhook.post\n"
            "    params: {url: \"%s/hook\", timeout_seconds: 60}\n"
            "    max_parallelism: 1\n"
            "  - name: %s\n"
            "    source: {type: sql, query: %s, key: id}\n"
            "    handler: webhook.post\n"
            "    params: {url: \"%s/bad\", timeout_seconds: 5}\n"
            "    retry: {max_attempts: 1}\n"
            "    max_parallelism: 1\n"
            % (cls.prog, N_ITEMS, cls.hook.url, cls.hostile,
               json.dumps(keys), cls.bad.url),
            worker="max_in_flight: %d" % N_ITEMS,
            extra="ui: {refresh_ms: 300}\n")
        cls.worker = env.start("worker", "-c", cls.cfg)
        env.wait_log(cls.worker, "assigned")
        cls.ui, cls.url = cls.start_ui("ui", dict(env.env, NS_UI_TOKEN=TOKEN))
        ro_env = dict(env.env)
        ro_env.pop("NS_UI_TOKEN", None)
        cls.ro, cls.ro_url = cls.start_ui("ui-readonly", ro_env)
        cls.browser = cls.start_browser() if have_browser() else None

    @classmethod
    def start_ui(cls, name, env):
        port_file = os.path.join(cls.env.tmp, name + ".port")
        proc = cls.env.start("ui", "-c", cls.cfg, "--port", "0",
                             "--port-file", port_file, log=name, env=env)
        harness.wait_for(lambda: os.path.exists(port_file), 30,
                         name + " to listen")
        with open(port_file) as f:
            return proc, "http://127.0.0.1:%d" % int(f.read())

    @classmethod
    def start_browser(cls):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        # The machine's network is closed: no background connections.
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-quic", "--no-first-run",
                     "--disable-background-networking",
                     "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--user-data-dir=" + os.path.join(cls.env.tmp,
                                                       "chromium")):
            opts.add_argument(flag)
        return webdriver.Chrome(service=Service("/usr/bin/chromedriver"),
                                options=opts)

    @classmethod
    def tearDownClass(cls):
        if cls.browser is not None:
            cls.browser.quit()
        cls.env.close()

    # -- helpers ----------------------------------------------------------
    def need_browser(self):
        if self.browser is None:
            self.skipTest("chromium and chromium-driver are not installed "
                          "(scripts/test.sh installs them)")
        return self.browser

    def api(self, path, base=None):
        status, doc, _ = call((base or self.url) + path)
        self.assertEqual(status, 200, "%s: %r" % (path, doc))
        return doc

    def openapi(self):
        if not hasattr(self, "_openapi"):
            type(self)._openapi = self.api("/api/v1/openapi.json")
        return self._openapi

    def check_schema(self, doc, name):
        import jsonschema
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                  "$ref": "#/components/schemas/" + name,
                  "components": self.openapi()["components"]}
        jsonschema.Draft202012Validator(schema).validate(doc)

    def page_text(self, css):
        """The text of every element matching css, read in one go (the
        page redraws its tables on every refresh)."""
        return self.browser.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]))"
            ".map(e => e.textContent)", css)

    def wait_page(self, fn, what, timeout=60):
        from selenium.common.exceptions import StaleElementReferenceException

        def probe():
            try:
                return fn()
            except StaleElementReferenceException:
                return False  # the table was redrawn under us
        return harness.wait_for(probe, timeout, what, interval=0.2)

    def click(self, css, what):
        """Clicks the element matching css once it is there, found and
        clicked in one step in the page (a running run's row is redrawn on
        every refresh)."""
        self.wait_page(lambda: self.browser.execute_script(
            "const e = document.querySelector(arguments[0]);"
            "if (e) e.click(); return !!e", css), what)

    def run_row(self, run_id):
        """(status, progress text, rate, eta) of the run's row, or None."""
        row = self.browser.execute_script(
            "const r = document.querySelector(arguments[0]);"
            "return r && [r.dataset.status].concat(['.progress-text', "
            "'.rate', '.eta'].map(c => r.querySelector(c).textContent))",
            'tr[data-run-id="%d"]' % run_id)
        return tuple(row) if row else None

    def start_run(self, job):
        res = self.env.nightshift("run", job, "-c", self.cfg)
        return int(re.search(r"run (\d+) of", res.stdout).group(1))

    def done(self, run_id):
        return self.env.scalar(
            "SELECT count(*) FROM items WHERE run_id = %s AND status = 'done'",
            (run_id,))

    def hostile_run(self):
        """The run of the hostile job, its items failed and dead-lettered."""
        if not hasattr(type(self), "_hostile_run"):
            run_id = self.start_run(self.hostile)
            harness.wait_for(lambda: self.env.scalar(
                "SELECT status FROM runs WHERE run_id = %s", (run_id,))
                == "failed", 120, "the hostile run to fail")
            harness.wait_for(lambda: self.env.scalar(
                "SELECT count(*) FROM dead_letters WHERE run_id = %s",
                (run_id,)) == len(HOSTILE), 60, "its dead letters")
            type(self)._hostile_run = run_id
        return self._hostile_run

    # -- the API ----------------------------------------------------------
    def test_a_openapi_document_is_valid(self):
        venv = os.environ.get("NS_TOOLS_VENV", os.path.expanduser(
            "~/.cache/nightshift/venv"))
        tool = os.path.join(venv, "bin", "openapi-spec-validator")
        if not os.path.exists(tool):
            self.skipTest("openapi-spec-validator is not in %s "
                          "(scripts/test.sh installs it)" % venv)
        path = os.path.join(self.env.tmp, "openapi.json")
        with open(path, "w") as f:
            json.dump(self.openapi(), f)
        res = subprocess.run([tool, path], capture_output=True, text=True,
                             timeout=120)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        # Every route the document names answers (GETs without ids).
        for path in self.openapi()["paths"]:
            if "{" not in path:
                self.api(path)

    def test_b_api_answers_match_the_document(self):
        info = self.api("/api/v1")
        self.check_schema(info, "Info")
        self.assertTrue(info["replay"])
        self.assertFalse(self.api("/api/v1", self.ro_url)["replay"])
        jobs = self.api("/api/v1/jobs")
        self.check_schema(jobs, "JobList")
        by_name = {j["name"]: j for j in jobs["jobs"]}
        # 06:30 in Berlin is 05:30 UTC in winter, 04:30 in summer.
        self.assertRegex(by_name[self.prog]["next_fire"],
                         r"T0[45]:30:00\.000Z$")
        self.assertIsNone(by_name[self.hostile]["next_fire"])
        run_id = self.hostile_run()
        self.check_schema(self.api("/api/v1/runs"), "Status")
        self.check_schema(self.api("/api/v1/runs?job=" + self.hostile),
                          "Status")
        detail = self.api("/api/v1/runs/%d" % run_id)
        self.check_schema(detail, "RunDetail")
        self.assertEqual(sorted(i["item_key"] for i in detail["items"]),
                         sorted(HOSTILE))
        dlq = self.api("/api/v1/dlq?job=" + self.hostile)
        self.check_schema(dlq, "DeadLetterList")
        self.assertEqual(dlq["total"], len(HOSTILE))
        one = self.api("/api/v1/dlq/%d" % dlq["dead_letters"][0]["id"])
        self.check_schema(one, "DeadLetterDetail")
        # Errors are JSON too, with the status the document gives.
        for path, want in (("/api/v1/runs/999999999", 404),
                           ("/api/v1/dlq/999999999", 404),
                           ("/api/v1/dlq?limit=0", 400),
                           ("/api/v1/dlq?since=yesterday-ish", 400),
                           ("/api/v1/runs/abc", 404),
                           ("/api/v1/nope", 404)):
            status, doc, _ = call(self.url + path)
            self.assertEqual(status, want, path)
            if path.startswith("/api/v1/") and path != "/api/v1/nope":
                self.check_schema(doc, "Error")
        _, _, hdrs = call(self.url + "/")
        self.assertIn("script-src 'self'", hdrs["Content-Security-Policy"])
        self.assertEqual(hdrs["X-Content-Type-Options"], "nosniff")
        self.assertEqual(hdrs["X-Frame-Options"], "DENY")

    # -- the page ---------------------------------------------------------
    def test_c_progress_moves_during_a_real_run(self):
        browser = self.need_browser()
        self.hook.control("config", {"hold": True})
        try:
            run_id = self.start_run(self.prog)
            browser.get(self.url + "/")
            # The jobs table: schedule, zone and next fire time.
            self.wait_page(lambda: self.prog in self.page_text("#jobs .job"),
                           "the jobs table")
            row = self.page_text('#jobs tr[data-job="%s"] td' % self.prog)
            self.assertEqual(row[1:3], ["30 6 * * *", "Europe/Berlin"])
            self.assertRegex(row[3], r"T0[45]:30:00\.000Z$")
            self.wait_page(lambda: self.run_row(run_id) is not None and
                           self.run_row(run_id)[:2] ==
                           ("running", "0 / %d" % N_ITEMS), "0 done")
            for done in range(STEP, N_ITEMS, STEP):
                self.hook.control("config", {"release": STEP})
                harness.wait_for(lambda: self.done(run_id) == done, 60,
                                 "%d items done" % done)
                status, text, rate, eta = self.wait_page(
                    lambda: self.run_row(run_id)[1] ==
                    "%d / %d" % (done, N_ITEMS) and self.run_row(run_id),
                    "the page to show %d done" % done)
                self.assertEqual(status, "running")
                self.assertRegex(rate, r"^\d+\.\d/s$")
                self.assertNotEqual(eta, "–")
                # The terminal shows the same pace.
                table = self.env.nightshift("status", str(run_id), "-c",
                                            self.cfg).stdout
                self.assertRegex(table, r"progress: \d+\.\d items/s, "
                                        r"ETA \d+ s")
                if done == STEP and os.environ.get("NS_UI_SCREENSHOT"):
                    browser.save_screenshot(os.environ["NS_UI_SCREENSHOT"])
        finally:
            self.hook.control("config", {"hold": False})
        self.wait_page(lambda: self.run_row(run_id)[:2] ==
                       ("succeeded", "%d / %d" % (N_ITEMS, N_ITEMS)),
                       "the run to succeed on the page", timeout=120)
        # The run's messages, apart from its items (rows as the outbox
        # leaves them once delivered or failed for good).
        for i, status in enumerate(("sent", "sent", "sent", "failed")):
            self.env.sql(
                "INSERT INTO outbox (idempotency_key, run_id, channel, "
                "target, payload, status, kind, sent_at) VALUES (%s, %s, "
                "'telegram', 'ui-test', '{}', %s, 'report', CASE WHEN %s = "
                "'sent' THEN now() END)",
                ("ui-%d-%d" % (run_id, i), run_id, status, status))
        self.wait_page(lambda: self.page_text(
            'tr[data-run-id="%d"] .delivery' % run_id) == ["3 sent, 1 failed"],
            "the run's messages on the page")

    def test_d_hostile_names_are_text(self):
        browser = self.need_browser()
        from selenium.webdriver.common.by import By
        run_id = self.hostile_run()
        browser.get(self.url + "/")
        self.click('[data-open-run="%d"]' % run_id, "the run")
        self.wait_page(lambda: len(self.page_text("#items .item")) ==
                       len(HOSTILE), "the failed items")
        self.assertEqual(sorted(self.page_text("#items .item")),
                         sorted(HOSTILE))
        for reason in self.page_text("#items .reason"):
            self.assertIn("400", reason)
        self.wait_page(lambda: set(HOSTILE) <= set(self.page_text(
            "#dlq .item")), "the dead letters")
        self.assertIsNone(browser.execute_script("return window.__xss"))
        for tag in ("#items img", "#items svg", "#items script", "#dlq img",
                    "#dlq svg", "#dlq script"):
            self.assertEqual(browser.find_elements(By.CSS_SELECTOR, tag), [],
                             tag)

    def test_e_replay_from_the_page_with_the_token(self):
        browser = self.need_browser()
        from selenium.webdriver.common.by import By
        run_id = self.hostile_run()
        key = HOSTILE[0]
        dl = self.env.scalar("SELECT max(id) FROM dead_letters WHERE "
                             "run_id = %s AND item_key = %s", (run_id, key))
        self.bad.control("config", {"status": 200})
        browser.get(self.url + "/")
        self.wait_page(lambda: self.page_text("#mode") == ["replay enabled"],
                       "the page to load")
        # No token in this tab yet: no write action on the page.
        self.assertEqual(browser.find_elements(By.CSS_SELECTOR,
                                               "button.replay"), [])
        browser.find_element(By.ID, "token").send_keys(TOKEN)
        browser.find_element(By.ID, "token-save").click()
        self.click('button[data-replay="%d"]' % dl, "Replay")
        self.wait_page(lambda: "Dead letter %d:" % dl in " ".join(
            self.page_text("#replay-result")), "the replay's answer")
        self.assertNotIn("refused", self.page_text("#replay-result")[0])
        harness.wait_for(lambda: self.env.scalar(
            "SELECT status FROM items WHERE run_id = %s AND item_key = %s",
            (run_id, key)) == "done", 120, "the replayed item to be done")
        self.wait_page(lambda: self.page_text(
            'tr[data-dlq-id="%d"] .replays' % dl) == ["1"],
            "the replay count on the page")
        # The token never reaches a cookie or the URL.
        self.assertEqual(browser.get_cookies(), [])
        self.assertNotIn(TOKEN, browser.current_url)

    def test_f_replay_refused_without_the_token(self):
        run_id = self.hostile_run()
        dl = self.env.scalar("SELECT max(id) FROM dead_letters WHERE "
                             "run_id = %s AND item_key = %s",
                             (run_id, HOSTILE[1]))
        url = "%s/api/v1/dlq/%d/replay" % (self.url, dl)
        js = {"Content-Type": "application/json"}
        auth = dict(js, Authorization="Bearer " + TOKEN)
        cases = [
            ({}, 403),                                     # no JSON type
            (js, 401),                                     # no token
            (dict(js, Authorization="Bearer wrong"), 401),
            (dict(auth, Origin="http://evil.example"), 403),
            (dict(auth, **{"Sec-Fetch-Site": "cross-site"}), 403),
            (dict(auth, **{"Content-Type": "text/plain"}), 403),
        ]
        for headers, want in cases:
            status, doc, _ = call(url, "POST", "{}", headers)
            self.assertEqual(status, want, headers)
            self.check_schema(doc, "Error")
        status, doc, _ = call(url, "POST", '{"dry_run": "yes"}', auth)
        self.assertEqual(status, 400)
        # A read-only ui has no write route at all.
        status, _, _ = call("%s/api/v1/dlq/%d/replay" % (self.ro_url, dl),
                            "POST", "{}", auth)
        self.assertEqual(status, 405)
        # With the token, a dry run plans and changes nothing.
        status, doc, _ = call(url, "POST", '{"dry_run": true}', auth)
        self.assertEqual(status, 200, doc)
        self.check_schema(doc, "ReplayResult")
        self.assertTrue(doc["dry_run"])
        self.assertEqual(self.env.scalar(
            "SELECT replay_count FROM dead_letters WHERE id = %s", (dl,)), 0)
        self.assertNotIn(TOKEN, open(self.ui.log_path).read())

    def test_g_another_sites_form_cannot_replay(self):
        browser = self.need_browser()
        run_id = self.hostile_run()
        dl = self.env.scalar("SELECT max(id) FROM dead_letters WHERE "
                             "run_id = %s AND item_key = %s",
                             (run_id, HOSTILE[2]))
        target = "%s/api/v1/dlq/%d/replay" % (self.url, dl)
        page = ("<!doctype html><form id=f method=post action='%s' "
                "enctype=text/plain><input name='{\"a\":\"' value='\"}'>"
                "</form><script>document.getElementById('f').submit()"
                "</script>" % target).encode()

        class Evil(http_server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass
        evil = http_server.HTTPServer(("127.0.0.1", 0), Evil)
        threading.Thread(target=evil.serve_forever, daemon=True).start()
        try:
            browser.get("http://127.0.0.1:%d/" % evil.server_address[1])
            self.env.wait_log(self.ui, "replay of dead letter %d refused"
                              % dl)
        finally:
            evil.shutdown()
        self.assertEqual(self.env.scalar(
            "SELECT replay_count FROM dead_letters WHERE id = %s", (dl,)), 0)

    def test_h_read_only_page_offers_no_replay(self):
        browser = self.need_browser()
        from selenium.webdriver.common.by import By
        self.hostile_run()
        browser.get(self.ro_url + "/")
        self.wait_page(lambda: self.page_text("#mode") == ["read-only"],
                       "the read-only page")
        self.wait_page(lambda: len(self.page_text("#dlq tbody tr")) >= 1,
                       "the dead letters")
        self.assertFalse(browser.find_element(By.ID, "readonly").get_attribute(
            "hidden"))
        self.assertTrue(browser.find_element(By.ID, "token-form")
                        .get_attribute("hidden"))
        self.assertEqual(browser.find_elements(By.CSS_SELECTOR,
                                               "button.replay"), [])


if __name__ == "__main__":
    harness.run(globals())
