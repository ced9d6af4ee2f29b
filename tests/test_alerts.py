"""Alerts: a failed scheduled job is POSTed to GHO_ALERT_WEBHOOK, and a webhook in trouble never fails a job.

The receivers are small HTTP servers of ours on 127.0.0.1: one that takes
every message, one that answers 500, one that never answers.
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import run_script, write_dataset_config
from utils.gho_samples import generate_rows

SECRET = "Qw3rtyS3cret"


class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST body and answers as `mode` says."""

    def __init__(self, mode="ok"):
        self.mode, self.bodies, self.release = mode, [], threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.bodies.append(json.loads(body))
                if receiver.mode == "hang":
                    receiver.release.wait(60)
                    return
                self.send_response(500 if receiver.mode == "fail" else 200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T0KEN/{SECRET}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(request):
    made = Receiver(getattr(request, "param", "ok"))
    yield made
    made.close()


def _env(script_env, tmp_path, stub, receiver, **extra):
    stub.set_rows("GEN_W", generate_rows("GEN_W", 20))
    config = write_dataset_config(tmp_path, {"watched": {"indicator": "GEN_W"}, "missing": {"indicator": "NOPE_X"}})
    return dict(
        script_env,
        DATASET_CONFIG_FILE=str(config),
        GHO_ALERT_WEBHOOK=receiver.url,
        DATABASE_URL=script_env["DATABASE_URL"].replace("postgres:@", f"postgres:{SECRET}@", 1),
        **extra,
    )


def test_a_failed_job_is_posted_with_its_error_and_no_secret(script_env, tmp_path, stub, receiver):
    result = run_script("start_scheduler.py", "--once", env=_env(script_env, tmp_path, stub, receiver))
    assert result.returncode == 1  # the missing indicator's job failed; the other one loaded
    [message] = receiver.bodies
    assert message["status"] == "failed" and message["dataset"] == "missing" and message["phase"] == "extract"
    assert message["text"].startswith("gho-etl: job missing failed at extract on ") and "NOPE_X" in message["text"]
    assert SECRET not in json.dumps(message)
    log = (tmp_path / "logs" / "gho_etl.jsonl").read_text()
    assert SECRET not in log + result.stdout + result.stderr


@pytest.mark.parametrize("receiver", ["fail", "hang"], indirect=True)
def test_a_webhook_that_fails_or_hangs_never_fails_or_stalls_the_job(script_env, tmp_path, stub, receiver):
    env = _env(script_env, tmp_path, stub, receiver, GHO_ALERT_TIMEOUT="3")
    started = time.monotonic()
    result = run_script("start_scheduler.py", "--once", env=env)
    assert result.returncode == 1  # the job's own failure, nothing more
    assert time.monotonic() - started < 20
    assert 1 <= len(receiver.bodies) <= 3  # bounded retries
    warnings = [line for line in (tmp_path / "logs" / "gho_etl.jsonl").read_text().splitlines() if "alert" in line]
    assert any("could not deliver the alert for missing" in json.loads(line)["message"] for line in warnings)
    assert "watched: " in result.stdout or "load watched" in result.stdout


def test_a_failure_is_posted_once_and_its_recovery_once(script_env, tmp_path, stub, receiver):
    from src.alerts import Alerts
    from src.runner import PhaseOutcome
    from src.settings import validate_datasets

    dataset = validate_datasets({"watched": {"indicator": "GEN_W"}})["watched"]
    alerts = Alerts(receiver.url, on_recovery=True)
    failed = PhaseOutcome.failed("watched", "load", "lost the database", 1)
    ok = PhaseOutcome(dataset="watched", phase="load", ok=True)
    for outcomes in ([ok], [failed], [failed], [ok], [ok]):
        alerts.job_done(dataset, outcomes)
    assert [m["status"] for m in receiver.bodies] == ["failed", "recovered"]  # no storm while it keeps failing
