"""Telling someone when a scheduled job fails (and, if asked, when it recovers): a JSON POST to a webhook.

`GHO_ALERT_WEBHOOK` is any URL that takes a JSON body; its `text` field is
what Slack and Microsoft Teams incoming webhooks show. An alert is bounded
(ALERT_DEADLINE_S in all, at most ALERT_ATTEMPTS tries, no redirect followed)
and can never fail or stall a job beyond that bound: every problem with the
webhook is one warning in the log. The webhook URL itself is a secret (Slack's
carries its token in the path), so it is masked like a password, and the
message is redacted like every other text that leaves the process.
"""

import logging
import socket
import time

import requests

from src.redact import redact, redact_values

log = logging.getLogger("gho_etl.alerts")

ALERT_ATTEMPTS = 3
ALERT_DEADLINE_S = 20.0
ALERT_TIMEOUT_S = 5.0


def failure_message(dataset, outcomes) -> dict:
    failed = next(o for o in outcomes if not o.ok)
    return _message(
        "failed",
        dataset,
        f"gho-etl: job {dataset.name} failed at {failed.phase} on {socket.gethostname()}: {failed.error}",
        phase=failed.phase,
        error=failed.error,
    )


def recovery_message(dataset) -> dict:
    return _message("recovered", dataset, f"gho-etl: job {dataset.name} succeeded again on {socket.gethostname()}")


def _message(status, dataset, text, phase=None, error=None) -> dict:
    return redact_values(
        {
            "text": text,
            "status": status,
            "dataset": dataset.name,
            "indicator": dataset.indicator,
            "table": dataset.table,
            "phase": phase,
            "error": error,
            "host": socket.gethostname(),
        }
    )


def send(webhook: str, message: dict, deadline_s: float = ALERT_DEADLINE_S) -> bool:
    """POST `message`; True once the webhook took it. Never raises; bounded in time and tries."""
    deadline = time.monotonic() + deadline_s
    problem = None
    for attempt in range(1, ALERT_ATTEMPTS + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0.5:
            break
        try:
            answer = requests.post(
                webhook, json=message, timeout=min(ALERT_TIMEOUT_S, remaining), allow_redirects=False
            )
            if answer.status_code < 300:
                return True
            problem = f"HTTP {answer.status_code}"
            if answer.status_code < 500 and answer.status_code != 429:
                break  # the webhook refuses this message: asking again will not help
        except requests.RequestException as exc:
            problem = type(exc).__name__
        time.sleep(min(attempt, max(0.0, deadline - time.monotonic() - 0.5)))
    log.warning(redact(f"could not deliver the alert for {message['dataset']} to the webhook: {problem}"))
    return False


class Alerts:
    """A job's failure (again only if its error changes) and, if asked, its recovery: no alert storm.

    A long-running scheduler remembers which datasets are failing; `--once`
    (cron) starts afresh each time, so there every failure is sent.
    """

    def __init__(self, webhook, on_recovery=True, deadline_s=ALERT_DEADLINE_S):
        self.webhook = webhook
        self.on_recovery = on_recovery
        self.deadline_s = deadline_s
        self._failing = {}  # dataset name -> the error last sent

    def job_done(self, dataset, outcomes) -> None:
        """Called after each job; never raises."""
        if not self.webhook or not outcomes:
            return
        try:
            failed = [o for o in outcomes if not o.ok]
            if failed:
                if self._failing.get(dataset.name) != failed[0].error:
                    self._failing[dataset.name] = failed[0].error
                    send(self.webhook, failure_message(dataset, outcomes), self.deadline_s)
            elif self._failing.pop(dataset.name, None) is not None and self.on_recovery:
                send(self.webhook, recovery_message(dataset), self.deadline_s)
        except Exception as exc:  # an alert must never break the scheduler
            log.warning("alert for %s not sent: %s", dataset.name, redact(str(exc)))
