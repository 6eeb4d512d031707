"""Uploaded files, read with a size limit."""

from __future__ import annotations

from fastapi import UploadFile

from .errors import ApiError


def read_upload(upload: UploadFile, max_mb: int, param: str) -> bytes:
    """The uploaded file's bytes; 413 past the size limit."""
    limit = max_mb * 1024 * 1024
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, f"The upload is larger than {max_mb} MB; send a shorter clip (10 s is plenty).", param,
                       "file_too_large")
    return data
