#!/usr/bin/env python3
"""Back the project up to S3 (or any S3-compatible store) and restore it, verified.

    backup [--include-landing]   upload a timestamped .tar.gz of code and configuration
    list                         the backups under the prefix, newest first
    restore KEY --to DIR         download, verify SHA-256, unpack (refuses a non-empty DIR unless --force)
    prune --keep N               delete all but the N newest backups

Never archived: secret files (.env files but .env.example, .envrc, .pgpass,
.netrc, keys and certificates, secrets.*, credentials*: SECRET_FILES in
utils/backup_archive.py),
data/ (except landing with --include-landing), logs/, virtual environments,
caches and .git. A restore unpacks at most --max-bytes (default: 100 times the
archive's size, at least 64 MiB), so a crafted archive cannot fill the disk.
Bucket, prefix and endpoint come
from S3_BUCKET, S3_PREFIX (default "gho-etl/") and S3_ENDPOINT_URL (MinIO and
other S3-compatible stores); credentials the standard AWS way.
"""

import argparse
import os
import sys
import tarfile
import tempfile
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from src.redact import redact, remember, url_passwords  # noqa: E402
from utils.backup_archive import (  # noqa: E402
    ARCHIVE_SUFFIX,
    RESTORE_FLOOR_BYTES,
    RESTORE_RATIO,
    BackupError,
    build_archive,
    check_members,
    sha256_of,
)


# --- S3 access -------------------------------------------------------------------
def s3_settings():
    bucket = os.environ.get("S3_BUCKET", "").strip()
    if not bucket:
        raise BackupError("S3_BUCKET is not set (also: S3_PREFIX, S3_ENDPOINT_URL, AWS credentials)")
    prefix = os.environ.get("S3_PREFIX", "gho-etl/").strip()
    if prefix and not prefix.endswith("/"):
        prefix += "/"
    return bucket, prefix, os.environ.get("S3_ENDPOINT_URL", "").strip() or None


def client(endpoint):
    import boto3
    from botocore.config import Config

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    config = Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60)
    return boto3.client("s3", endpoint_url=endpoint, region_name=region, config=config)


def explain(exc, bucket, endpoint) -> BackupError:
    """Turn boto errors into the line a user needs."""
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    where = endpoint or "AWS S3"
    if isinstance(exc, NoCredentialsError):
        return BackupError("no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile)")
    if isinstance(exc, EndpointConnectionError):
        return BackupError(f"cannot reach the S3 endpoint {where}; check S3_ENDPOINT_URL and the network")
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "NoSuchBucket":
            return BackupError(f"bucket {bucket!r} does not exist at {where}")
        if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "ExpiredToken"):
            return BackupError(f"S3 refused the credentials for bucket {bucket!r} ({code})")
        return BackupError(f"S3 error {code}: {exc.response.get('Error', {}).get('Message', exc)}")
    return BackupError(f"S3 request failed: {exc}")


def require_bucket(s3, bucket, endpoint):
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket"):
            raise BackupError(f"bucket {bucket!r} does not exist at {endpoint or 'AWS S3'}") from None
        raise


# --- commands --------------------------------------------------------------------
def backups(s3, bucket, prefix):
    items = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        items += [o for o in page.get("Contents", []) if o["Key"].endswith(ARCHIVE_SUFFIX)]
    return sorted(items, key=lambda o: (o["LastModified"], o["Key"]), reverse=True)


def cmd_backup(s3, bucket, prefix, args):
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    key = f"{prefix}gho-etl-{stamp}{ARCHIVE_SUFFIX}"
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "backup.tar.gz"
        count = build_archive(args.root.resolve(), archive, args.include_landing)
        digest = sha256_of(archive)
        s3.upload_file(str(archive), bucket, key, ExtraArgs={"Metadata": {"sha256": digest}})
        size = archive.stat().st_size
    print(f"backup: uploaded s3://{bucket}/{key} ({count} files, {size} bytes, sha256 {digest[:12]}...)")


def cmd_list(s3, bucket, prefix, args):
    items = backups(s3, bucket, prefix)
    if not items:
        print(f"no backups under s3://{bucket}/{prefix}")
    for item in items:
        when = item["LastModified"].astimezone(timezone.utc).isoformat(timespec="seconds")
        print(f"{item['Key']}\t{item['Size']}\t{when}")


def cmd_restore(s3, bucket, prefix, args):
    from botocore.exceptions import ClientError

    target = Path(args.to)
    if target.exists() and any(target.iterdir()) and not args.force:
        raise BackupError(f"{target} is not empty; choose an empty directory or pass --force")
    try:
        expected = s3.head_object(Bucket=bucket, Key=args.key).get("Metadata", {}).get("sha256")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            raise BackupError(f"no backup {args.key!r} in bucket {bucket!r} (see: s3_backup.py list)") from None
        raise
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "restore.tar.gz"
        s3.download_file(bucket, args.key, str(archive))
        actual = sha256_of(archive)
        if not expected:
            raise BackupError(f"{args.key} has no sha256 in its metadata; not a backup of this tool")
        if actual != expected:
            raise BackupError(f"checksum mismatch for {args.key}: expected {expected}, got {actual}; nothing restored")
        max_bytes = args.max_bytes or max(RESTORE_FLOOR_BYTES, RESTORE_RATIO * archive.stat().st_size)
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "r:gz") as handle:
            check_members(handle, target, max_bytes)
            handle.extractall(target, filter="data")
            count = len(handle.getmembers())
    print(f"restore: {count} files from s3://{bucket}/{args.key} into {target} (sha256 verified)")


def cmd_prune(s3, bucket, prefix, args):
    items = backups(s3, bucket, prefix)
    doomed = items[args.keep :]
    for item in doomed:
        s3.delete_object(Bucket=bucket, Key=item["Key"])
    print(f"prune: kept {min(len(items), args.keep)}, deleted {len(doomed)} backup(s) under s3://{bucket}/{prefix}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="s3_backup.py",
        description=__doc__.split("\n\n")[0],
        epilog="exit codes: 0 success, 1 the operation failed (one error line), 2 bad usage. "
        "Environment: S3_BUCKET (required), S3_PREFIX (default gho-etl/), S3_ENDPOINT_URL, AWS credentials.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    backup = commands.add_parser("backup", help="upload a timestamped archive of code and configuration")
    backup.add_argument("--include-landing", action="store_true", help="also archive data/landing (raw zone)")
    backup.add_argument("--root", type=Path, default=ROOT, help="project directory to archive (default: this one)")
    commands.add_parser("list", help="list backups, newest first, with size and time")
    restore = commands.add_parser("restore", help="download, verify and unpack a backup")
    restore.add_argument("key", help="object key as shown by list")
    restore.add_argument("--to", required=True, help="directory to unpack into (must be empty unless --force)")
    restore.add_argument("--force", action="store_true", help="unpack into a non-empty directory")
    restore.add_argument(
        "--max-bytes",
        type=int,
        default=None,
        help="unpack at most this many bytes (default: 100 times the archive's size, at least 64 MiB)",
    )
    prune = commands.add_parser("prune", help="delete all but the newest N backups")
    prune.add_argument("--keep", type=int, required=True, help="how many of the newest backups to keep")
    args = parser.parse_args(argv)
    if args.command == "prune" and args.keep < 0:
        parser.error("--keep must be 0 or more")
    handlers = {"backup": cmd_backup, "list": cmd_list, "restore": cmd_restore, "prune": cmd_prune}
    remember(*url_passwords(os.environ.get("S3_ENDPOINT_URL")), os.environ.get("AWS_SECRET_ACCESS_KEY"))
    try:
        bucket, prefix, endpoint = s3_settings()
        try:
            s3 = client(endpoint)
            require_bucket(s3, bucket, endpoint)
            handlers[args.command](s3, bucket, prefix, args)
        except BackupError:
            raise
        except Exception as exc:
            raise explain(exc, bucket, endpoint) from None
    except BackupError as exc:
        print(redact(f"error: {exc}"), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
