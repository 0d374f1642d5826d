"""An IPAWS-OPEN answer shaped like the real ones (``cap/batch/ipaws-real-shapes.xml``):
every alert read, with the CAP details the relay then acts on kept as sent."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from eas_schemas.cap import CapMsgType, CapStatus
from pollers.cap_xml import parse_cap_batch


def test_every_alert_of_the_answer_is_read(cap_fixtures: Path) -> None:
    batch = parse_cap_batch((cap_fixtures / "batch" / "ipaws-real-shapes.xml").read_bytes())
    assert batch.kind == "wrapper" and batch.rejections == []
    cem, wsw, ffw, rwt = (p.alert for p in batch.alerts)

    # Two languages, both kept in order; the relay picks by the station's language.
    assert [i.language for i in cem.infos] == ["en-US", "es-US"]
    assert cem.primary_info("es").event == "Mensaje de Emergencia Civil"
    assert cem.primary_info("fr").event == "Civil Emergency Message"  # the first, as a fallback
    # Effective after sent and no expires: neither is invented here.
    (en, _es) = cem.infos
    assert en.effective is not None and en.effective - cem.sent == timedelta(minutes=30)
    assert cem.expires() is None
    assert en.resources[0].mime_type == "audio/x-ipaws-audio-mp3"

    info = wsw.infos[0]
    assert info.onset is not None and info.onset - wsw.sent > timedelta(hours=14)
    assert [c.value for c in info.event_codes] == ["WSW", "WSW"]

    # An Update of a message this feed never carried: the reference is kept as sent.
    assert ffw.msg_type is CapMsgType.UPDATE
    (ref,) = ffw.references
    assert ref.identifier == "urn:oid:2.49.0.1.840.0.ffw-hgx-2026-0044.001.1"

    assert rwt.status is CapStatus.TEST and rwt.infos[0].same_event_code() == "RWT"
