"""Admin building blocks shared by the apps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.contrib import admin


@dataclass
class AmountFormats:
    """How the admin shows amounts: `credits(micros)` and `money(cents)`. The
    kernel knows neither a credit's price nor the currency; the top app fills
    these in its `ready()` (backoffice.apps: "1,234.5 credits ($12.35)", "$9.00")."""

    credits: Callable[[int], str] = str
    money: Callable[[int], str] = str


amount_formats = AmountFormats()


def amount_formats_register(*, credits: Callable[[int], str], money: Callable[[int], str]) -> None:
    amount_formats.credits = credits
    amount_formats.money = money


def _amount_display(field_name: str, kind: str, label: str):
    def shown(obj) -> str:
        value = getattr(obj, field_name)
        if value is None:
            return "-"
        return amount_formats.credits(value) if kind == "credits" else amount_formats.money(value)

    shown.short_description = label
    shown.admin_order_field = field_name
    return shown


class AmountsAdmin(admin.ModelAdmin):
    """Shows every `*_micros` column as credits and money and every `*_cents`
    column as money, in the list and wherever the field is read only: staff
    never read raw micros. Editable fields stay as they are."""

    def __init__(self, model, admin_site) -> None:
        super().__init__(model, admin_site)
        self._amounts: dict[str, str] = {}
        for field in model._meta.concrete_fields:
            for suffix, kind in (("_micros", "credits"), ("_cents", "money")):
                if field.name.endswith(suffix):
                    name = f"{field.name}_shown"
                    label = str(field.verbose_name).removesuffix(suffix.replace("_", " "))
                    setattr(self, name, _amount_display(field.name, kind, label))
                    self._amounts[field.name] = name

    def _shown(self, names) -> list:
        return [self._amounts.get(name, name) if isinstance(name, str) else name for name in names]

    def get_list_display(self, request):
        return self._shown(super().get_list_display(request))

    def get_readonly_fields(self, request, obj=None):
        return self._shown(super().get_readonly_fields(request, obj))

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is not None and not self.has_change_permission(request, obj):
            return self._shown(fields)  # a view-only page: everything is read only
        readonly = set(super().get_readonly_fields(request, obj))
        return [self._amounts[f] if f in readonly and f in self._amounts else f for f in fields]


class ReadOnlyAdmin(AmountsAdmin):
    """For records that only services write (ledger rows, audit, Stripe-driven
    state): staff may look, search and filter, never add, edit or delete."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
