"""What the notifications pages read."""

from __future__ import annotations

from dataclasses import dataclass

from orgs.models import Membership
from orgs.notifications import notification_default, notification_kinds, notification_preferences

CHANNEL_LABELS = {"email": "E-mail", "in_app": "In Tollgate"}


@dataclass(frozen=True)
class Choice:
    channel: str
    channel_label: str
    name: str  # the checkbox's name: "<kind>:<channel>"
    on: bool
    default: bool


@dataclass(frozen=True)
class KindRow:
    name: str
    label: str
    choices: tuple[Choice, ...]


@dataclass(frozen=True)
class Group:
    name: str
    kinds: tuple[KindRow, ...]


def preference_groups(membership: Membership) -> list[Group]:
    """Every registered kind a person may choose, grouped, with their choice and their role's default."""
    chosen = notification_preferences(user=membership.user, org=membership.org)
    groups: dict[str, list[KindRow]] = {}
    for kind in notification_kinds():
        if not kind.preferences:
            continue
        default = notification_default(kind, membership)
        choices = tuple(
            Choice(channel=channel, channel_label=CHANNEL_LABELS.get(channel, channel.replace("_", " ").capitalize()),
                   name=f"{kind.name}:{channel}", on=chosen.get((kind.name, channel), default), default=default)
            for channel in kind.channels
        )
        groups.setdefault(kind.group, []).append(KindRow(name=kind.name, label=kind.label, choices=choices))
    return [Group(name=name, kinds=tuple(sorted(rows, key=lambda r: r.label))) for name, rows in sorted(groups.items())]
