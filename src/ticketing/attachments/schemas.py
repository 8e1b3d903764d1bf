"""Response schemas of the attachment endpoints (documentation and typing)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class AttachmentPublic(BaseModel):
    """An uploaded file's metadata, as uploads answer it and tickets list it."""

    id: str = Field(description="The upload's id (UUID), to send in a create's attachments.")
    name: str = Field(description="File name, without path or control characters.")
    size: int = Field(description="Bytes.")
    contentType: str
    sha256: str = Field(description="Hex digest of the content; the download's ETag.")
    createdAt: str = Field(examples=["2025-07-10T12:34:56.737Z"])


class AttachmentUploaded(BaseModel):
    success: bool = True
    attachment: AttachmentPublic


UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "The file; its name's extension is its type.",
                    }
                },
            }
        }
    },
}
