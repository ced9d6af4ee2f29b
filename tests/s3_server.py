"""A real S3 API for the hand-off tests: moto in server mode over HTTP on 127.0.0.1, not patched boto3.

Import the fixtures into a test module (`from tests.s3_server import bucket_fixture, s3_endpoint_fixture  #
noqa: F401`); tests ask for them as `s3_endpoint` and `bucket`.
The tests skip, saying why, when moto's server cannot be imported or started.
"""

import hashlib

import boto3
import pytest

CREDENTIALS = {
    "aws_access_key_id": "testing",
    "aws_secret_access_key": "not-a-real-secret-7Qx",
    "region_name": "us-east-1",
}


def aws_env(endpoint) -> dict:
    """The standard AWS variables a script needs to reach the test endpoint (boto3 reads them itself)."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": CREDENTIALS["region_name"],
    }


def client(endpoint):
    return boto3.session.Session().client("s3", endpoint_url=endpoint, **CREDENTIALS)


def keys(s3, bucket, prefix="") -> list:
    """Every object key under `prefix`, sorted (paginated)."""
    found = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found += [item["Key"] for item in page.get("Contents", [])]
    return sorted(found)


@pytest.fixture(scope="module", name="s3_endpoint")
def s3_endpoint_fixture():
    try:
        from moto.server import ThreadedMotoServer

        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
    except Exception as exc:  # an import error, a port refused: the tests cannot run here
        pytest.skip(f"moto's S3 server could not start on 127.0.0.1 ({type(exc).__name__}: {exc})")
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(name="bucket")
def bucket_fixture(s3_endpoint, request):
    """A new bucket for one test: (its name, a client on it)."""
    name = "handoff-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:12]
    s3 = client(s3_endpoint)
    s3.create_bucket(Bucket=name)
    return name, s3
