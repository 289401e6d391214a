"""The interface every remote tier (origin or shared) implements.

A tier is addressed by a URI: ``file:///abs/folder/key``, ``s3://bucket/key``, ``azure://container/blob``,
``https://host/path``. One module per kind, each with a ``RemoteTier`` subclass registered by scheme;
SDK clients are created on first use, never at import.
"""

import os
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlsplit


class TierError(Exception):
    """A remote tier failed (unreachable, 5xx, timeout, truncated). The fetch goes on to the next tier."""


class ObjectMissing(TierError):
    """The tier answered, and it does not hold that object."""


@dataclass(frozen=True)
class Location:
    scheme: str
    container: str  # bucket, Azure container, host; "" for file://
    key: str  # object key / blob name / absolute path for file://

    @classmethod
    def parse(cls, uri: str) -> "Location":
        parts = urlsplit(uri)
        if parts.scheme == "file":
            return cls(scheme="file", container="", key=parts.path)
        if parts.scheme in ("http", "https"):
            # Signed URLs carry their credentials in the query: keep it.
            key = parts.path.lstrip("/") + (f"?{parts.query}" if parts.query else "")
            return cls(scheme=parts.scheme, container=parts.netloc, key=key)
        if parts.scheme in ("s3", "azure"):
            return cls(scheme=parts.scheme, container=parts.netloc, key=parts.path.lstrip("/"))
        raise ValueError(f"unsupported storage URI {uri!r}: use file://, s3://, azure:// or https://")

    def child(self, name: str) -> "Location":
        """The object ``name`` (``a/b.zip``) under this prefix; ``ValueError`` for a name that could leave it.

        Keys are built from names people typed: "..", an absolute path or an empty segment would climb out
        of a file:// folder (or alias another key in a bucket), and control characters or backslashes
        are read differently by each store's SDK.
        """
        segments = name.split("/")
        if (
            not name
            or any(segment in ("", ".", "..") for segment in segments)
            or any(ord(char) < 32 or char in "\x7f\\" for char in name)
        ):
            raise ValueError(f"unsafe storage key {name!r}: it must stay under {self.uri}")
        joined = f"{self.key.rstrip('/')}/{name}" if self.key else name
        return Location(scheme=self.scheme, container=self.container, key=joined)

    @property
    def uri(self) -> str:
        if self.scheme == "file":
            return f"file://{self.key}"
        return f"{self.scheme}://{self.container}/{self.key}"


class RemoteTier:
    """One remote store. Implementations live one per module in this package."""

    scheme: str = ""

    def download(self, location: Location, writer: BinaryIO, *, deadline: float) -> None:
        """Stream the object into ``writer`` (it may be written out of order through seek + write).

        ``deadline`` is a ``time.monotonic()`` instant by which the transfer, retries included, must end;
        past it raise ``TierError``. Raise ``ObjectMissing`` when the object does not exist.
        """
        raise NotImplementedError

    def upload(self, location: Location, source_path: os.PathLike | str) -> None:
        raise NotImplementedError

    def size(self, location: Location) -> int:
        """The object's size in bytes; ``ObjectMissing`` if absent."""
        raise NotImplementedError

    def delete(self, location: Location) -> None:
        """Delete the object; absent objects are not an error."""
        raise NotImplementedError
