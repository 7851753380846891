"""The model catalog (models.dev format): which models exist offline, and what they cost."""

from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from rollout.util.errors import BadInput

BUILTIN = Path(__file__).parents[1] / "data" / "catalog.json"


@dataclass(frozen=True)
class ModelInfo:
    """One model: `provider/model` id, display name, prices in USD per 1M tokens (None: unknown)."""

    id: str
    name: str
    input_cost: float | None = None
    output_cost: float | None = None
    context: int | None = None

    @property
    def provider(self) -> str:
        return self.id.split("/", 1)[0]

    @property
    def priced(self) -> bool:
        return self.input_cost is not None and self.output_cost is not None


@dataclass(frozen=True)
class Catalog:
    """Models by `provider/model` id, read from one source (a file path or 'builtin')."""

    source: str
    models: dict[str, ModelInfo] = field(default_factory=dict)
    by_provider: dict[str, list[str]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for model_id in self.models:
            self.by_provider.setdefault(model_id.split("/", 1)[0], []).append(model_id)

    @property
    def providers(self) -> set[str]:
        return set(self.by_provider)

    def get(self, model_id: str) -> ModelInfo | None:
        """Return the model with this `provider/model` id, if the catalog knows it."""
        return self.models.get(model_id)

    def closest(self, model_id: str) -> str | None:
        """Return the known id nearest to `model_id` (difflib), or None when nothing is close.

        Looks within the same (or the nearest-named) provider first: a full models.dev catalog
        has thousands of ids, and a typo is almost always in the model part.
        """
        provider, _, tail = model_id.partition("/")
        found = difflib.get_close_matches(model_id, self.by_provider.get(provider, []), n=1, cutoff=0.5)
        if found:
            return found[0]
        for near in difflib.get_close_matches(provider, list(self.by_provider), n=1, cutoff=0.6):
            found = difflib.get_close_matches(model_id, self.by_provider[near], n=1, cutoff=0.5)
            if found:
                return found[0]
        by_tail = {known.split("/", 1)[1]: known for known in self.models}
        found = difflib.get_close_matches(tail, list(by_tail), n=1, cutoff=0.6)
        return by_tail[found[0]] if found else None

    def with_models(self, extra: dict[str, ModelInfo]) -> Catalog:
        """Return a catalog that also knows `extra` (e.g. models a config's `provider` block adds)."""
        if not extra:
            return self
        return Catalog(self.source, {**self.models, **extra})


def _price(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


def model_info(model_id: str, entry: Any) -> ModelInfo:
    """Build a ModelInfo from a models.dev model entry (missing fields are unknown)."""
    entry = entry if isinstance(entry, dict) else {}
    cost = entry.get("cost") if isinstance(entry.get("cost"), dict) else {}
    limit = entry.get("limit") if isinstance(entry.get("limit"), dict) else {}
    context = limit.get("context")
    return ModelInfo(
        id=model_id,
        name=str(entry.get("name") or model_id),
        input_cost=_price(cost.get("input")),
        output_cost=_price(cost.get("output")),
        context=context if isinstance(context, int) and not isinstance(context, bool) else None,
    )


def from_models_dev(data: Any, source: str) -> Catalog:
    """Read the models.dev shape: provider id -> {id, name, models: {model id -> {...}}}."""
    if not isinstance(data, dict):
        raise BadInput(f"{source}: not a models.dev catalog (expected an object of providers)")
    models: dict[str, ModelInfo] = {}
    for provider_id, provider in data.items():
        if not isinstance(provider, dict) or not isinstance(provider.get("models"), dict):
            raise BadInput(f"{source}: {provider_id}: a provider needs a 'models' object")
        for model_id, entry in provider["models"].items():
            full = f"{provider_id}/{model_id}"
            models[full] = model_info(full, entry)
    return Catalog(source, models)


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> Catalog:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: cannot read catalog ({e})") from None
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}:{e.lineno}: catalog is not valid JSON: {e.msg}") from None
    return from_models_dev(data, path)


def load(path: str | Path) -> Catalog:
    """Read a models.dev catalog file; raise BadInput naming the file."""
    file = Path(path)
    try:
        mtime = file.stat().st_mtime_ns
    except OSError:
        raise BadInput(f"{file}: catalog not found") from None
    return _load_cached(str(file), mtime)


def opencode_cache() -> Path:
    """Return where OpenCode caches models.dev (`$XDG_CACHE_HOME/opencode/models.json`)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "opencode" / "models.json"


def builtin() -> Catalog:
    """Return the small catalog shipped with rollout (the plan's models and their prices)."""
    return load(BUILTIN)


def resolve(named: str | None) -> Catalog:
    """Return the playbook's catalog file if named, else OpenCode's cache if present, else builtin."""
    if named:
        return load(named)
    cache = opencode_cache()
    if cache.is_file():
        try:
            return load(cache)
        except BadInput:
            pass  # a stale or half-written cache must not block validation: fall back
    return builtin()
