"""The permission table, spelled out: who may read, change, confirm and administer.

Every route names a permission; this table is what a role then grants. A slip here (a viewer
with alerts:write, anonymous read with settings) opens the station, so the whole table is
written out once and compared, rather than checked a permission at a time.
"""

from __future__ import annotations

from servicekit.auth.permissions import (
    ANONYMOUS_PERMISSIONS,
    ROLE_PERMISSIONS,
    ROLE_RANK,
    Permission,
    Role,
)

P = Permission
READS = {P.ALERTS_READ, P.MONITOR_READ, P.AUDIO_READ, P.SYSTEM_READ}


def test_role_permissions() -> None:
    assert {
        Role.VIEWER: frozenset(READS | {P.ACCOUNT_SELF}),
        Role.OPERATOR: frozenset(
            READS
            | {
                P.ACCOUNT_SELF,
                P.ALERTS_WRITE,
                P.MONITOR_WRITE,
                P.AUDIO_WRITE,
                P.RELAY_CONFIRM,
                P.SETTINGS_READ,
            }
        ),
        Role.ADMIN: frozenset(Permission),
    } == ROLE_PERMISSIONS


def test_only_admins_manage_users_settings_and_audit() -> None:
    for permission in (P.USERS_ADMIN, P.SETTINGS_WRITE, P.AUDIT_READ):
        assert [r for r in Role if permission in ROLE_PERMISSIONS[r]] == [Role.ADMIN]


def test_anonymous_read_is_the_viewer_reads_without_an_account() -> None:
    assert frozenset(READS) == ANONYMOUS_PERMISSIONS
    assert P.ACCOUNT_SELF not in ANONYMOUS_PERMISSIONS


def test_ranks_order_the_roles() -> None:
    assert ROLE_RANK == {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def test_permission_names_are_the_contract() -> None:
    # Routes, tokens and the dashboard spell these strings; renaming one is a breaking change.
    assert {p.value for p in Permission} == {
        "alerts:read",
        "alerts:write",
        "monitor:read",
        "monitor:write",
        "audio:read",
        "audio:write",
        "relay:confirm",
        "system:read",
        "settings:read",
        "settings:write",
        "users:admin",
        "audit:read",
        "account:self",
    }
    assert {r.value for r in Role} == {"viewer", "operator", "admin"}
