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

Each person may turn a kind off or on per channel (`NotificationPreference`);
without a row they get the default for their role (`notification_default`).
A send with a `key` is one *occurrence*: a `NotificationOccurrence` row is
inserted (ON CONFLICT DO NOTHING) in the caller's transaction, so a second
send of the same occurrence, from a duplicated task or a second beat process,
sends nothing. A kind with a `cooldown` is not sent again to an org within it.

The orgs app is the lowest layer that knows organizations and roles, so the
seam lives here and imports nothing above it; billing registers its kinds.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import connection, transaction
from django.template import Context
from django.template.loader import get_template, render_to_string
from django.utils import timezone
from django.utils.html import escape

from billing_project import request_context
from orgs.models import Membership, NotificationOccurrence, NotificationPreference, Organization

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
    label: str = ""  # on the preferences page; "" = from the name ("trial_ending" -> "Trial ending")
    group: str = "Other"  # the preferences page's heading: "Payments", "Balance", "Usage", "Team"
    # A condition that can flap (balance low, back): not sent again to the org within this.
    cooldown: timedelta | None = None
    # False: sent to whom the caller names (an invitation, a receipt); not on the preferences page.
    preferences: bool = True

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"A notification kind's name is its template folder: lowercase and _, not {self.name!r}.")
        object.__setattr__(self, "roles", frozenset(self.roles))
        object.__setattr__(self, "channels", tuple(self.channels))
        if not self.label:
            object.__setattr__(self, "label", self.name.replace("_", " ").capitalize())

    def template_name(self, part: str) -> str:
        return f"notifications/{self.name}/{part}"


@dataclass(frozen=True)
class Recipient:
    email: str
    user: User | None = None  # None: an address with no account behind it yet (an invitation)
    role: str = ""  # why they get it (the e-mail footer): their role in the org, "" when named by the caller


@dataclass(frozen=True)
class Notification:
    """One rendered message and the people it is for, as a channel receives it."""

    kind: NotificationKind
    org: Organization | None
    recipients: tuple[Recipient, ...]
    subject: str
    text: str
    html: str
    link: str = ""  # the page that fixes the problem: context["link"], a path on this site


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
    key: str | None = None,
) -> Notification | None:
    """Send a notification of `kind` after the current transaction commits.

    Recipients: the addresses in `emails` (people without an account yet), or
    `user` alone, or else the members of `org` who want it over each channel
    (their preference, else the default for their role). `org`, when given, is
    in the templates' context as `org` whoever the recipients are, beside
    `site` (the site's URL) and `context`; `context["link"]`, a path, is the
    page that fixes the problem.

    `key` names the occurrence ("trial_ending:<org>:<date>:3d"): sending the
    same (org, kind, key) again is a no-op, even from another process at the
    same moment. Returns what will be sent (its recipients over all channels),
    or None when nobody receives it or it was sent already or within the
    kind's cooldown."""
    spec = notification_kind_get(kind)
    # Look the channels up now: a missing one fails in the caller, not after commit.
    channels = {name: _channel_get(name) for name in spec.channels}
    by_channel = {name: _recipients(spec, name, org=org, user=user, emails=emails) for name in spec.channels}
    everyone = tuple(dict.fromkeys(r for recipients in by_channel.values() for r in recipients))
    if not everyone:
        return None
    if (key is not None or spec.cooldown is not None) and not _occurrence_claim(spec, org=org, key=key):
        return None
    notification = _render(spec, org=org, user=user, recipients=everyone, context=context)
    for name, channel in channels.items():
        if by_channel[name]:
            transaction.on_commit(partial(channel, replace(notification, recipients=by_channel[name])))
    return notification


def _occurrence_claim(spec: NotificationKind, *, org: Organization | None, key: str | None) -> bool:
    """Record this occurrence in the caller's transaction; False if it was told
    already (same key) or the kind's cooldown has not run out for this org."""
    now = timezone.now()
    with connection.cursor() as cursor:
        if spec.cooldown is not None:
            # Two senders of a flapping kind queue here, so the second sees the first's row.
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"notification:{org and org.pk}:{spec.name}"])
            recent = NotificationOccurrence.objects.filter(
                org=org, kind=spec.name, created_at__gt=now - spec.cooldown
            ).exists()
            if recent:
                return False
        # A concurrent insert of the same key waits for the other transaction and then does nothing.
        cursor.execute(
            f"INSERT INTO {NotificationOccurrence._meta.db_table} (org_id, kind, key, created_at)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING id",
            [org.pk if org else None, spec.name, key if key is not None else f"cooldown:{uuid.uuid4()}", now],
        )
        return cursor.fetchone() is not None


def notification_default(kind: NotificationKind, membership: Membership) -> bool:
    """Whether a member who never chose gets `kind` (on any channel): their role, narrowed by the kind's `wants`."""
    if membership.role not in kind.roles:
        return False
    return kind.wants is None or bool(kind.wants(membership.org, [membership]))


def notification_preferences(*, user: User, org: Organization) -> dict[tuple[str, str], bool]:
    """What `user` chose in `org`: (kind, channel) -> enabled. Absent: the default for their role."""
    rows = NotificationPreference.objects.filter(user=user, org=org).values_list("kind", "channel", "enabled")
    return {(kind, channel): enabled for kind, channel, enabled in rows}


def notification_preference_set(
    *, user: User, org: Organization, kind: str, channel: str, enabled: bool | None
) -> None:
    """Record a person's choice; None forgets it (back to the default for their role, which
    then follows a change of role). An unknown kind or channel is the caller's error."""
    spec = notification_kind_get(kind)
    if channel not in spec.channels:
        raise NotificationNotRegistered(f"Kind {kind!r} is not sent over {channel!r}.")
    if enabled is None:
        NotificationPreference.objects.filter(user=user, org=org, kind=kind, channel=channel).delete()
        return
    NotificationPreference.objects.update_or_create(
        user=user, org=org, kind=kind, channel=channel, defaults={"enabled": enabled}
    )


def _recipients(
    spec: NotificationKind,
    channel: str,
    *,
    org: Organization | None,
    user: User | None,
    emails: Sequence[str] | None,
) -> tuple[Recipient, ...]:
    if emails is not None and user is not None:
        raise TypeError("notification_send takes e-mail addresses or a user, not both.")
    if emails is not None:
        # People without an account have no inbox.
        return tuple(Recipient(email=email) for email in emails if email) if channel == "email" else ()
    if user is not None:
        # One person named by the caller: still theirs to turn off, per channel.
        if org is not None and spec.preferences and NotificationPreference.objects.filter(
            org=org, user=user, kind=spec.name, channel=channel, enabled=False
        ).exists():
            return ()
        return (Recipient(email=user.email, user=user),) if user.email or channel != "email" else ()
    if org is None:
        raise TypeError("notification_send needs an org, a user or e-mail addresses to send to.")
    members = list(Membership.objects.filter(org=org).select_related("user", "org").order_by("created_at", "pk"))
    chosen = dict(
        NotificationPreference.objects.filter(org=org, kind=spec.name, channel=channel).values_list(
            "user_id", "enabled"
        )
    )
    # The defaults: the kind's roles, narrowed by its own filter (called once per send).
    by_role = [m for m in members if m.role in spec.roles]
    defaults = {m.pk for m in (spec.wants(org, by_role) if spec.wants is not None else by_role)}
    wanted = [m for m in members if chosen.get(m.user_id, m.pk in defaults)]
    return tuple(
        Recipient(email=m.user.email, user=m.user, role=m.get_role_display())
        for m in wanted
        if m.user.email or channel != "email"
    )


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
        link=str(context.get("link", "")),
    )


def _render_text(template_name: str, values: Mapping[str, Any]) -> str:
    # Plain text is not HTML: "Smith & Sons" stays as written, not "Smith &amp; Sons".
    return get_template(template_name).template.render(Context(values, autoescape=False))


# --- the e-mail channel -------------------------------------------------------


def email_deliver(notification: Notification) -> None:
    """One message per person (nobody sees who else was told), all sent over one connection."""
    messages = []
    for recipient in notification.recipients:
        text, html = notification.text, notification.html
        footer = _footer(notification, recipient)
        if footer:
            text = f"{text.rstrip()}\n\n--\n{footer}\n"
            html = html.replace(FOOTER_MARK, f'<p style="margin:16px 0 0;color:#71717a;font-size:13px;">{escape(footer)}</p>')
        message = EmailMultiAlternatives(notification.subject, text, settings.DEFAULT_FROM_EMAIL, [recipient.email])
        message.attach_alternative(html, "text/html")
        messages.append(message)
    get_connection(fail_silently=notification.kind.fail_silently).send_messages(messages)


# Where notifications/base.html puts each person's own footer.
FOOTER_MARK = "<!-- notification-footer -->"


def _footer(notification: Notification, recipient: Recipient) -> str:
    """Why this person got the mail, and where to change that. Only members chosen by role and
    preference have both; an invitation or a mail to one named person has nothing to change."""
    if notification.org is None or not recipient.role:
        return ""
    return (
        f"You get this as {recipient.role.lower()} of {notification.org.name}. "
        f"Choose what Tollgate tells you: {request_context.site_url()}/notifications/preferences/"
    )


notification_channel_register("email", email_deliver)


def org_kinds_register() -> None:
    """The orgs app's own kind; OrgsConfig.ready() calls this."""
    # An invitation goes to an address, not to members. Inviting is a person's
    # request, so a refused mail surfaces as an error instead of vanishing.
    notification_kind_register(NotificationKind(name="invitation", fail_silently=False, preferences=False))

