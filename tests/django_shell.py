"""One Django process, on the environment of a test's subprocesses, that runs the snippets the test sends it.

The worker tests set up and inspect the database their Celery and gunicorn processes share from a separate
process; a ``manage.py shell -c`` per snippet starts Django each time (about 2.5 s of CPU on the 2-core VM,
while the processes under test compete for the same cores). This process starts Django once and runs each
snippet in order, in fresh globals, with what it printed as the answer; a snippet that raises fails the test
with its traceback.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import tempfile
import threading

from tests.embedded_db import REPO

#: The process: a snippet per line in (JSON), a reply per line out. The snippet's prints are captured; the
#: process's own stdout is kept for the replies. Connections are closed after each snippet, as a
#: ``manage.py shell`` that exits would have closed them.
RUNNER = r"""
import contextlib, io, json, sys, traceback
import django
django.setup()
from django.db import connections
replies = sys.stdout
sys.stdout = sys.stderr
for line in sys.stdin:
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            exec(compile(json.loads(line), "<snippet>", "exec"), {"__name__": "__snippet__"})
        reply = {"ok": True, "printed": printed.getvalue()}
    except BaseException:
        reply = {"ok": False, "printed": printed.getvalue(), "error": traceback.format_exc()}
    finally:
        connections.close_all()
    replies.write(json.dumps(reply) + "\n")
    replies.flush()
"""


class DjangoShell:
    """``run(code)`` runs ``code`` in the process and returns what it printed; ``close()`` ends it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, "-c", RUNNER],
            cwd=REPO,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
        )
        self.replies: queue.SimpleQueue[str] = queue.SimpleQueue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.replies.put(line)
        self.replies.put("")  # the process ended

    def run(self, code: str, timeout: float = 300) -> str:
        self.process.stdin.write(json.dumps(code) + "\n")
        self.process.stdin.flush()
        try:
            line = self.replies.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the snippet ran for more than {timeout:.0f} s:\n{code}") from None
        if not line:
            raise AssertionError(f"the Django process ended:\n{self.errors()}")
        reply = json.loads(line)
        assert reply["ok"], f"the snippet failed:\n{code}\n{reply['error']}\n{self.errors()}"
        return reply["printed"]

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read()[-3000:]

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()

    def __enter__(self) -> DjangoShell:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
