"""The last complete download of each dataset: what the extract's change probe compares with.

`downloads/<dataset>.json` is written by the extract, atomically, once a landing batch is complete (after
its manifest), and read by the extract alone. It outlives the batch, which the transform deletes. It holds
what the download asked for (`request`, the landing request without its page size: the rows asked for do
not depend on it), when it finished, and the probe's facts taken just before it (`facts`, per indicator;
null when there were none or the download did not confirm them, see `Source.confirms`). A probe is
compared only with a record of the same request, so a change of the dataset's indicators, filter or API
resets it.
"""

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from src.contracts import layout

VERSION = 1


def probe_request(request: dict) -> dict:
    """What decides which rows a download holds: the landing request without its page size."""
    return {key: value for key, value in request.items() if key != "page_size"}


@dataclass(frozen=True)
class LastDownload:
    request: dict
    batch_id: str
    finished_at: datetime
    facts: Optional[dict] = None

    def to_json(self) -> dict:
        return {
            "version": VERSION,
            "request": self.request,
            "batch_id": self.batch_id,
            "finished_at": self.finished_at.isoformat(),
            "facts": self.facts,
        }

    @classmethod
    def from_json(cls, data) -> "LastDownload":
        if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("request"), dict):
            raise ValueError("not a last-download record of this version")
        finished = datetime.fromisoformat(data["finished_at"])
        if finished.tzinfo is None:
            raise ValueError("finished_at has no time zone")
        facts = data.get("facts")
        return cls(data["request"], str(data.get("batch_id")), finished, facts if isinstance(facts, dict) else None)


def read(store, dataset: str) -> Optional[LastDownload]:
    """The record, or None when there is none or it cannot be trusted (then the next extract downloads)."""
    key = layout.last_download(dataset)
    if not store.exists(key):
        return None
    try:
        return LastDownload.from_json(store.read_json(key))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def write(store, dataset: str, request: dict, batch_id: str, facts: Optional[dict]) -> None:
    record = LastDownload(probe_request(request), batch_id, datetime.now(timezone.utc), facts)
    store.write_json(layout.last_download(dataset), record.to_json())
