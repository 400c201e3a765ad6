"""The two places the S3 backend uses private minio-py methods: s3_backend.incomplete_uploads
and s3_multipart (per-part CRC32 headers and checksums in CompleteMultipartUpload).

minio-py has no public ListMultipartUploads / AbortMultipartUpload, and no way to add part
checksums to an upload. These checks fail as
soon as an installed minio-py renames, re-signs or changes the result of the private methods
we call, instead of a publish or prune failing later on a build host.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable

from minio import Minio
from minio.datatypes import ListMultipartUploadsResult, Upload
from minio.error import S3Error

from imagefactory.store import s3_backend, s3_multipart


def _params(method: Callable[..., object]) -> list[str]:
    return list(inspect.signature(method).parameters)


def test_list_multipart_uploads_signature() -> None:
    params = _params(Minio._list_multipart_uploads)
    assert params[:2] == ["self", "bucket_name"]
    assert {"prefix", "key_marker"} <= set(params)
    hints = inspect.signature(Minio._list_multipart_uploads).return_annotation
    assert "ListMultipartUploadsResult" in str(hints)


def test_list_result_has_the_fields_we_read() -> None:
    fields = {f.name for f in dataclasses.fields(ListMultipartUploadsResult)}
    assert {"uploads", "is_truncated", "next_key_marker"} <= fields
    source = inspect.getsource(Upload.__init__)
    assert '"object_name"' in source and '"upload_id"' in source


def test_abort_multipart_upload_signature() -> None:
    assert _params(Minio._abort_multipart_upload) == [
        "self",
        "bucket_name",
        "object_name",
        "upload_id",
    ]


def test_no_other_private_minio_calls() -> None:
    source = inspect.getsource(s3_backend)
    calls = {part.split("(")[0] for part in source.split("client._")[1:]}
    assert calls == {"list_multipart_uploads", "abort_multipart_upload"}
    body = inspect.getsource(s3_backend.incomplete_uploads)
    assert body.count("client._") == len(source.split("client._")) - 1


def test_create_multipart_upload_signature() -> None:
    assert _params(Minio._create_multipart_upload) == [
        "self",
        "bucket_name",
        "object_name",
        "headers",
    ]


def test_upload_part_signature() -> None:
    assert _params(Minio._upload_part) == [
        "self",
        "bucket_name",
        "object_name",
        "data",
        "headers",
        "upload_id",
        "part_number",
    ]


def test_execute_signature() -> None:
    params = _params(Minio._execute)
    assert params[:4] == ["self", "method", "bucket_name", "object_name"]
    assert {"body", "headers", "query_params"} <= set(params)


def test_s3_error_is_built_from_an_error_body() -> None:
    assert callable(S3Error.fromxml)


def test_multipart_private_calls_are_these() -> None:
    source = inspect.getsource(s3_multipart)
    calls = {part.split("(")[0] for part in source.split("client._")[1:]}
    assert calls == {
        "create_multipart_upload",
        "upload_part",
        "execute",
        "abort_multipart_upload",
    }
