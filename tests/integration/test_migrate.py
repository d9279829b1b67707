"""`nightshift migrate` on a fresh database: idempotent, and safe when
several processes start at once (advisory lock)."""
import subprocess
import unittest

import harness


class MigrateTest(unittest.TestCase):
    def test_concurrent_migrations(self):
        env = harness.Env("migrate")  # Env already migrated its database
        try:
            env.sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
            procs = [subprocess.Popen([harness.BIN, "migrate"], env=env.env,
                                      stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
                     for _ in range(4)]
            outs = [p.communicate(timeout=60) for p in procs]
            for p, (out, err) in zip(procs, outs):
                self.assertEqual(p.returncode, 0, err)
            applied = [int(out.split()[1]) for out, _ in outs]
            self.assertEqual(sum(applied), env.scalar(
                "SELECT count(*) FROM schema_migrations"))
            again = env.nightshift("migrate")
            self.assertIn("0 applied", again.stdout)
        finally:
            env.close()


if __name__ == "__main__":
    harness.run(globals())
