"""Extract: fetch each dataset's rows from its source into a complete landing batch.

`run` is the phase; `batches` picks the batch to resume or starts one;
`page_writer` stores answers in order while the next one downloads.
"""

from src.extract.phase import run

__all__ = ["run"]
