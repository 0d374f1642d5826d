"""CAP folder feed: every ``*.xml`` file of a folder (optionally its subfolders).

For air-gapped stations, demos and tests. A file may hold one CAP alert, an ATOM feed with
embedded alerts, or a wrapper of several alerts. Files are read again only when their
(mtime, size) changes, and parsed again only when their content hash changes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import redis

from eas_schemas.events import FeedKind
from pollers.cap_xml import DEFAULT_MAX_DOCUMENT_BYTES, CapRejected, parse_cap_batch, sha256_hex
from pollers.feeds.base import Feed, FeedConfigError, FeedContext, FeedSpec, PollResult, spec_key
from pollers.file_fingerprints import FileFingerprints, Fingerprint
from pollers.http_fetch import Sleeper

log = logging.getLogger(__name__)


class CapFolderFeed(Feed):
    kind = FeedKind.CAP_FOLDER

    @classmethod
    def specs(cls, ctx: FeedContext) -> list[FeedSpec]:
        s = ctx.settings
        if not s.cap_folder:
            raise FeedConfigError("the CAP folder feed needs POLLERS_CAP_FOLDER")
        specs: list[FeedSpec] = []
        for folder in s.cap_folder:
            kwargs: dict[str, Any] = {
                "recursive": s.cap_folder_recursive,
                "interval_s": s.cap_folder_interval_s,
                "max_document_bytes": s.max_document_bytes,
            }
            fingerprints = FileFingerprints(ctx.client, folder, s.bus_namespace, s.seen_ttl_s)

            # Reads local files: there are no retry waits to end, so ``sleep`` is unused.
            def make(
                _sleep: Sleeper,
                folder: Path = folder,
                kwargs: dict[str, Any] = kwargs,
                fingerprints: FileFingerprints = fingerprints,
            ) -> Feed:
                return cls(folder, fingerprints, **kwargs)

            name = f"cap-folder:{folder}"
            key = spec_key(cls.kind, name, seen_ttl_s=s.seen_ttl_s, **kwargs)
            specs.append(FeedSpec(cls.kind, name, key, make))
        return specs

    def __init__(
        self,
        folder: Path,
        fingerprints: FileFingerprints,
        *,
        recursive: bool = False,
        interval_s: float = 10.0,
        max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES,
    ) -> None:
        self.folder = folder
        self.name = f"cap-folder:{folder}"
        self.fingerprints = fingerprints
        self.recursive = recursive
        self.interval_s = interval_s
        self.max_document_bytes = max_document_bytes
        self._known: dict[str, Fingerprint] = {}

    def _files(self) -> list[Path]:
        pattern = "**/*.xml" if self.recursive else "*.xml"
        return sorted(p for p in self.folder.glob(pattern) if p.is_file())

    def poll(self) -> PollResult:
        result = PollResult()
        if not self.folder.is_dir():
            result.errors.append(f"CAP folder {self.folder} does not exist or is not a folder")
            return result
        try:
            self._known = self.fingerprints.load()
        except redis.RedisError as exc:
            # Without the stored fingerprints every file looks new; publishing will fail too,
            # so nothing is lost by carrying on with what this process remembers.
            log.warning("file fingerprints unavailable (%s); using the in-memory copy", exc)
        changed: dict[str, Fingerprint] = {}
        present: set[str] = set()
        for path in self._files():
            key = str(path)
            present.add(key)
            try:
                self._read_one(path, key, result, changed)
            except OSError as exc:
                result.errors.append(f"{self._label(path)}: cannot read: {exc.strerror or exc}")
        removed = set(self._known) - present
        result.not_modified = result.documents == 0 and not changed and not result.errors

        def commit() -> None:
            self.fingerprints.save(changed, removed)
            self._known.update(changed)
            for key in removed:
                self._known.pop(key, None)

        result.commit = commit
        return result

    def _label(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.folder))
        except ValueError:
            return str(path)

    def _read_one(
        self, path: Path, key: str, result: PollResult, changed: dict[str, Fingerprint]
    ) -> None:
        st = path.stat()
        previous = self._known.get(key)
        if previous is not None and previous.same_stat(st):
            return
        label = self._label(path)
        if st.st_size > self.max_document_bytes:
            # Checked on the size alone: an oversized file is never read into memory.
            result.rejections.append(f"{label}: document over {self.max_document_bytes} bytes")
            changed[key] = Fingerprint(st.st_mtime_ns, st.st_size, "")
            return
        data = path.read_bytes()
        fingerprint = Fingerprint(st.st_mtime_ns, st.st_size, sha256_hex(data))
        changed[key] = fingerprint
        if previous is not None and previous.sha256 == fingerprint.sha256:
            return  # touched, not changed
        result.documents += 1
        try:
            batch = parse_cap_batch(data, max_bytes=self.max_document_bytes)
        except CapRejected as exc:
            result.rejections.append(f"{label}: {exc.reason}")
            return
        result.alerts.extend(batch.alerts)
        result.rejections.extend(f"{label}: {reason}" for reason in batch.rejections)
        for link in batch.links:
            result.rejections.append(
                f"{label}: ATOM entry {link.entry_id} links to {link.url}; a folder feed does "
                "not fetch links (use POLLERS_CAP_URLS)"
            )
        if batch.kind == "wrapper" and not batch.alerts and not batch.rejections:
            result.rejections.append(f"{label}: no CAP <alert> in document (root <{batch.root}>)")
