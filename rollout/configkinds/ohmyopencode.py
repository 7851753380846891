"""oh-my-opencode's oh-my-opencode.json[c]: agent models, fallback_models chains, runtime_fallback."""

from __future__ import annotations

import re
from typing import Any

from rollout.configkinds.base import ConfigContext, Problem
from rollout.configkinds.failover import Chain, check_chains
from rollout.configkinds.jsonc import is_number, load_jsonc
from rollout.configkinds.locate import JsonPath, LocatedProblems, json_lines
from rollout.configkinds.opencode import check_model, check_sampling
from rollout.models import catalog as catalogs

AGENT_KEYS = frozenset(
    {
        "model", "fallback_models", "temperature", "top_p", "prompt", "prompt_append", "tools",
        "disable", "mode", "color", "permission", "category", "variant", "maxTokens", "thinking",
        "reasoningEffort", "textVerbosity", "providerOptions", "description", "ultrawork",
        "max_prompt_tokens", "is_unstable_agent",
    }
)  # fmt: skip
FALLBACK_KEYS = frozenset(
    {"model", "variant", "reasoningEffort", "temperature", "top_p", "maxTokens", "thinking"}
)
RUNTIME_KEYS = {
    "enabled": "bool",
    "retry_on_errors": "codes",
    "max_fallback_attempts": (1, 20),
    "cooldown_seconds": (0, None),
    "timeout_seconds": (0, None),
    "notify_on_fallback": "bool",
}
_VARIANT_SUFFIX = re.compile(r"\([\w-]+\)$")


def _model_id(value: str, primary: str | None) -> str:
    """Strip an inline `(variant)` and give a bare id its primary's provider, as OmO does."""
    value = _VARIANT_SUFFIX.sub("", value.strip())
    if "/" not in value and primary and "/" in primary:
        return f"{primary.split('/', 1)[0]}/{value}"
    return value


class OhMyOpenCodeKind:
    name = "oh-my-opencode"

    def parse(self, data: bytes) -> Any:
        return load_jsonc(data)[0]

    def check(self, doc: Any, data: bytes, ctx: ConfigContext) -> list[Problem]:
        _, text = load_jsonc(data)
        report = LocatedProblems(json_lines(text))
        if not isinstance(doc, dict):
            report.error((), "an oh-my-opencode config must be a JSON object")
            return report.result()
        known = catalogs.resolve(ctx.options.get("catalog"))
        chains: list[Chain] = []
        for section, label in (("agents", "agent"), ("categories", "category")):
            block = doc.get(section, {})
            if not isinstance(block, dict):
                report.error((section,), f"must be an object of {section}")
                continue
            for name, entry in block.items():
                chain = self._entry(report, (section, name), f"{label} {name}", entry, known)
                if chain is not None:
                    chains.append(chain)
        limit = self._runtime(report, doc.get("runtime_fallback"), "runtime_fallback" in doc)
        check_chains(chains, report, lambda m: {m.split("/", 1)[0]})
        enabled = doc.get("runtime_fallback")
        if isinstance(enabled, dict):
            enabled = enabled.get("enabled", False)
        if any(c.entries for c in chains) and enabled is not True:
            report.warn(
                ("runtime_fallback",),
                "fallback_models are set but runtime_fallback is not enabled: "
                "chains are not tried on API errors (429, 5xx)",
            )
        for chain in chains:
            if limit is not None and len(chain.entries) > limit:
                report.warn(
                    chain.path,
                    f"{chain.owner} has {len(chain.entries)} fallbacks but "
                    f"runtime_fallback.max_fallback_attempts is {limit}: the rest are never tried",
                )
        return report.result()

    def _entry(
        self, report: LocatedProblems, path: JsonPath, owner: str, entry: Any, known: catalogs.Catalog
    ) -> Chain | None:
        if not isinstance(entry, dict):
            report.error(path, f"{owner}: must be an object")
            return None
        for key in entry:
            if key not in AGENT_KEYS:
                report.warn((*path, key), f"{owner}: unknown key {key!r} (oh-my-opencode ignores it)")
        primary = None
        if "model" in entry:
            raw_model = entry["model"]
            value = _model_id(raw_model, None) if isinstance(raw_model, str) else raw_model
            primary = check_model(report, (*path, "model"), value, owner, known)
        check_sampling(report, path, entry, owner, hi=2)
        if "fallback_models" not in entry:
            return Chain(owner, path, primary)
        chain = Chain(owner, (*path, "fallback_models"), primary)
        raw = entry["fallback_models"]
        items = [(chain.path, raw)] if isinstance(raw, str) else None
        if isinstance(raw, list):
            items = [((*chain.path, i), item) for i, item in enumerate(raw)]
        if items is None:
            report.error(chain.path, f"{owner}: fallback_models must be a model id or a list, got {raw!r}")
            return chain
        for where, item in items:
            model = item
            if isinstance(item, dict):
                for key in item:
                    if key not in FALLBACK_KEYS:
                        report.warn((*where, key), f"{owner}: unknown fallback key {key!r}")
                check_sampling(report, where, item, owner, hi=2)
                model = item.get("model")
                where = (*where, "model")
            if not isinstance(model, str) or not model.strip():
                report.error(where, f"{owner}: a fallback needs a model id, got {model!r}")
                continue
            full = _model_id(model, primary)
            if check_model(report, where, full, owner, known):
                chain.entries.append((where, full))
        return chain

    def _runtime(self, report: LocatedProblems, value: Any, present: bool) -> int | None:
        """Check runtime_fallback (bool or object); return max_fallback_attempts when set."""
        path: JsonPath = ("runtime_fallback",)
        if not present or isinstance(value, bool):
            return None
        if not isinstance(value, dict):
            report.error(path, f"must be true, false or an object, got {value!r}")
            return None
        for key, item in value.items():
            rule = RUNTIME_KEYS.get(key)
            where = (*path, key)
            if rule is None:
                report.warn(where, f"unknown runtime_fallback key {key!r}")
            elif rule == "bool" and not isinstance(item, bool):
                report.error(where, f"must be true or false, got {item!r}")
            elif rule == "codes" and not (
                isinstance(item, list)
                and all(isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 599 for c in item)
            ):
                report.error(where, f"must be a list of HTTP status codes, got {item!r}")
            elif isinstance(rule, tuple):
                low, high = rule
                if not is_number(item) or item < low or (high is not None and item > high):
                    bound = f"from {low} to {high}" if high is not None else f">= {low}"
                    report.error(where, f"must be a number {bound}, got {item!r}")
        attempts = value.get("max_fallback_attempts")
        return attempts if isinstance(attempts, int) and not isinstance(attempts, bool) else None

    def assignment(self, doc: Any) -> dict[str, dict[str, float]]:
        """Return agent -> {primary model: 1.0} for agents that set a model."""
        out: dict[str, dict[str, float]] = {}
        agents = doc.get("agents") if isinstance(doc, dict) else None
        for name, agent in (agents or {}).items() if isinstance(agents, dict) else ():
            if isinstance(agent, dict) and isinstance(agent.get("model"), str):
                out[name] = {_model_id(agent["model"], None): 1.0}
        return out


KIND = OH_MY_OPENCODE = OhMyOpenCodeKind()
