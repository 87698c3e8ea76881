"""Static files: the production image collects them with the manifest storage
(fingerprinted names, compressed copies); every file, the vendored chart
library and its source map included, must survive that."""

import json

from django.core.management import call_command


def test_collectstatic_succeeds_with_the_manifest_storage(tmp_path, settings):
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }

    call_command("collectstatic", interactive=False, verbosity=0)

    paths = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    for name in ("vendor/chartjs/chart.umd.min.js", "vendor/chartjs/chart.umd.min.js.map", "js/usage_charts.js",
                 "js/checkout_status.js", "js/topup.js", "css/tollgate.css"):
        assert name in paths, name
        assert (tmp_path / paths[name]).exists()
    hashed_js = (tmp_path / paths["vendor/chartjs/chart.umd.min.js"]).read_text()
    # The source map comment now names the fingerprinted map, which exists.
    assert f"sourceMappingURL={paths['vendor/chartjs/chart.umd.min.js.map'].rsplit('/', 1)[-1]}" in hashed_js


def test_the_chart_library_ships_with_its_licence():
    from pathlib import Path

    vendor = Path(__file__).resolve().parents[1] / "static" / "vendor" / "chartjs"
    assert "MIT License" in (vendor / "LICENSE.md").read_text()
    assert "Chart.js v4.6.1" in (vendor / "chart.umd.min.js").read_text()[:200]
