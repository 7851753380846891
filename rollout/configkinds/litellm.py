"""LiteLLM proxy config.yaml: model_list deployments, weights, and fallbacks between model groups."""

from __future__ import annotations

from typing import Any

from rollout.configkinds.base import ConfigContext, Problem
from rollout.configkinds.failover import Chain, check_chains
from rollout.configkinds.generic import YAML
from rollout.configkinds.jsonc import is_number
from rollout.configkinds.locate import JsonPath, LocatedProblems, yaml_lines
from rollout.models import catalog as catalogs

TOP_KEYS = frozenset(
    {
        "model_list", "litellm_settings", "router_settings", "general_settings",
        "environment_variables", "include", "credential_list", "mcp_servers", "guardrails",
        "vector_store_registry", "search_tools", "callback_settings",
    }
)  # fmt: skip
FALLBACK_KEYS = ("fallbacks", "context_window_fallbacks", "content_policy_fallbacks")


class LiteLLMKind:
    name = "litellm"

    def parse(self, data: bytes) -> Any:
        return YAML.parse(data)

    def check(self, doc: Any, data: bytes, ctx: ConfigContext) -> list[Problem]:
        report = LocatedProblems(yaml_lines(data.decode("utf-8", errors="replace")))
        if not isinstance(doc, dict):
            report.error((), "a LiteLLM config must be a YAML mapping with model_list")
            return report.result()
        for key in doc:
            if key not in TOP_KEYS:
                report.warn((key,), f"unknown top-level key {key!r}")
        known = catalogs.resolve(ctx.options.get("catalog"))
        groups = self._model_list(report, doc.get("model_list"), known)
        chains: list[Chain] = []
        for section in ("router_settings", "litellm_settings"):
            block = doc.get(section)
            if block is None:
                continue
            if not isinstance(block, dict):
                report.error((section,), "must be a mapping")
                continue
            for key in FALLBACK_KEYS:
                if key in block:
                    chains += self._fallbacks(report, (section, key), block[key], groups)

        def providers(group: str) -> set[str]:
            return {m.split("/", 1)[0] for m in groups.get(group, {})}

        check_chains(chains, report, providers)
        return report.result()

    def _model_list(
        self, report: LocatedProblems, value: Any, known: catalogs.Catalog
    ) -> dict[str, dict[str, float]]:
        """Check deployments; return model group -> {model: weight}."""
        groups: dict[str, dict[str, float]] = {}
        if not isinstance(value, list) or not value:
            report.error(("model_list",), "must be a non-empty list of deployments")
            return groups
        for i, item in enumerate(value):
            path: JsonPath = ("model_list", i)
            if not isinstance(item, dict):
                report.error(path, "a deployment must be a mapping with model_name and litellm_params")
                continue
            name = item.get("model_name")
            if not isinstance(name, str) or not name.strip():
                report.error((*path, "model_name"), f"must be a non-empty string, got {name!r}")
                continue
            params = item.get("litellm_params")
            if not isinstance(params, dict):
                report.error((*path, "litellm_params"), f"deployment {name}: litellm_params missing")
                continue
            model = params.get("model")
            if not isinstance(model, str) or not model.strip():
                report.error((*path, "litellm_params", "model"), f"deployment {name}: model missing")
                continue
            weight = params.get("weight", 1)
            if not is_number(weight) or weight <= 0:
                report.error(
                    (*path, "litellm_params", "weight"),
                    f"deployment {name}: weight must be a number > 0, got {weight!r}",
                )
                weight = 1
            self._known(report, (*path, "litellm_params", "model"), name, model, known)
            groups.setdefault(name, {})
            groups[name][model] = groups[name].get(model, 0) + float(weight)
        return groups

    def _known(
        self, report: LocatedProblems, path: JsonPath, name: str, model: str, known: catalogs.Catalog
    ) -> None:
        provider = model.split("/", 1)[0] if "/" in model else None
        if provider is None or provider not in known.providers:
            report.warn(path, f"deployment {name}: provider of {model} is not in the catalog (unchecked)")
        elif known.get(model) is None:
            hint = known.closest(model)
            near = f" (closest known: {hint})" if hint else ""
            report.error(path, f"deployment {name}: unknown model {model}{near}")

    def _fallbacks(
        self, report: LocatedProblems, path: JsonPath, value: Any, groups: dict[str, dict[str, float]]
    ) -> list[Chain]:
        chains: list[Chain] = []
        if not isinstance(value, list):
            report.error(path, 'must be a list like [{"gpt-4o": ["claude-sonnet"]}]')
            return chains
        for i, rule in enumerate(value):
            if not isinstance(rule, dict) or len(rule) != 1:
                report.error((*path, i), 'each fallback must be one mapping {"group": ["other", ...]}')
                continue
            ((group, targets),) = rule.items()
            where: JsonPath = (*path, i, group)
            if group not in groups:
                report.error(where, f"fallbacks name model group {group!r}, which model_list lacks")
            chain = Chain(f"model group {group}", where, group)
            if not isinstance(targets, list):
                report.error(where, f"fallbacks of {group} must be a list of model groups")
                continue
            for j, target in enumerate(targets):
                if not isinstance(target, str) or target not in groups:
                    report.error((*where, j), f"model group {group} falls back to unknown group {target!r}")
                    continue
                chain.entries.append(((*where, j), target))
            chains.append(chain)
        return chains

    def assignment(self, doc: Any) -> dict[str, dict[str, float]]:
        """Return model group -> {deployment model: share of traffic by weight}."""
        out: dict[str, dict[str, float]] = {}
        items = doc.get("model_list") if isinstance(doc, dict) else None
        for item in items if isinstance(items, list) else ():
            params = item.get("litellm_params") if isinstance(item, dict) else None
            if not isinstance(params, dict) or not isinstance(params.get("model"), str):
                continue
            weight = params.get("weight", 1)
            weight = float(weight) if is_number(weight) and weight > 0 else 1.0
            group = out.setdefault(str(item.get("model_name")), {})
            group[params["model"]] = group.get(params["model"], 0.0) + weight
        for group in out.values():
            total = sum(group.values())
            for model in group:
                group[model] /= total
        return out


KIND = LITELLM = LiteLLMKind()
