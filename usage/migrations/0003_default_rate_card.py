"""Load the default rate card (usage/data/rate_card.json). `manage.py load_rate_card`
loads the same file again after it changes."""

from django.db import migrations


def load(apps, schema_editor):
    from usage.rate_card import load_card_data, read_data_file

    load_card_data(read_data_file(), meter_model=apps.get_model("usage", "Meter"), rate_model=apps.get_model("usage", "Rate"))


class Migration(migrations.Migration):
    dependencies = [("usage", "0002_meters_rates_usage_events")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
