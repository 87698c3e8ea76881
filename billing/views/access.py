"""The billing-role check the pages share, so every refusal reads the same."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied


def require_billing_role(request, what: str) -> None:
    """403 unless the current member may manage billing (owner, admin, billing).
    `what` finishes the sentence: "Only owners, admins and billing managers can <what>."."""
    if not request.membership.can_manage_billing:
        raise PermissionDenied(f"Only owners, admins and billing managers can {what}.")
