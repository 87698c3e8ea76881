"""Every message to people leaves from here.

A *kind* of notification is declared once, by the app that owns it, and
registered when that app starts (`AppConfig.ready`). It says who receives it
(members of the organization with one of its roles, narrowed by their
preferences) and over which channels. Its templates are named after it:

    templates/notifications/<kind>/subject.txt   one line
    templates/notifications/<kind>/body.txt      the plain-text body
    templates/notifications/<kind>/body.html     the HTML body (extends notifications/base.html)

`notification_send` picks the recipients and renders the message at once,
inside the caller's transaction, so the message describes the state that
transaction wrote; the channels get it only after commit, so a change that
rolls back tells no one. Channels are a registry too: e-mail is registered
here, and another (in-app) is one function and one
`notification_channel_register` call.

The orgs app is the lowest layer that knows organizations and roles, so the
seam lives here and imports nothing above it; billing registers its kinds.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.template import Context
from django.template.loader import get_template, render_to_string

from billing_project import request_context
from orgs.models import Membership, Organization

if TYPE_CHECKING:
    # The user model sits in a higher layer (accounts); orgs only needs its e-mail.
    from django.contrib.auth.base_user import AbstractBaseUser as User

# Given the organization and the members the kind's roles chose (oldest first),
# the members who want this notification. Called once per send, not once per
# person, so a table of preferences is read in one query.
Wants = Callable[[Organization, list[Membership]], list[Membership]]


class NotificationNotRegistered(LookupError):
    """A kind or channel nobody registered: a programming error, never a user's."""


@dataclass(frozen=True, kw_only=True)
class NotificationKind:
    name: str
    roles: frozenset[str] = frozenset()  # members with these roles receive it when sent to an org
    wants: Wants | None = None  # narrows those members by their own preferences
    channels: tuple[str, ...] = ("email",)
    # False: a mail server that refuses the message raises in the caller's
    # on-commit hook (the person asked for this mail and should hear it failed).
    fail_silently: bool = True

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"A notification kind's name is its template folder: lowercase and _, not {self.name!r}.")
        object.__setattr__(self, "roles", frozenset(self.roles))
        object.__setattr__(self, "channels", tuple(self.channels))

    def template_name(self, part: str) -> str:
        return f"notifications/{self.name}/{part}"


@dataclass(frozen=True)
class Recipient:
    email: str
    user: User | None = None  # None: an address with no account behind it yet (an invitation)


@dataclass(frozen=True)
class Notification:
    """One rendered message and the people it is for, as a channel receives it."""

    kind: NotificationKind
    org: Organization | None
    recipients: tuple[Recipient, ...]
    subject: str
    text: str
    html: str


Channel = Callable[[Notification], None]

_kinds: dict[str, NotificationKind] = {}
_channels: dict[str, Channel] = {}


def notification_kind_register(kind: NotificationKind) -> NotificationKind:
    """Make `kind` sendable. Registering the same kind again is harmless; another
    kind under a taken name is an error (two apps would share one set of templates)."""
    existing = _kinds.get(kind.name)
    if existing is not None and existing != kind:
        raise ValueError(f"Another notification kind is already registered as {kind.name!r}.")
    _kinds[kind.name] = kind
    return kind


def notification_kind_get(name: str) -> NotificationKind:
    try:
        return _kinds[name]
    except KeyError:
        raise NotificationNotRegistered(
            f"No notification kind {name!r} is registered (known: {', '.join(sorted(_kinds)) or 'none'}); "
            "its app registers it in AppConfig.ready()."
        ) from None


def notification_kinds() -> list[NotificationKind]:
    """Every registered kind, by name."""
    return [_kinds[name] for name in sorted(_kinds)]


def notification_channel_register(name: str, channel: Channel) -> None:
    """Add a way to reach people. `channel` gets each Notification after commit."""
    _channels[name] = channel


def _channel_get(name: str) -> Channel:
    try:
        return _channels[name]
    except KeyError:
        raise NotificationNotRegistered(f"No notification channel {name!r} is registered.") from None


def notification_send(
    kind: str,
    *,
    org: Organization | None = None,
    user: User | None = None,
    emails: Sequence[str] | None = None,
    context: Mapping[str, Any],
) -> Notification | None:
    """Send a notification of `kind` after the current transaction commits.

    Recipients: the addresses in `emails` (people without an account yet), or
    `user` alone, or else the members of `org` with the kind's roles who want
    it. `org`, when given, is in the templates' context as `org` whoever the
    recipients are, beside `site` (the site's URL) and `context`.

    Returns what will be sent, or None when nobody receives it."""
    spec = notification_kind_get(kind)
    # Look the channels up now: a missing one fails in the caller, not after commit.
    channels = [_channel_get(name) for name in spec.channels]
    recipients = _recipients(spec, org=org, user=user, emails=emails)
    if not recipients:
        return None
    notification = _render(spec, org=org, user=user, recipients=recipients, context=context)
    for channel in channels:
        transaction.on_commit(partial(channel, notification))
    return notification


def _recipients(
    spec: NotificationKind, *, org: Organization | None, user: User | None, emails: Sequence[str] | None
) -> tuple[Recipient, ...]:
    if emails is not None and user is not None:
        raise TypeError("notification_send takes e-mail addresses or a user, not both.")
    if emails is not None:
        return tuple(Recipient(email=email) for email in emails if email)
    if user is not None:
        return (Recipient(email=user.email, user=user),) if user.email else ()
    if org is None:
        raise TypeError("notification_send needs an org, a user or e-mail addresses to send to.")
    members = list(
        Membership.objects.filter(org=org, role__in=spec.roles).select_related("user").order_by("created_at", "pk")
    )
    if spec.wants is not None:
        members = spec.wants(org, members)
    return tuple(Recipient(email=m.user.email, user=m.user) for m in members if m.user.email)


def _render(
    spec: NotificationKind,
    *,
    org: Organization | None,
    user: User | None,
    recipients: tuple[Recipient, ...],
    context: Mapping[str, Any],
) -> Notification:
    values = {"org": org, "user": user, "site": request_context.site_url(), **context}
    subject = "".join(_render_text(spec.template_name("subject.txt"), values).splitlines()).strip()
    return Notification(
        kind=spec,
        org=org,
        recipients=recipients,
        subject=subject,
        text=_render_text(spec.template_name("body.txt"), values),
        html=render_to_string(spec.template_name("body.html"), values),
    )


def _render_text(template_name: str, values: Mapping[str, Any]) -> str:
    # Plain text is not HTML: "Smith & Sons" stays as written, not "Smith &amp; Sons".
    return get_template(template_name).template.render(Context(values, autoescape=False))


# --- the e-mail channel -------------------------------------------------------


def email_deliver(notification: Notification) -> None:
    """One message per person (nobody sees who else was told), all sent over one connection."""
    messages = []
    for recipient in notification.recipients:
        message = EmailMultiAlternatives(
            notification.subject, notification.text, settings.DEFAULT_FROM_EMAIL, [recipient.email]
        )
        message.attach_alternative(notification.html, "text/html")
        messages.append(message)
    get_connection(fail_silently=notification.kind.fail_silently).send_messages(messages)


notification_channel_register("email", email_deliver)


def org_kinds_register() -> None:
    """The orgs app's own kind; OrgsConfig.ready() calls this."""
    # An invitation goes to an address, not to members. Inviting is a person's
    # request, so a refused mail surfaces as an error instead of vanishing.
    notification_kind_register(NotificationKind(name="invitation", fail_silently=False))

