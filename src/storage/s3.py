"""The store on S3-compatible object storage (`GHO_HANDOFF_URL=s3://bucket/prefix`): AWS, MinIO, any endpoint.

Workers on different machines hand batches off through one bucket, with the
guarantees of the local folder (`src.storage`), on a medium that has no rename:
- a PUT is atomic, so `write_bytes` and `new_file` (the scratch file uploaded
  once its block succeeds; a multipart upload appears only when completed)
  appear whole or not at all;
- `delete_tree(prefix)` first puts a tombstone `.deleting-<name>` beside the
  tree, naming its objects, which every listing of the parent honours (the
  tree's name is not listed while its tombstone is there, at no extra request:
  the tombstone is in the same listing), then deletes those objects, then the
  tombstone. A batch killed half-deleted is therefore never listed, so never
  taken for complete nor resumed, and `sweep` (of the tree or of its parent) finishes the delete;
- every listing is paginated and bounded (MAX_LISTED_KEYS), every request
  bounded by botocore's timeouts and retries.
Endpoint, region and credentials come the standard AWS way (AWS_ENDPOINT_URL,
AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, profiles), read by boto3 itself.
"""

import json
import logging
from contextlib import contextmanager
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from src.errors import ConfigError, StorageError, StorageUnavailable
from src.faultpoints import crash_point
from src.storage import Store
from src.storage.scratch import scratch_file, sweep_dead

TOMBSTONE_PREFIX = ".deleting-"
MAX_LISTED_KEYS = 1_000_000  # far beyond any hand-off area; a listing past it is refused, not truncated
DELETE_CHUNK = 1000  # DeleteObjects takes at most 1000 keys
CLIENT_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60, max_pool_connections=16
)
# botocore tells at INFO where it found the credentials and the endpoint: noise on every command's console.
for _name in ("botocore", "boto3", "s3transfer"):
    logging.getLogger(_name).setLevel(logging.WARNING)
_MISSING = ("404", "NoSuchKey", "NotFound")
# Answers a later try may not get: the store is busy or failing (5xx are transient whatever their code).
_BUSY = ("SlowDown", "RequestTimeout", "Throttling", "ThrottlingException", "RequestTimeTooSkewed", "InternalError")
_REFUSED = ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken")


def parse_url(url: str) -> tuple:
    """(bucket, prefix without slashes at either end) of s3://bucket/prefix (settings checked its shape)."""
    bucket, _, prefix = url[len("s3://") :].partition("/")
    return bucket, prefix.strip("/")


class S3Store(Store):
    """Hand-off files as objects under s3://bucket/prefix; scratch files for libraries in `scratch_dir`."""

    def __init__(self, url: str, scratch_dir: Path, client=None):
        self.bucket, self.prefix = parse_url(url)
        self.scratch_dir = Path(scratch_dir)
        # A session per store: boto3's default session is not safe to share between threads.
        self.client = client or boto3.session.Session().client("s3", config=CLIENT_CONFIG)
        sweep_dead(self.scratch_dir)  # a phase killed on this machine left its scratch file; no one else will remove it

    # --- keys and errors -------------------------------------------------------
    def _key(self, key: str) -> str:
        key = key.strip("/")
        return "/".join(part for part in (self.prefix, key) if part)

    def _dir(self, prefix: str) -> str:
        """The object prefix of a folder, ending in "/"."""
        inner = self._key(prefix)
        return f"{inner}/" if inner else ""

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"

    def _error(self, exc, key=""):
        """The error of ours for a boto error: refused -> StorageError, unreachable or failing -> transient."""
        where = self.describe(key) if key else f"s3://{self.bucket}"
        if isinstance(exc, NoCredentialsError):
            return StorageError("no AWS credentials found (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)")
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket":
                return self._no_bucket()
            if code in _REFUSED:
                return StorageError(f"S3 refused access to {where} ({code}): check the credentials and policy")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            if code in _BUSY or status >= 500:
                return StorageUnavailable(f"S3 error {code} on {where}")
            return StorageError(f"S3 refused the request on {where} ({code}): retrying would not change it")
        if isinstance(exc, (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError, ReadTimeoutError)):
            return StorageUnavailable(f"cannot reach the S3 endpoint for {where}; check AWS_ENDPOINT_URL")
        return StorageError(f"S3 request on {where} failed: {type(exc).__name__}")

    def _no_bucket(self):
        return ConfigError(f"GHO_HANDOFF_URL: bucket {self.bucket!r} does not exist at the S3 endpoint")

    @staticmethod
    def _is_missing(exc) -> bool:
        return isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code", "")) in _MISSING

    def check(self) -> None:
        """At start: the bucket exists and these credentials may use it; one line of ours otherwise."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError) as exc:
            missing = self._is_missing(exc)  # a HEAD has no body: a missing bucket is a bare 404
            raise (self._no_bucket() if missing else self._error(exc)) from None

    # --- listings --------------------------------------------------------------
    def _list(self, prefix: str, delimiter: bool):
        """(object keys relative to `prefix`, common prefixes' names) under the folder `prefix`, every page."""
        base = self._dir(prefix)
        arguments = {"Bucket": self.bucket, "Prefix": base}
        if delimiter:
            arguments["Delimiter"] = "/"
        names, folders = [], []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(**arguments):
                names += [item["Key"][len(base) :] for item in page.get("Contents", [])]
                folders += [item["Prefix"][len(base) :].rstrip("/") for item in page.get("CommonPrefixes", [])]
                if len(names) + len(folders) > MAX_LISTED_KEYS:
                    raise StorageError(f"{self.describe(prefix)} holds more than {MAX_LISTED_KEYS} objects")
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, prefix) from None
        return names, folders

    def folders(self, prefix: str) -> list:
        names, folders = self._list(prefix, delimiter=True)
        doomed = {name[len(TOMBSTONE_PREFIX) :] for name in names if name.startswith(TOMBSTONE_PREFIX)}
        return sorted(name for name in folders if name and not name.startswith(".") and name not in doomed)

    def files(self, prefix: str) -> list:
        names, _ = self._list(prefix, delimiter=True)
        return sorted(name for name in names if name and not name.startswith("."))

    # --- single objects --------------------------------------------------------
    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if self._is_missing(exc):
                return False
            raise self._error(exc, key) from None
        except BotoCoreError as exc:
            raise self._error(exc, key) from None
        return True

    def read_bytes(self, key: str) -> bytes:
        """The object's bytes; FileNotFoundError when there is none (a failing store is no "unreadable file")."""
        with self._reading(key):
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()

    @contextmanager
    def _reading(self, key: str):
        """A read of `key`: FileNotFoundError when there is no such object, else our error for the store's."""
        try:
            yield
        except ClientError as exc:
            if self._is_missing(exc):
                raise FileNotFoundError(2, "no such object", self.describe(key)) from None
            raise self._error(exc, key) from None
        except BotoCoreError as exc:
            raise self._error(exc, key) from None

    def write_bytes(self, key: str, data: bytes) -> None:
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, key) from None

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))  # a missing key is no error on S3
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, key) from None

    def _delete_keys(self, keys: list, where: str) -> None:
        try:
            for start in range(0, len(keys), DELETE_CHUNK):
                chunk = [{"Key": key} for key in keys[start : start + DELETE_CHUNK]]
                answer = self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})
                if answer.get("Errors"):
                    first = answer["Errors"][0]
                    raise StorageUnavailable(f"S3 did not delete {first.get('Key')} ({first.get('Code')})")
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, where) from None

    # --- trees -----------------------------------------------------------------
    def _tombstone(self, prefix: str) -> str:
        parent, _, name = prefix.strip("/").rpartition("/")
        return f"{parent}/{TOMBSTONE_PREFIX}{name}" if parent else f"{TOMBSTONE_PREFIX}{name}"

    def delete_tree(self, prefix: str) -> None:
        """Tombstone, then the tree's objects, then the tombstone: never listed half-deleted.

        The tombstone names the objects it dooms, so finishing it later never
        deletes an object written under the same name after it (a dataset added again).
        """
        names, _ = self._list(prefix, delimiter=False)
        if not names:
            return
        tombstone = self._tombstone(prefix)
        self.write_bytes(tombstone, json.dumps(names).encode("utf-8"))
        crash_point("storage.tree_renamed")
        self._finish(prefix, names, tombstone)

    def _finish(self, prefix: str, names: list, tombstone: str) -> None:
        base = self._dir(prefix)
        self._delete_keys([base + name for name in names], prefix)
        self.delete(tombstone)

    def sweep(self, prefix: str) -> int:
        """Finish the deletes a killed process left tombstoned under `prefix` (and of `prefix` itself), and
        forget this machine's scratch files of processes that are gone."""
        prefix = prefix.strip("/")
        names, _ = self._list(prefix, delimiter=False)
        tombstones = [f"{prefix}/{name}" for name in names if name.rpartition("/")[2].startswith(TOMBSTONE_PREFIX)]
        if self.exists(self._tombstone(prefix)):
            tombstones.append(self._tombstone(prefix))
        for tombstone in tombstones:
            folder, _, base = tombstone.rpartition("/")
            doomed = "/".join(part for part in (folder, base[len(TOMBSTONE_PREFIX) :]) if part)
            try:
                listed = json.loads(self.read_bytes(tombstone).decode("utf-8"))
            except FileNotFoundError:
                continue  # finished meanwhile by its own process
            except ValueError:
                listed = None
            if not isinstance(listed, list) or not all(isinstance(name, str) for name in listed):
                listed, _ = self._list(doomed, delimiter=False)  # not one of ours: the tree as it is
            self._finish(doomed, listed, tombstone)
        return len(tombstones) + self._abort_uploads(prefix) + sweep_dead(self.scratch_dir)

    def _abort_uploads(self, prefix: str) -> int:
        """Abort the multipart uploads a killed `new_file` left (never visible, but stored and billed); only the
        phase holding the lock uploads under its folders, so none of them is live."""
        aborted = 0
        try:
            paginator = self.client.get_paginator("list_multipart_uploads")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._dir(prefix)):
                for upload in page.get("Uploads", []):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, prefix) from None
        return aborted

    # --- local files for libraries ---------------------------------------------
    @contextmanager
    def new_file(self, key: str):
        with scratch_file(self.scratch_dir) as path:
            yield path
            try:
                self.client.upload_file(str(path), self.bucket, self._key(key))
            except (ClientError, BotoCoreError) as exc:
                raise self._error(exc, key) from None

    @contextmanager
    def local_file(self, key: str):
        with scratch_file(self.scratch_dir) as path:
            with self._reading(key):
                self.client.download_file(self.bucket, self._key(key), str(path))
            yield path
