"""Rejected rows, one JSON line each, streamed to `rejects/<dataset>/<batch_id>.jsonl`."""

import json

from src.transform.rules import is_unicode

# Characters some line readers split on; escaped so one reject is one line for every reader.
_LINE_BREAKS_ESCAPED = {ord(c): f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029\x0b\x0c\x1c\x1d\x1e"}


def reject_line(record, reason, batch_id) -> str:
    line = {"batch_id": batch_id, "reason": reason, "record": record}
    text = json.dumps(line, ensure_ascii=False, default=str)
    if not is_unicode(text):
        text = json.dumps(line, default=str)  # \u escapes keep a lone surrogate writable
    return text.translate(_LINE_BREAKS_ESCAPED) + "\n"


class RejectsFile:
    """Rejects streamed to a new file of the store, put in place by `commit` (kept even when the batch fails)."""

    def __init__(self, store, key, batch_id):
        self.store, self.key, self.batch_id = store, key, batch_id
        self.count, self.first = 0, None
        self._context = self._handle = None

    @property
    def where(self) -> str:
        return self.store.describe(self.key)

    def add(self, rejected):
        if not rejected:
            return
        if self._handle is None:
            context = self.store.new_file(self.key)
            path = context.__enter__()
            try:
                self._handle = open(path, "w", encoding="utf-8")
            except BaseException as exc:
                context.__exit__(type(exc), exc, exc.__traceback__)
                raise
            self._context = context
        for record, reason in rejected:
            self._handle.write(reject_line(record, reason, self.batch_id))
        self.count += len(rejected)
        self.first = self.first or rejected[0][1]

    def commit(self):
        self._end(None)

    def discard(self, exc):
        self._end(exc)

    def _end(self, exc):
        if self._context is None:
            return
        self._handle.close()
        context, self._context, self._handle = self._context, None, None
        if exc is None:
            context.__exit__(None, None, None)
        else:
            context.__exit__(type(exc), exc, exc.__traceback__)
