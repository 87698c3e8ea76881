from __future__ import annotations

import uuid

from django import forms

from orgs import selectors as org_selectors
from orgs.models import Organization
from usage.models import EntryKind
from usage.selectors import HistoryFilters
from billing.money import credits_value, format_money
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

    def __init__(self, *args, sender: Organization, sendable_micros: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sender = sender
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
        return micros

    def clean_recipient(self) -> Organization:
        text = self.cleaned_data["recipient"].strip()
        org = org_selectors.transfer_recipient(text)
        if org is None:
            if "@" in text:
                raise forms.ValidationError(
                    "No Tollgate account uses this e-mail. Ask them to sign up first, or check the address."
                )
            raise forms.ValidationError("No organization has this ID. Check it on their Organizations page.")
        if org.pk == self.sender.pk:
            raise forms.ValidationError("That is the organization you are sending from. Choose someone else.")
        return org

    def clean_idempotency_key(self) -> str:
        key = self.cleaned_data["idempotency_key"].strip()
        try:
            uuid.UUID(hex=key)
        except ValueError:
            raise forms.ValidationError("This form is out of date. Reload the page and try again.") from None
        return key
