from django.core.management import call_command


def test_the_openapi_schema_generates_and_validates_without_warnings(tmp_path, db):
    # --fail-on-warn: an endpoint the generator cannot describe fails here,
    # not silently in the docs clients read.
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--file", str(out), "--validate", "--fail-on-warn")
    text = out.read_text()
    assert "ApiKeyAuth" in text and "/api/v1/usage/events/batch" in text


def test_the_schema_documents_every_error_answer_and_the_summary_object(client, db):
    schema = client.get("/api/schema/?format=json").json()
    operations = {(path, method): op for path, item in schema["paths"].items() if path.startswith("/api/v1/")
                  for method, op in item.items()}
    for (path, method), op in operations.items():
        for status in ("401", "403", "429"):
            assert status in op["responses"], (path, method, status)
        if "{" in path:
            assert "404" in op["responses"], (path, method)
        for status, response in op["responses"].items():
            if status[0] in "45":
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorEnvelope"}
    assert {"502", "503"} <= set(operations[("/api/v1/checkout", "post")]["responses"])
    assert {"413", "415"} <= set(operations[("/api/v1/usage/events", "post")]["responses"])
    summary = operations[("/api/v1/usage/summary", "get")]["responses"]["200"]["content"]["application/json"]["schema"]
    assert summary == {"$ref": "#/components/schemas/UsageSummary"}
