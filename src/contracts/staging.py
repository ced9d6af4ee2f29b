"""The staging contract: what a transform leaves for the load.

A staging batch is one Parquet file, `staging/<dataset>/<batch_id>.parquet`,
holding the columns of `src.contracts.schema` (the core columns, then any extra
text columns), each natural key at most once. Its schema metadata carries a
content hash of the landing pages it was typed from (and of the typing rules),
so the load can tell a batch identical to the last one it applied without
reading a row. A staging file is complete when it exists: it appears by rename.
"""

from src.contracts import landing, layout

CONTENT_HASH_KEY = b"gho_etl.content_sha256"


def batch_ids(store, dataset: str) -> list:
    """Ids of the staging batches of a dataset, oldest first."""
    suffix = layout.STAGING_SUFFIX
    names = [name[: -len(suffix)] for name in store.files(layout.staging_dir(dataset)) if name.endswith(suffix)]
    return sorted(names, key=landing.batch_order)


def with_content_hash(arrow_schema, digest: str):
    return arrow_schema.with_metadata({CONTENT_HASH_KEY: digest.encode()})


def content_hash_of(arrow_schema):
    """The content hash a staging file was written with, or None (files of older versions carry none)."""
    metadata = arrow_schema.metadata or {}
    return metadata.get(CONTENT_HASH_KEY, b"").decode() or None
