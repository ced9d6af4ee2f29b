"""The landing contract: what an extract leaves for the transform.

A landing batch is the folder `landing/<dataset>/<batch_id>/` of a store:
- `request.json`: what is being fetched (a resumed run must ask for the same thing),
- `page-NNNNN.json.lz4`: each answer of the source, exactly as it arrived, in an
  LZ4 frame (`pack_page`; `lz4 -dc` reads it), of every indicator of the dataset,
  one indicator after another (see `PageEntry`): a JSON
  object whose `value` is a list of row objects with GHO's fields
  (`schema.GHO_FIELDS`; other fields become text columns). This shape is what
  the transform reads, so a source of another shape writes its rows in it,
- `progress.json`: the extract's own resumable state (the source's paging state),
- `manifest.json`: written last, once the batch is proven complete; its presence
  marks the batch complete, and it is the only file the transform trusts to say
  which pages hold how many rows. Its `source_count` is the sum of every
  indicator's own count.

Pages are compressed because writing a page costs far more than compressing it: on a VM whose host
takes back the memory the guest frees, the kernel's first write into each page-cache page cost 2 s of
system CPU per 600 MB (1,000,000 rows), against 0.4 s to compress them and 0.2 s to decompress. A
page's `sha256` is of the answer itself, so batches compare by content whatever their pages are stored
as, and `unpack_page` also reads the plain pages of batches landed by earlier versions.

Batch ids are `<sequence>-<UTC time>` and sort by sequence (`batch_order`), so batches are applied
in the order they were fetched, whatever the clock said.
"""

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Optional

from src.contracts import layout

MANIFEST = "manifest.json"
PROGRESS = "progress.json"
REQUEST = "request.json"
MANIFEST_VERSION = 2


def new_batch_id(sequence: int) -> str:
    """`<sequence>-<UTC time>`: the sequence orders batches (a clock set back cannot), the time keeps ids unique."""
    return f"{sequence:010d}-" + datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def batch_order(batch_id: str):
    """Sort key, oldest first: ids of earlier versions (the time alone) come before every sequenced one."""
    sequence, dash, _ = batch_id.partition("-")
    if dash and sequence.isdigit():
        return (1, int(sequence), batch_id)
    return (0, 0, batch_id)


def batch_sequence(batch_id: str) -> int:
    return batch_order(batch_id)[1]


PAGE_SUFFIX = ".json.lz4"
_LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"  # a JSON text never starts with byte 0x04


def page_file(index: int) -> str:
    return f"page-{index:05d}{PAGE_SUFFIX}"


def pack_page(answer: bytes) -> bytes:
    """An answer as a page file holds it: one LZ4 frame (fast to write, about 1.5 GB/s)."""
    import pyarrow as pa  # here: what reads only manifests (status, the scheduler) never pays its import

    return pa.Codec("lz4").compress(answer, asbytes=True)


def unpack_page(stored: bytes) -> bytes:
    """The answer a page file holds (an LZ4 frame, or the plain JSON of an earlier version);
    OSError when the frame is damaged or cut short."""
    if not stored.startswith(_LZ4_FRAME_MAGIC):
        return stored
    import pyarrow as pa

    return pa.input_stream(pa.py_buffer(stored), compression="lz4").read()


@dataclass(frozen=True)
class PageEntry:
    """One landed answer: its file, its rows, its sha256, (for rows paged by Id) its first and last Id, and
    (in a batch of several indicators) the indicator it is of.

    Ids ascend within one indicator's pages only: a batch of several indicators holds each one's pages
    in turn, and the next indicator's Ids start again wherever its own start. A batch of one indicator
    names none, as batches did before there were several.
    """

    file: str
    rows: int
    sha256: Optional[str] = None
    first_id: Optional[int] = None
    last_id: Optional[int] = None
    indicator: Optional[str] = None

    def to_json(self) -> dict:
        entry = {"file": self.file, "rows": self.rows, "sha256": self.sha256}
        if self.first_id is not None or self.last_id is not None:
            entry.update(first_id=self.first_id, last_id=self.last_id)
        if self.indicator is not None:
            entry["indicator"] = self.indicator
        return entry

    @classmethod
    def from_json(cls, entry: dict) -> "PageEntry":
        if not isinstance(entry.get("file"), str) or "/" in entry["file"] or entry["file"].startswith("."):
            raise ValueError(f"a page entry names no plain file: {entry.get('file')!r}")
        rows = entry.get("rows")
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise ValueError(f"page {entry['file']}: rows {rows!r} is not a row count")
        return cls(
            file=entry["file"],
            rows=rows,
            sha256=entry.get("sha256"),
            first_id=entry.get("first_id"),
            last_id=entry.get("last_id"),
            indicator=entry.get("indicator"),
        )


@dataclass(frozen=True)
class Manifest:
    """A complete landing batch, as the extract proved it (`complete_by`: "count" or "two empty answers")."""

    batch_id: str
    dataset: str
    request: dict
    pages: tuple
    rows: int
    source_count: Optional[int] = None
    complete_by: Optional[str] = None
    requests: Optional[int] = None
    restarts: int = 0
    version: int = MANIFEST_VERSION

    def to_json(self) -> dict:
        return {
            "version": self.version,
            "batch_id": self.batch_id,
            "dataset": self.dataset,
            "request": self.request,
            "pages": [page.to_json() for page in self.pages],
            "rows": self.rows,
            "source_count": self.source_count,
            "complete_by": self.complete_by,
            "requests": self.requests,
            "restarts": self.restarts,
        }

    @classmethod
    def from_json(cls, data) -> "Manifest":
        """A manifest read back; ValueError when it is not one this version can trust."""
        if not isinstance(data, dict) or not isinstance(data.get("pages"), list):
            raise ValueError("not a landing manifest (no list of pages)")
        version = data.get("version", 1)
        if not isinstance(version, int) or not 1 <= version <= MANIFEST_VERSION:
            raise ValueError(f"manifest version {version!r} is not one this gho-etl reads (1 to {MANIFEST_VERSION})")
        pages = tuple(PageEntry.from_json(entry) for entry in data["pages"] if isinstance(entry, dict))
        if len(pages) != len(data["pages"]):
            raise ValueError("a page entry is not an object")
        rows = data.get("rows")
        if not isinstance(rows, int) or isinstance(rows, bool):
            raise ValueError(f"its rows {rows!r} are not a row count")
        return cls(
            batch_id=str(data.get("batch_id", "")),
            dataset=str(data.get("dataset", "")),
            request=data.get("request"),
            pages=pages,
            rows=rows,
            source_count=data.get("source_count"),
            complete_by=data.get("complete_by"),
            requests=data.get("requests"),
            restarts=data.get("restarts") or 0,
            version=version,
        )


def batch_file(dataset: str, batch_id: str, name: str) -> str:
    """The key of a file of a landing batch."""
    return f"{layout.landing_batch(dataset, batch_id)}/{name}"


def batch_ids(store, dataset: str) -> list:
    """Every landing batch of a dataset, complete or not, oldest first."""
    return sorted(store.folders(layout.landing_dir(dataset)), key=batch_order)


def is_complete(store, dataset: str, batch_id: str) -> bool:
    return store.exists(batch_file(dataset, batch_id, MANIFEST))


def complete_batches(store, dataset: str) -> list:
    """Ids of the complete landing batches of a dataset, oldest first."""
    return [b for b in batch_ids(store, dataset) if is_complete(store, dataset, b)]


def read_manifest(store, dataset: str, batch_id: str) -> Manifest:
    """The batch's manifest; OSError or ValueError when it cannot be read or trusted."""
    return Manifest.from_json(store.read_json(batch_file(dataset, batch_id, MANIFEST)))


def write_manifest(store, manifest: Manifest) -> None:
    store.write_json(batch_file(manifest.dataset, manifest.batch_id, MANIFEST), manifest.to_json())
