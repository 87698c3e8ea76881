"""The back office keeps no data of its own: this model only carries the staff
permissions its pages check (no table). The "Support" and "Finance" groups that
hold them are made by migration 0001."""

from django.db import models


class StaffPermissions(models.Model):
    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("view_customers", "Can open customer pages"),
            ("adjust_credits", "Can adjust an organization's credits"),
            ("grant_promo", "Can grant promotional credits"),
            ("refund_purchase", "Can refund a purchase through Stripe"),
            ("extend_trial", "Can extend a trial"),
            ("pause_usage", "Can pause and resume an organization's usage"),
            ("resend_invoice", "Can send an invoice's link again"),
        ]
