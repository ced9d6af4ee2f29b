"""Transform: type each complete landing batch into one staging file.

`run` is the phase (`phase`); `stage` writes a staging file; `pages` reads
and types one page, first by Arrow (`arrow_page`), else row by row by the
reference rules (`rules`); `fields` finds extra columns; `dedup` drops
repeated natural keys; `rejects` writes the rows that cannot be typed.
"""

from src.transform.phase import run
from src.transform.stage import content_hash

__all__ = ["run", "content_hash"]
