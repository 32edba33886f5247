"""The permission table and the built-in roles.

Permissions are plain dotted names so they can be stored in custom roles and in API token scopes
and compared as sets. A few actions come in two reaches: ``.all`` (every object of the
organisation) and ``.own`` (objects the caller created or is a party to); asking for the bare
action (``contract.read``) is answered by either reach, depending on the resource.

Anything not in this table is unknown, and unknown permissions are always denied (fail closed), so
a typo in a route makes it unusable instead of open.
"""

from __future__ import annotations

from types import MappingProxyType

#: Every permission pactvault knows, with what it allows (shown to administrators).
PERMISSIONS: MappingProxyType[str, str] = MappingProxyType(
    {
        "contract.create": "create contract drafts",
        "contract.read.all": "read every contract of the organisation, including its content",
        "contract.read.own": "read contracts one created or is a party to",
        "contract.update.all": "edit any draft contract",
        "contract.update.own": "edit draft contracts one created",
        "contract.send.all": "send any contract for signing",
        "contract.send.own": "send contracts one created",
        "contract.void.all": "void any contract",
        "contract.void.own": "void contracts one created",
        "contract.approve": "approve or reject contracts in approval workflows",
        "template.manage": "manage contract templates",
        "audit.read": "read the organisation's audit journal",
        "alert.read": "see the organisation's security and integrity alerts",
        "alert.manage": "acknowledge and resolve alerts",
        "member.read": "list the organisation's members",
        "member.invite": "invite people into the organisation",
        "member.manage": "change members' roles, remove members, unlock accounts",
        "identity.review": "review members' and signers' real-name verifications",
        "role.manage": "create, change and delete custom roles",
        "token.manage": "list and revoke any API token of the organisation",
        "key.manage": "manage the organisation's keys and seals",
        "approval.manage": "manage approval rules",
        "org.manage": "organisation settings, ownership and deletion",
    }
)

#: Actions that are answered by a ``.all`` or ``.own`` permission depending on the resource.
SCOPED_ACTIONS: frozenset[str] = frozenset(
    name.rsplit(".", 1)[0] for name in PERMISSIONS if name.endswith((".all", ".own"))
)

_ALL = frozenset(PERMISSIONS)
_CONTRACTS_ALL = frozenset(p for p in PERMISSIONS if p.startswith("contract."))

#: Built-in roles. ``owner`` alone holds ``org.manage``, so only an owner can make an owner.
BUILTIN_ROLES: MappingProxyType[str, frozenset[str]] = MappingProxyType(
    {
        "owner": _ALL,
        "admin": _ALL - {"org.manage"},
        "contract_manager": frozenset(
            {
                "contract.create",
                "contract.read.own",
                "contract.update.own",
                "contract.send.own",
                "contract.void.own",
                "member.read",
            }
        ),
        # Approvers see what they are asked to approve: the approval workflow makes them a party.
        "approver": frozenset({"contract.read.own", "contract.approve", "member.read"}),
        # Members see and sign what they are party to.
        "member": frozenset({"contract.read.own"}),
        # Auditors read the journal, not contract content, unless a custom role grants it.
        "auditor": frozenset({"audit.read", "alert.read", "member.read"}),
    }
)

#: Scopes of organisation-wide API tokens issued before accounts existed, as permissions.
#: ``admin`` tokens come from the first-administrator setup and the operator CLI: full control.
LEGACY_SCOPES: MappingProxyType[str, frozenset[str]] = MappingProxyType(
    {
        "admin": _ALL,
        "contracts:read": frozenset({"contract.read.all"}),
        "contracts:write": _CONTRACTS_ALL - {"contract.read.all", "contract.read.own"},
    }
)


def is_known(permission: str) -> bool:
    return permission in PERMISSIONS


def legacy_permissions(scopes: frozenset[str] | set[str]) -> frozenset[str]:
    """Permissions of an organisation token with the old coarse scopes (unknown scopes: none)."""
    out: set[str] = set()
    for scope in scopes:
        out |= LEGACY_SCOPES.get(scope, frozenset())
    return frozenset(out)
