"""The model catalog: models.dev format, the shipped file, OpenCode's cache, closest ids."""

from __future__ import annotations

import json
import os

import pytest

from rollout.models import catalog
from rollout.util.errors import BadInput

PLAN_MODELS = [
    "opencode/big-pickle", "openai/gpt-5.2", "openai/gpt-5-mini", "google/gemini-2.0-flash-lite",
    "google/gemini-2.0-flash", "anthropic/claude-sonnet-4-5", "opencode/qwen3-coder",
    "google/gemini-3-pro-preview",
]  # fmt: skip


def write_models_dev(path, models: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"acme": {"id": "acme", "name": "Acme", "models": models}}))


def test_builtin_catalog_prices_every_model_of_the_plan():
    shipped = catalog.builtin()
    for model in PLAN_MODELS:
        info = shipped.get(model)
        assert info is not None and info.priced, model
    gpt = shipped.get("openai/gpt-5.2")
    assert (gpt.input_cost, gpt.output_cost, gpt.context) == (1.75, 14.0, 400000)
    assert shipped.get("opencode/big-pickle").input_cost == 0.0


def test_models_dev_shape_is_read(tmp_path):
    path = tmp_path / "c.json"
    write_models_dev(path, {"m-1": {"id": "m-1", "name": "M One", "cost": {"input": 2, "output": 8},
                                    "limit": {"context": 1000, "output": 100}},
                            "m-2": {"id": "m-2"}})  # fmt: skip
    found = catalog.load(path)
    assert found.get("acme/m-1") == catalog.ModelInfo("acme/m-1", "M One", 2.0, 8.0, 1000)
    assert found.get("acme/m-2") == catalog.ModelInfo("acme/m-2", "acme/m-2")
    assert not found.get("acme/m-2").priced
    assert found.providers == {"acme"}


def test_resolve_prefers_named_file_then_opencode_cache_then_builtin(tmp_path, cache_home):
    assert catalog.resolve(None).source == str(catalog.BUILTIN)
    write_models_dev(cache_home / "opencode" / "models.json", {"cached": {}})
    assert catalog.resolve(None).get("acme/cached") is not None
    named = tmp_path / "named.json"
    write_models_dev(named, {"named": {}})
    assert set(catalog.resolve(str(named)).models) == {"acme/named"}


def test_broken_opencode_cache_falls_back_to_builtin(cache_home):
    cache = cache_home / "opencode" / "models.json"
    cache.parent.mkdir(parents=True)
    cache.write_text("{half")
    assert catalog.resolve(None).source == str(catalog.BUILTIN)


def test_changed_file_is_reread(tmp_path):
    path = tmp_path / "c.json"
    write_models_dev(path, {"a": {}})
    assert set(catalog.load(path).models) == {"acme/a"}
    write_models_dev(path, {"b": {}})
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse clocks
    assert set(catalog.load(path).models) == {"acme/b"}


@pytest.mark.parametrize(
    ("asked", "closest"),
    [
        ("openai/gpt-5-2", "openai/gpt-5.2"),
        ("anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4-5"),
        ("open-ai/gpt-5-mini", "openai/gpt-5-mini"),
        ("gemini/gemini-2.0-flash-lite", "google/gemini-2.0-flash-lite"),
        ("zzz/qqqqqqqqqqqq", None),
    ],
)
def test_closest_known_id(asked, closest):
    assert catalog.builtin().closest(asked) == closest


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[]", "{path}: not a models.dev catalog (expected an object of providers)"),
        ('{"p": []}', "{path}: p: a provider needs a 'models' object"),
        ("{", "{path}:1: catalog is not valid JSON: Expecting property name enclosed in double quotes"),
    ],
)
def test_bad_catalog_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(BadInput) as e:
        catalog.load(path)
    assert str(e.value) == message.replace("{path}", str(path))


def test_missing_catalog(tmp_path):
    with pytest.raises(BadInput, match="catalog not found"):
        catalog.load(tmp_path / "none.json")
