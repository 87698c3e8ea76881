"""The back office's permissions and the two staff roles that hold them.

Support reads everything staff can see (every "view" permission of Tollgate's
apps and of dj-stripe, and the customer pages) and changes nothing. Finance
reads the same and may also act on a customer: adjust and grant credits,
refund, extend a trial, pause usage, send an invoice link again. Running the
migration again (or after new models) only adds what is missing."""

from django.contrib.auth.management import create_permissions
from django.db import migrations, models

APPS = ["accounts", "orgs", "inbox", "usage", "outbound", "billing", "backoffice", "djstripe"]
FINANCE_ACTIONS = ["adjust_credits", "grant_promo", "refund_purchase", "extend_trial", "pause_usage", "resend_invoice"]
# The older admin forms (adjust on the credit account, promo on the billing state) check this one.
FINANCE_EXTRA = [("usage", "add_ledgerentry")]


def _permissions_exist(apps) -> None:
    # Django creates permissions after every migration has run; the groups need them now.
    for config in apps.get_app_configs():
        config.models_module = True
        create_permissions(config, apps=apps, verbosity=0)
        config.models_module = None


def roles_create(apps, schema_editor) -> None:
    _permissions_exist(apps)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    reads = list(Permission.objects.filter(content_type__app_label__in=APPS, codename__startswith="view_"))
    support, _ = Group.objects.get_or_create(name="Support")
    support.permissions.add(*reads)
    finance, _ = Group.objects.get_or_create(name="Finance")
    acts = list(Permission.objects.filter(content_type__app_label="backoffice", codename__in=FINANCE_ACTIONS))
    for app_label, codename in FINANCE_EXTRA:
        acts += list(Permission.objects.filter(content_type__app_label=app_label, codename=codename))
    finance.permissions.add(*reads, *acts)


def roles_remove(apps, schema_editor) -> None:
    apps.get_model("auth", "Group").objects.filter(name__in=["Support", "Finance"]).delete()


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("accounts", "0004_api_key_budget"),
        ("orgs", "0006_org_usage_paused"),
        ("inbox", "0001_initial"),
        ("usage", "0015_members_paid_since"),
        ("outbound", "0001_initial"),
        ("billing", "0006_plan_limits_and_account_features"),
        ("djstripe", "__latest__"),
    ]

    operations = [
        migrations.CreateModel(
            name="StaffPermissions",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ],
            options={
                "permissions": [
                    ("view_customers", "Can open customer pages"),
                    ("adjust_credits", "Can adjust an organization's credits"),
                    ("grant_promo", "Can grant promotional credits"),
                    ("refund_purchase", "Can refund a purchase through Stripe"),
                    ("extend_trial", "Can extend a trial"),
                    ("pause_usage", "Can pause and resume an organization's usage"),
                    ("resend_invoice", "Can send an invoice's link again"),
                ],
                "managed": False,
                "default_permissions": (),
            },
        ),
        migrations.RunPython(roles_create, roles_remove),
    ]
