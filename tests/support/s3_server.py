"""A throwaway S3 server for the tests: moto's server mode on a free loopback port.

`S3Server.start()` runs it in a thread of the test process; `new_bucket_url()`
creates an empty bucket and gives its `s3://` URL (with a prefix, as a
deployment would use). The credentials are dummies (`DUMMY_AWS_ENV`): moto
accepts any, and they keep a developer's real AWS ones out of the tests.
"""

from __future__ import annotations

import itertools

from service_users import free_port

DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",  # no profile of the machine's user can leak in
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}


class S3Server:
    def __init__(self) -> None:
        self._server = None
        self._buckets = itertools.count(1)
        self.endpoint_url = ""

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self._server.start()
        self.endpoint_url = f"http://127.0.0.1:{port}"

    def client(self):
        """A boto3 S3 client of this server (to look at buckets behind the code under test)."""
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")

    def new_bucket_url(self, prefix: str = "vggt") -> str:
        """`s3://<new empty bucket>/<prefix>`."""
        bucket = f"test-bucket-{next(self._buckets)}"
        self.client().create_bucket(Bucket=bucket)
        return f"s3://{bucket}/{prefix}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
