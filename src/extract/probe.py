"""The change probe of an extract: no download when the source says nothing changed since the last one.

Before a download the source is asked its cheap question (`Source.probe`, one request per indicator).
The answer is compared with the facts the last complete download kept (`src.contracts.downloads`):
when they are equal, the extract lands nothing. A download happens anyway when the dataset says
`probe: false`, on `--full-refresh` (`settings.full_refresh`), once the last download is
`GHO_FULL_REFRESH_DAYS` old, when the dataset's request changed, when an incomplete batch waits to be
resumed, and whenever the probe's answer cannot be believed; in all but the last the probe is not even
asked. What a probe is compared with comes from the rows a download landed (`Source.facts_of`), never
from the server's word about them, so a server that answers the probe wrongly never gets a download
skipped. The periodic full download covers what a probe cannot see (a value revised with neither a new
Date nor a change of count).
"""

import logging
from datetime import datetime, timedelta, timezone

from src.contracts import downloads, landing

log = logging.getLogger("gho_etl.extract")


class ChangeProbe:
    def __init__(self, settings, store, source, dataset, request):
        self.settings, self.store, self.source = settings, store, source
        self.dataset, self.request = dataset, request
        self.facts = None  # the probe's answer, when it was asked

    @property
    def scan(self):
        """What the page writer runs on each page (None for a dataset that is never probed)."""
        return self.source.page_fact if self.dataset.probe else None

    def unchanged(self) -> bool:
        """True when the probe finds what the last complete download found; the probe is asked only when a
        skip is possible (else the extract downloads without asking)."""
        name = self.dataset.name
        reason = self._why_not_asked()
        if reason is None:
            self.facts = self.source.probe(self.request)
            reason = self._why_a_download(downloads.read(self.store, name).facts)
        if reason:
            log.info("%s: downloading (%s)", name, reason, extra={"dataset": name})
            return False
        log.info(
            "%s: the change probe finds what the last complete download found (%s); nothing downloaded",
            name,
            _described(self.facts),
            extra={"dataset": name},
        )
        return True

    def _why_not_asked(self):
        name = self.dataset.name
        if not self.dataset.probe:
            return "probe: false"
        if self.settings.full_refresh:
            return "--full-refresh"
        if any(not landing.is_complete(self.store, name, b) for b in landing.batch_ids(self.store, name)):
            return "an incomplete batch is resumed"
        last = downloads.read(self.store, name)
        if last is None or last.request != downloads.probe_request(self.request):
            return "no complete download of this request yet"
        if last.facts is None:
            return "the last download left nothing a probe can be compared with"
        if datetime.now(timezone.utc) - last.finished_at >= timedelta(days=self.settings.full_refresh_days):
            return f"the last full download is older than GHO_FULL_REFRESH_DAYS={self.settings.full_refresh_days:g}"
        return None

    def _why_a_download(self, kept):
        if self.facts is None:
            return "the change probe cannot tell"
        if self.facts != kept:
            return f"the change probe finds {_described(self.facts)}; the last download held {_described(kept)}"
        return None

    def record(self, manifest, page_facts) -> None:
        """Keep what the next probe is compared with, once `manifest`'s batch is complete."""
        facts = None
        if self.dataset.probe:
            default = self.request.get("indicator")
            pages = [
                (p.indicator or default, p.rows, p.first_id, self._fact(manifest, p, page_facts))
                for p in manifest.pages
            ]
            facts = self.source.facts_of(pages)
        downloads.write(self.store, self.dataset.name, self.request, manifest.batch_id, facts)

    def _fact(self, manifest, page, page_facts):
        """What the writer found in the page, or (a page landed before a resume) what it says when read again."""
        if page.file in page_facts or not page.rows:
            return page_facts.get(page.file)
        stored = self.store.read_bytes(landing.batch_file(self.dataset.name, manifest.batch_id, page.file))
        return self.source.page_fact(landing.unpack_page(stored))

    def source_count(self):
        return sum(fact.get("count") or 0 for fact in self.facts.values()) if self.facts else None


def _described(facts) -> str:
    if not facts:
        return "nothing"
    return "; ".join(
        f"{code}: {fact.get('count')} rows, latest Date {fact.get('date')} (Id {fact.get('id')})"
        for code, fact in sorted(facts.items())
    )
