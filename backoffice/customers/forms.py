"""The customer page's action forms. Every one requires a reason; the services
check it again (and everything else), so a form only parses."""

from __future__ import annotations

import uuid

from django import forms

from billing.services.staff import MAX_TRIAL_EXTENSION_DAYS
from orgs.services import STAFF_REASON_MAX_LENGTH
from usage.units import AmountError, credits_to_micros


def _credits(value: str) -> int:
    try:
        return credits_to_micros(value)
    except AmountError as error:
        raise forms.ValidationError(str(error)) from None


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=STAFF_REASON_MAX_LENGTH, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text="Required. Kept in the audit trail.")

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("Say why.")
        return reason


class TokenForm(ReasonForm):
    """`token` keys what the action writes, so a form sent twice acts once."""

    token = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("initial", {}).setdefault("token", uuid.uuid4().hex)
        super().__init__(*args, **kwargs)


class AdjustForm(TokenForm):
    credits = forms.CharField(help_text="Signed: 25 adds credits, -10 takes them back (never more than available).")
    expires_at = forms.DateTimeField(required=False, help_text="Optional expiry of added credits (UTC).")
    field_order = ["credits", "expires_at", "reason"]

    def clean_credits(self) -> int:
        micros = _credits(self.cleaned_data["credits"])
        if micros == 0:
            raise forms.ValidationError("An adjustment of zero changes nothing.")
        return micros


class PromoForm(TokenForm):
    credits = forms.CharField(help_text="More than zero: 500, 12.5.")
    expires_at = forms.DateTimeField(help_text="UTC, in the future: 2027-01-31 23:59.")
    field_order = ["credits", "expires_at", "reason"]

    def clean_credits(self) -> int:
        micros = _credits(self.cleaned_data["credits"])
        if micros <= 0:
            raise forms.ValidationError("Grant more than zero credits.")
        return micros


class TrialExtendForm(ReasonForm):
    days = forms.IntegerField(min_value=1, max_value=MAX_TRIAL_EXTENSION_DAYS, initial=7)
    field_order = ["days", "reason"]


class RefundForm(ReasonForm):
    purchase = forms.TypedChoiceField(coerce=int, help_text="Refunded in full; credits come back out when Stripe confirms.")
    field_order = ["purchase", "reason"]

    def __init__(self, *args, purchases=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["purchase"].choices = [(p.pk, f"#{p.pk} {p} ({p.created_at:%Y-%m-%d})") for p in purchases]


class InvoiceResendForm(ReasonForm):
    invoice = forms.ChoiceField(help_text="Its link is e-mailed to the owners, admins and billing managers.")
    field_order = ["invoice", "reason"]

    def __init__(self, *args, invoices=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["invoice"].choices = [
            (i.id, f"{(i.stripe_data or {}).get('number') or i.id} ({i.created:%Y-%m-%d})") for i in invoices
        ]
