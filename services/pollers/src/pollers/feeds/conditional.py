"""Conditional GET validators (ETag / Last-Modified) per request, saved only on commit."""

from __future__ import annotations

import httpx


class Validators:
    def __init__(self) -> None:
        self._saved: dict[str, tuple[str | None, str | None]] = {}

    def request_headers(self, key: str) -> dict[str, str]:
        etag, last_modified = self._saved.get(key, (None, None))
        headers: dict[str, str] = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        return headers

    @staticmethod
    def from_response(headers: httpx.Headers) -> tuple[str | None, str | None]:
        return headers.get("etag"), headers.get("last-modified")

    def save(self, key: str, validators: tuple[str | None, str | None]) -> None:
        if validators == (None, None):
            self._saved.pop(key, None)
        else:
            self._saved[key] = validators

    def forget(self, key: str) -> None:
        self._saved.pop(key, None)
