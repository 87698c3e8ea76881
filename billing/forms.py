from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from django import forms

from accounts.ratelimit import Verdict
from billing.money import MAX_MONEY_CENTS, credits_value, format_money
from billing.services import custom_amount_price
from billing_project.errors import TollgateError
from orgs import selectors as org_selectors
from orgs.models import MemberUsage, Organization
from usage import services as usage_services
from usage.models import EntryKind, Provider
from usage.selectors import HistoryFilters
from usage.units import MICROS_PER_CREDIT, AmountError, credits_to_micros, format_credits

NOTE_MAX = 280


class HistoryFilterForm(forms.Form):
    """The history page's filters, read from the query string."""

    kind = forms.ChoiceField(label="Kind", required=False, choices=[("", "All kinds"), *EntryKind.choices])
    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    member = forms.TypedChoiceField(label="Member", required=False, coerce=int, empty_value=None)

    def __init__(self, *args, org: Organization, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        members = org_selectors.members_of(org)
        self.fields["member"].choices = [("", "Everyone"), *((m.user_id, m.user.get_full_name()) for m in members)]

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return cleaned

    def filters(self) -> HistoryFilters:
        """The filters to apply: only the valid ones, so one bad date never empties the page."""
        self.is_valid()
        data = self.cleaned_data  # Django drops the fields that failed
        return HistoryFilters(
            kind=data.get("kind") or "",
            since=data.get("since"),
            until=data.get("until"),
            member_id=data.get("member"),
        )


class SendCreditsForm(forms.Form):
    recipient = forms.CharField(
        label="Send to",
        max_length=254,
        help_text="A person’s e-mail (their personal organization receives the credits) or a team organization’s ID, such as “acme-research”.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none"}),
    )
    amount = forms.CharField(
        label="Credits",
        max_length=32,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    note = forms.CharField(
        label="Note (optional)",
        max_length=NOTE_MAX,
        required=False,
        help_text=f"The receiver sees it in their history. Up to {NOTE_MAX} characters.",
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": NOTE_MAX}),
    )
    # One per rendered form: submitting the same form twice sends once.
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(
        self,
        *args,
        sender: Organization,
        sendable_micros: int | None = None,
        lookup: Callable[[], Verdict] | None = None,
        **kwargs,
    ) -> None:
        """`lookup` counts one recipient look-up against the sender's limit."""
        super().__init__(*args, **kwargs)
        self.sender = sender
        self.sendable_micros = sendable_micros
        self.lookup = lookup
        self.rate_limited = False
        if sendable_micros is not None:
            self.fields["amount"].help_text = (
                f"Up to {format_credits(sendable_micros)}. One credit is worth {format_money(credits_value(MICROS_PER_CREDIT))}."
            )
        if not self.is_bound:
            self.initial.setdefault("idempotency_key", uuid.uuid4().hex)

    def clean_amount(self) -> int:
        text = self.cleaned_data["amount"].replace(",", "").replace("_", "").strip()
        try:
            micros = credits_to_micros(text)
        except AmountError as error:
            raise forms.ValidationError(
                "Enter an amount of credits, such as 250 or 12.5." if "number" in str(error) else str(error)
            ) from None
        if micros <= 0:
            raise forms.ValidationError("Send more than zero credits.")
        # Checked here, beside the other fields, so every error shows at once;
        # the service checks again under the account lock.
        if self.sendable_micros is not None and micros > self.sendable_micros:
            raise forms.ValidationError(sendable_error(self.sendable_micros))
        return micros

    def clean_recipient(self) -> Organization | None:
        text = self.cleaned_data["recipient"].strip()
        if self.sendable_micros == 0:
            # Nothing bought, nothing to send: no look-up, so whether an
            # address has an account costs a purchase to learn (docs/pages.md).
            return None
        if self.lookup is not None:
            verdict = self.lookup()
            if not verdict.allowed:
                self.rate_limited = True
                raise forms.ValidationError(
                    f"Too many recipients looked up in a short time. Try again in {verdict.retry_after_minutes} minutes."
                )
        org = org_selectors.transfer_recipient(text)
        if org is None:
            if "@" in text:
                raise forms.ValidationError(
                    "We can’t send credits to this e-mail. Check the address: the person needs a Tollgate account."
                )
            raise forms.ValidationError("We can’t send credits to this ID. Check it on their Organizations page.")
        if org.pk == self.sender.pk:
            raise forms.ValidationError("That is the organization you are sending from. Choose someone else.")
        return org

    def clean(self):
        cleaned = super().clean()
        if not self.errors and cleaned.get("recipient") is None:  # not looked up: nothing to send
            self.add_error("amount", sendable_error(0))
        return cleaned

    def clean_idempotency_key(self) -> str:
        key = self.cleaned_data["idempotency_key"].strip()
        try:
            uuid.UUID(hex=key)
        except ValueError:
            raise forms.ValidationError("This form is out of date. Reload the page and try again.") from None
        return key


def sendable_error(sendable_micros: int) -> str:
    return (
        f"You can send up to {format_credits(sendable_micros)} credits: only purchased "
        "credits that are not reserved by running work can be sent."
    )


# --- phase 2: top up, settings ------------------------------------------------


def parse_credits(text: str, *, whole: bool = False) -> int:
    """People's typing of an amount of credits ("1,500", "12.5") as micro-credits."""
    cleaned = (text or "").replace(",", "").replace("_", "").replace(" ", "").strip()
    try:
        micros = credits_to_micros(cleaned)
    except AmountError as error:
        raise forms.ValidationError(
            "Enter a number of credits, such as 1500." if "number" in str(error) else str(error)
        ) from None
    if micros < 0:
        raise forms.ValidationError("Enter zero or more credits.")
    if whole and micros % MICROS_PER_CREDIT:
        raise forms.ValidationError("Enter a whole number of credits.")
    return micros


def parse_money_cents(text: str) -> int:
    """An amount of money as people type it ("50", "49.90", "$1,000") in cents."""
    cleaned = (text or "").replace(",", "").replace(" ", "").lstrip("$€£").strip()
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise forms.ValidationError("Enter an amount of money, such as 50 or 49.90.") from None
    if not value.is_finite() or value < 0:
        raise forms.ValidationError("Enter an amount of money, such as 50 or 49.90.")
    if value > Decimal(MAX_MONEY_CENTS).scaleb(-2):  # compared, not multiplied: 1e999999 would overflow
        raise forms.ValidationError(f"Enter at most {format_money(MAX_MONEY_CENTS, minor_units=True)}.")
    cents = value * 100
    if cents != cents.to_integral_value():
        raise forms.ValidationError("Use at most two decimals.")
    return int(cents)


class CustomTopUpForm(forms.Form):
    credits = forms.CharField(
        label="Credits", max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off", "spellcheck": "false"}),
    )

    def __init__(self, *args, limits=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        if limits is not None:
            self.fields["credits"].help_text = (
                f"A whole number from {format_credits(limits.min_micros)} to {format_credits(limits.max_micros)}, "
                f"at {format_money(credits_value(MICROS_PER_CREDIT))} a credit."
            )

    def clean_credits(self) -> int:
        micros = parse_credits(self.cleaned_data["credits"], whole=True)
        try:
            self.amount_cents = custom_amount_price(micros)
        except TollgateError as error:
            raise forms.ValidationError(error.message) from None
        return micros


class AutoTopUpForm(forms.Form):
    enabled = forms.BooleanField(label="Top up automatically", required=False)
    threshold = forms.CharField(
        label="When the balance falls below", max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        help_text="In credits. A debit that leaves the balance under this line buys the pack below.",
    )
    pack = forms.ChoiceField(label="Buy this pack")
    monthly_cap = forms.CharField(
        label="Monthly cap", max_length=20,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
        help_text="The most auto top-ups may charge in a calendar month (UTC), before tax.",
    )

    def __init__(self, *args, packs=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.packs = {p.code: p for p in packs}
        self.fields["pack"].choices = [
            (p.code, f"{format_credits(p.credits_micros)} credits for {format_money(p.amount_cents, minor_units=True)}")
            for p in packs
        ]

    def clean_threshold(self) -> int:
        return parse_credits(self.cleaned_data["threshold"])

    def clean_monthly_cap(self) -> int:
        return parse_money_cents(self.cleaned_data["monthly_cap"])

    def clean(self):
        cleaned = super().clean()
        pack, cap = self.packs.get(cleaned.get("pack") or ""), cleaned.get("monthly_cap")
        if pack is not None and cap is not None and cap < pack.amount_cents:
            self.add_error("monthly_cap", f"Allow at least one pack: {format_money(pack.amount_cents, minor_units=True)}.")
        return cleaned


class AlertThresholdForm(forms.Form):
    threshold = forms.CharField(
        label="Low-balance line", max_length=20, required=False,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )

    def clean_threshold(self) -> int | None:
        text = self.cleaned_data["threshold"].strip()
        return parse_credits(text) if text else None


class AlertPreferenceForm(forms.Form):
    allowance_80 = forms.BooleanField(label="When 80% of the allowance is used", required=False)
    allowance_95 = forms.BooleanField(label="When 95% of the allowance is used", required=False)


class LastFourField(forms.CharField):
    """The last four characters of a provider key, typed or pasted whole.

    The browser may send the whole key (a paste; no `maxlength` cuts it to its
    first four), but only its last four are kept: cleaned, and shown again when
    the form comes back with an error, so the key is never echoed into a page."""

    def to_python(self, value):
        text = super().to_python(value)
        try:
            return usage_services.provider_key_last_four(text) if text else text
        except TollgateError as error:
            raise forms.ValidationError(error.message) from None

    def bound_data(self, data, initial):
        text = (data or "").strip()
        return text[-4:] if len(text) > 4 else text


class ProviderKeyForm(forms.Form):
    provider = forms.ChoiceField(label="Provider")
    label = forms.CharField(label="Label", max_length=100, help_text="Where it is used, e.g. “production agents”.")
    last_four = LastFourField(
        label="Last four characters",
        # No maxlength: it would keep the *first* four characters of a pasted key.
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "autocapitalize": "none",
                                      "size": 6}),
        help_text="Type the last four characters, or paste the whole key: only its last four are kept.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["provider"].choices = Provider.choices


class MemberLimitForm(forms.Form):
    limit = forms.CharField(
        label="Monthly cap", max_length=20, required=False,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", "placeholder": "No cap"}),
    )

    def clean_limit(self) -> int | None:
        text = self.cleaned_data["limit"].strip()
        return parse_credits(text) if text else None


class MemberUsageForm(forms.Form):
    """Who pays for members' usage of the organization (owners only)."""

    member_usage = forms.ChoiceField(
        label="Who pays for members' usage", widget=forms.RadioSelect,
        choices=[
            (MemberUsage.POOL, "The organization: everyone's usage comes out of its balance"),
            (MemberUsage.PERSONAL, "Each member, from their personal balance (for public and community organizations)"),
        ],
    )
