"""Who performs a use case, and from where.

Services never read the signed-in user or the request: whoever calls them (a view, a CLI
command, the worker, a webhook) hands them an ``Actor``. The audit trail records it, and
services check its permissions. A person is an actor with a user id; the system itself
(``SYSTEM``: the worker, a command) and each integration (``integration("dosespot")``) are
actors without one.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass, replace

# Where an actor without a client address acts from.
SOURCE_CLI = "cli"
SOURCE_WORKER = "worker"
SOURCE_WEBHOOK = "webhook"


@dataclass(frozen=True)
class Actor:
    """A person (``id`` set) or a system actor (``id`` None), with where they act from.

    ``source`` is the client's address for a web request, else one of the ``SOURCE_*``
    names. ``permissions`` come from the person's ``roles``; system actors have none, and
    their use cases do not ask for any.
    """

    id: int | None
    username: str
    roles: tuple[str, ...] = ()
    permissions: frozenset[str] = frozenset()
    source: str | None = None

    @classmethod
    def for_user(cls, user, source: str | None) -> Actor:
        """The actor a staff account (a ``User`` row: id, username, roles, permissions) is
        when acting from ``source``."""
        return cls(
            id=user.id,
            username=user.username,
            roles=tuple(user.roles),
            permissions=frozenset(user.permissions),
            source=source,
        )

    @property
    def is_person(self) -> bool:
        return self.id is not None

    def has_permission(self, permission: str) -> bool:
        return permission in self.permissions

    def acting_from(self, source: str) -> Actor:
        """The same actor acting from another source."""
        return replace(self, source=source)


SYSTEM = Actor(id=None, username="system", source=SOURCE_WORKER)


def command_line() -> Actor:
    """The actor of a CLI command: the operating-system account that ran it."""
    return Actor(id=None, username=f"cli:{getpass.getuser()}", source=SOURCE_CLI)


def anonymous(source: str | None) -> Actor:
    """Someone not signed in (a failed sign-in for an unknown name), from ``source``."""
    return Actor(id=None, username="anonymous", source=source)


def integration(name: str, source: str = SOURCE_WEBHOOK) -> Actor:
    """The actor of an integration (a vendor's webhook, a lab's result feed): recorded in
    the audit trail as ``integration:<name>``."""
    return Actor(id=None, username=f"integration:{name}", source=source)


def api_client(name: str, source: str | None) -> Actor:
    """The actor of a FHIR API client (a system another party runs, registered by an
    admin), from its address: recorded in the audit trail as ``api:<name>``, so every read
    it makes names the client, and through it the person registered as responsible."""
    return Actor(id=None, username=f"api:{name}", source=source)
