"""`karet upgrade-config`: a file in, the upgraded JSON out; or a stored pipeline, saved with `--save`."""

import json

from karet_api.cli import main
from karet_defs.config.validate import load_pipeline
from karet_defs.store import keys
from karet_defs.templates import install_template, template_files

LOOKUPS = {
    "version": 1,
    "source_containers": [],
    "lookup_mappings": [
        {
            "id": "categories",
            "match": "keyword_substring",
            "case_insensitive": True,
            "rows": [{"input_patterns": ["PAYROLL"], "output": "INCOME", "priority": 10}],
            "children": [{"id": "food", "rows": [{"input_patterns": ["CAFE"], "output": "FOOD"}]}],
            "catch_all": {"output": "OTHER"},
        }
    ],
    "mappings": [],
    "analytic_tables": [],
}


def test_a_file_is_upgraded_to_stdout_with_notes_on_stderr(tmp_path, capsys):
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(LOOKUPS))

    assert main(["upgrade-config", str(path)]) == 0

    captured = capsys.readouterr()
    upgraded = json.loads(captured.out)
    assert upgraded["dimensions"] == [
        {
            "id": "categories",
            "match": "keyword_substring",
            "case_insensitive": True,
            "rows": {
                "values": ["value"],
                "rows": [{"patterns": ["PAYROLL"], "values": ["INCOME"], "priority": 10}],
            },
            "on_miss": {"literal": "OTHER"},
        },
        {
            "id": "food",
            "match": "keyword_substring",
            "rows": {"values": ["value"], "rows": [{"patterns": ["CAFE"], "values": ["FOOD"]}]},
        },
    ]
    assert "lookup_mappings" not in upgraded
    assert "note: lookup `categories` had children (`food`)" in captured.err
    load_pipeline(upgraded)


def test_a_stored_pipeline_is_saved_with_save(local_settings, local_stores, capsys, monkeypatch):
    monkeypatch.setenv("KARET_DATA_DIR", str(local_settings.data_dir))
    install_template(local_stores, "spend", "spending")

    assert main(["upgrade-config", "spend", "--data-dir", str(local_settings.data_dir)]) == 0
    preview = json.loads(capsys.readouterr().out)
    assert local_stores.pipelines.get(keys.config_key("spend")) == template_files("spending")["pipeline.json"]

    assert main(["upgrade-config", "spend", "--save", "--data-dir", str(local_settings.data_dir)]) == 0
    assert json.loads(local_stores.pipelines.get(keys.config_key("spend"))) == preview
