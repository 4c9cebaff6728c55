"""Files clients send as `Upload` variables (multipart requests; size-capped by the server)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class UploadedFile:
    filename: str
    content_type: str
    data: bytes


async def read_upload(upload: Any) -> UploadedFile:
    """The whole of an uploaded file (Starlette's UploadFile); the transport already refused
    one over the upload limit."""
    data = await upload.read()
    return UploadedFile(
        filename=upload.filename or "upload",
        content_type=upload.content_type or "application/octet-stream",
        data=data,
    )
