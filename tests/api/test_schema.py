from django.core.management import call_command


def test_the_openapi_schema_generates_and_validates_without_warnings(tmp_path, db):
    # --fail-on-warn: an endpoint the generator cannot describe fails here,
    # not silently in the docs clients read.
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--file", str(out), "--validate", "--fail-on-warn")
    text = out.read_text()
    assert "ApiKeyAuth" in text and "/api/v1/usage/events/batch" in text
