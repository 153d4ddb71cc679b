"""The app module imports without side effects and builds its page without weights."""

import importlib


def test_app_builds_without_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    app = importlib.import_module("app")
    demo = app.build_demo()
    assert "/edit" in [f"/{d['api_name']}" for d in demo.config["dependencies"] if d.get("api_name")]
    panel = app.weights_panel()
    assert "missing" in panel and "weights import" in panel
