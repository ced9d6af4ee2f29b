"""Duplicate natural keys: found with one 64-bit hash per row, confirmed exactly, removed in a second pass.

Hashing is on each column's distinct values only, so it costs little per row;
the exact comparison reads back only the rows whose hash repeats.
"""

import hashlib

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from src.contracts import schema

_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)


def _value_hashes(array) -> np.ndarray:
    """One stable 64-bit hash per row of a column, computed on its distinct values only."""
    encoded = pc.dictionary_encode(array)
    if isinstance(encoded, pa.ChunkedArray):
        encoded = encoded.combine_chunks()
    distinct = [
        int.from_bytes(hashlib.blake2b(repr(v).encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
        for v in encoded.dictionary.to_pylist()
    ]
    table = np.array(distinct + [int(_NULL_HASH)], dtype=np.uint64)
    indices = pc.fill_null(encoded.indices, len(distinct)).to_numpy(zero_copy_only=False)
    return table[indices]


def key_hashes(table: pa.Table) -> np.ndarray:
    combined = np.zeros(table.num_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in schema.NATURAL_KEY:
            combined = combined * np.uint64(0x100000001B3) ^ _value_hashes(table.column(column))
    return combined


def duplicate_positions(staged_path, hashes: np.ndarray) -> np.ndarray:
    """Positions to drop so each natural key keeps its row with the latest `date` (later rows win ties)."""
    ordered = np.sort(hashes)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    del ordered
    if repeated.size == 0:
        return np.empty(0, dtype=np.int64)
    candidates = np.flatnonzero(np.isin(hashes, repeated))
    columns = list(schema.NATURAL_KEY) + ["date"]
    parts, offset = [], 0
    staged = pq.ParquetFile(staged_path)
    for group in range(staged.num_row_groups):
        chunk = staged.read_row_group(group, columns=columns)
        local = candidates[(candidates >= offset) & (candidates < offset + chunk.num_rows)] - offset
        if local.size:
            frame = chunk.take(pa.array(local)).to_pandas()
            frame.index = local + offset
            parts.append(frame)
        offset += chunk.num_rows
    frame = pd.concat(parts)
    ordered_frame = frame.sort_index().sort_values("date", kind="stable", na_position="first")
    kept = ordered_frame.drop_duplicates(list(schema.NATURAL_KEY), keep="last").index
    return np.setdiff1d(frame.index.to_numpy(), kept.to_numpy())


def rewrite_without(source, target, drop: np.ndarray, open_writer) -> int:
    """Copy the Parquet file `source` to `target` without the rows at `drop`; return the rows written."""
    staged = pq.ParquetFile(source)
    offset, written = 0, 0
    with open_writer(target) as writer:
        for group in range(staged.num_row_groups):
            chunk = staged.read_row_group(group)
            keep = ~np.isin(np.arange(offset, offset + chunk.num_rows), drop)
            kept = chunk.filter(pa.array(keep))
            writer.write_table(kept)
            offset += chunk.num_rows
            written += kept.num_rows
    return written
