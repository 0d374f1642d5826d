"""Air order: EAN first, then national, state, local, and tests last."""

from __future__ import annotations

import pytest

from audio_control.rules import precedence_of
from eas_schemas.relay_events import PRECEDENCE, PrecedenceClass


@pytest.mark.parametrize(
    ("event", "originator", "locations", "expected"),
    [
        ("EAN", "PEP", ["000000"], PrecedenceClass.EAN),
        ("EAN", "CIV", ["039035"], PrecedenceClass.EAN),  # the event decides, not the sender
        ("NPT", "PEP", ["000000"], PrecedenceClass.NATIONAL),
        ("NPT", "EAS", ["039035"], PrecedenceClass.NATIONAL),  # a national test, not a test
        ("NIC", "PEP", ["000000"], PrecedenceClass.NATIONAL),
        ("EAT", "PEP", ["000000"], PrecedenceClass.NATIONAL),
        ("CEM", "PEP", ["039035"], PrecedenceClass.NATIONAL),  # a PEP originator
        ("TOR", "WXR", ["039035", "000000"], PrecedenceClass.NATIONAL),  # the national code
        ("CEM", "CIV", ["039000"], PrecedenceClass.STATE),
        ("TOR", "WXR", ["039035", "039000"], PrecedenceClass.STATE),  # any statewide code
        ("TOR", "WXR", ["039035", "139035"], PrecedenceClass.LOCAL),
        ("CAE", "CIV", ["048201"], PrecedenceClass.LOCAL),
        (None, "CIV", ["048201"], PrecedenceClass.LOCAL),
        ("RWT", "EAS", ["039035"], PrecedenceClass.TEST),
        ("RMT", "CIV", ["039000"], PrecedenceClass.TEST),  # statewide, but a test
        ("RMT", "PEP", ["000000"], PrecedenceClass.TEST),
        ("DMO", "EAS", ["039035"], PrecedenceClass.TEST),
        ("NMN", "EAS", ["039035"], PrecedenceClass.TEST),
    ],
)
def test_precedence_table(
    event: str | None, originator: str, locations: list[str], expected: PrecedenceClass
) -> None:
    assert precedence_of(event, originator, locations) == (PRECEDENCE[expected], expected)


def test_classes_sort_in_air_order() -> None:
    order = sorted(PrecedenceClass, key=PRECEDENCE.__getitem__)
    assert order == [
        PrecedenceClass.EAN,
        PrecedenceClass.NATIONAL,
        PrecedenceClass.STATE,
        PrecedenceClass.LOCAL,
        PrecedenceClass.TEST,
    ]
    assert PRECEDENCE[PrecedenceClass.EAN] == 0
