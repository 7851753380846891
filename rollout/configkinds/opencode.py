"""OpenCode's opencode.json[c]: the keys OpenCode accepts, agents, and models the catalog knows."""

from __future__ import annotations

import difflib
import re
from typing import Any

from rollout.configkinds.base import ConfigContext, Problem
from rollout.configkinds.jsonc import is_number, load_jsonc
from rollout.configkinds.locate import JsonPath, LocatedProblems, json_lines
from rollout.models import catalog as catalogs
from rollout.util.limits import show

# Top-level keys of OpenCode's config schema (Config.Info is strict: anything else is refused).
TOP_KEYS = frozenset(
    {
        "$schema", "theme", "keybinds", "logLevel", "tui", "server", "command", "watcher",
        "plugin", "snapshot", "share", "autoshare", "autoupdate", "disabled_providers",
        "enabled_providers", "model", "small_model", "default_agent", "username", "mode",
        "agent", "provider", "mcp", "formatter", "lsp", "instructions", "layout", "permission",
        "tools", "enterprise", "compaction", "experimental",
    }
)  # fmt: skip
# Agent keys OpenCode knows; any other key is forwarded to the provider as a model option.
AGENT_KEYS = frozenset(
    {
        "model", "variant", "temperature", "top_p", "prompt", "tools", "disable", "description",
        "mode", "hidden", "options", "color", "steps", "maxSteps", "permission",
    }
)  # fmt: skip
BUILTIN_PRIMARY = frozenset({"build", "plan"})
BUILTIN_OTHER = frozenset({"general", "explore", "title", "summary", "compaction"})
MODES = ("subagent", "primary", "all")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


def check_model(
    report: LocatedProblems, path: JsonPath, value: Any, owner: str, known: catalogs.Catalog
) -> str | None:
    """Check a `provider/model` id against the catalog; return it when it is usable."""
    if not isinstance(value, str) or "/" not in value or value.startswith("/"):
        report.error(path, f"{owner}: model must be 'provider/model', got {value!r}")
        return None
    if known.get(value) is None:
        hint = known.closest(value)
        near = f" (closest known: {hint})" if hint else ""
        report.error(path, f"{owner}: unknown model {value}{near}")
    return value


def config_models(doc: Any) -> dict[str, catalogs.ModelInfo]:
    """Return the models a config's own `provider` block defines (custom providers)."""
    found: dict[str, catalogs.ModelInfo] = {}
    providers = doc.get("provider") if isinstance(doc, dict) else None
    if not isinstance(providers, dict):
        return found
    for provider_id, provider in providers.items():
        models = provider.get("models") if isinstance(provider, dict) else None
        for model_id, entry in (models or {}).items() if isinstance(models, dict) else ():
            full = f"{provider_id}/{model_id}"
            found[full] = catalogs.model_info(full, entry)
    return found


def check_sampling(
    report: LocatedProblems, path: JsonPath, agent: dict[str, Any], owner: str, hi: float
) -> None:
    """Check temperature (finite; error above `hi`, warning outside 0-1) and top_p (0-1)."""
    if "temperature" in agent:
        value = agent["temperature"]
        where = (*path, "temperature")
        if not is_number(value):
            report.error(where, f"{owner}: temperature must be a finite number, got {value!r}")
        elif not 0 <= value <= hi:
            report.error(where, f"{owner}: temperature {value} is outside 0-{hi:g}")
        elif value > 1:
            report.warn(where, f"{owner}: temperature {value} is above 1 (risky for coding agents)")
    if "top_p" in agent:
        value = agent["top_p"]
        if not is_number(value) or not 0 <= value <= 1:
            report.error((*path, "top_p"), f"{owner}: top_p must be a number from 0 to 1, got {value!r}")


class OpenCodeKind:
    name = "opencode"

    def parse(self, data: bytes) -> Any:
        return load_jsonc(data)[0]

    def check(self, doc: Any, data: bytes, ctx: ConfigContext) -> list[Problem]:
        _, text = load_jsonc(data)
        report = LocatedProblems(json_lines(text))
        if not isinstance(doc, dict):
            report.error((), "an OpenCode config must be a JSON object")
            return report.result()
        known = catalogs.resolve(ctx.options.get("catalog")).with_models(config_models(doc))
        for key in doc:
            if key not in TOP_KEYS:
                hint = difflib.get_close_matches(key, sorted(TOP_KEYS), n=1)
                near = f"; did you mean {hint[0]!r}?" if hint else ""
                report.error((key,), f"unknown top-level key {key!r} (OpenCode refuses the file{near})")
        for key in ("model", "small_model"):
            if key in doc:
                check_model(report, (key,), doc[key], key, known)
        agents = doc.get("agent", {})
        if not isinstance(agents, dict):
            report.error(("agent",), "must be an object of agents")
            agents = {}
        for name, agent in agents.items():
            self._agent(report, name, agent, known)
        self._provider_block(report, doc)
        self._providers(report, doc, agents)
        if "default_agent" in doc:
            self._default_agent(report, doc["default_agent"], agents)
        return report.result()

    def _agent(self, report: LocatedProblems, name: str, agent: Any, known: catalogs.Catalog) -> None:
        path: JsonPath = ("agent", name)
        owner = f"agent {name}"
        if not isinstance(agent, dict):
            report.error(path, f"{owner}: must be an object")
            return
        for key in agent:
            if key not in AGENT_KEYS:
                report.warn(
                    (*path, key),
                    f"{owner}: unknown agent key {key!r} (OpenCode passes it to the provider as an option)",
                )
        if "model" in agent:
            check_model(report, (*path, "model"), agent["model"], owner, known)
        check_sampling(report, path, agent, owner, hi=2)
        mode = agent.get("mode")
        if mode is not None and mode not in MODES:
            report.error((*path, "mode"), f"{owner}: mode must be one of {', '.join(MODES)}, got {mode!r}")
        for key in ("steps", "maxSteps"):
            value = agent.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                report.error((*path, key), f"{owner}: {key} must be a whole number >= 1, got {value!r}")
        for key in ("disable", "hidden"):
            if key in agent and not isinstance(agent[key], bool):
                report.error((*path, key), f"{owner}: {key} must be true or false, got {agent[key]!r}")
        if "color" in agent and not (isinstance(agent["color"], str) and _COLOR.match(agent["color"])):
            report.error((*path, "color"), f"{owner}: color must be a hex color like #FF5733")
        description = agent.get("description")
        custom = name not in BUILTIN_PRIMARY | BUILTIN_OTHER
        if custom and not agent.get("disable") and not (isinstance(description, str) and description.strip()):
            report.error(
                path, f"{owner}: a custom agent needs a description (OpenCode shows it to pick the agent)"
            )

    def _provider_block(self, report: LocatedProblems, doc: dict[str, Any]) -> None:
        """`provider` is an object of provider objects; the provider lists are lists of ids."""
        providers = doc.get("provider", {})
        if not isinstance(providers, dict):
            report.error(("provider",), f"must be an object of providers, got {show(providers)}")
            providers = {}
        for provider_id, entry in providers.items():
            where: JsonPath = ("provider", provider_id)
            if not isinstance(entry, dict):
                report.error(where, f"provider {provider_id}: must be an object, got {show(entry)}")
                continue
            models = entry.get("models", {})
            if not isinstance(models, dict):
                report.error(
                    (*where, "models"), f"provider {provider_id}: models must be an object of models"
                )
                continue
            for model_id, model in models.items():
                if not isinstance(model, dict):
                    report.error(
                        (*where, "models", model_id),
                        f"provider {provider_id}: model {model_id} must be an object, got {show(model)}",
                    )
        for key in ("disabled_providers", "enabled_providers"):
            listed = doc.get(key, [])
            if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
                report.error((key,), f"must be a list of provider ids, got {show(listed)}")

    def _providers(self, report: LocatedProblems, doc: dict[str, Any], agents: dict[str, Any]) -> None:
        """A model whose provider OpenCode will not load fails at the first call: say so now."""
        disabled, enabled = doc.get("disabled_providers"), doc.get("enabled_providers")
        uses: list[tuple[JsonPath, str, Any]] = [((k,), k, doc.get(k)) for k in ("model", "small_model")]
        uses += [
            (("agent", n, "model"), f"agent {n}", a.get("model"))
            for n, a in agents.items()
            if isinstance(a, dict)
        ]
        for path, owner, model in uses:
            if not isinstance(model, str) or "/" not in model:
                continue
            provider = model.split("/", 1)[0]
            if isinstance(disabled, list) and provider in disabled:
                report.error(path, f"{owner}: provider {provider} of {model} is in disabled_providers")
            elif isinstance(enabled, list) and provider not in enabled:
                report.error(path, f"{owner}: provider {provider} of {model} is not in enabled_providers")

    def assignment(self, doc: Any) -> dict[str, dict[str, float]]:
        """Return agent -> {model: share} ('*' is the top-level default model)."""
        out: dict[str, dict[str, float]] = {}
        if not isinstance(doc, dict):
            return out
        if isinstance(doc.get("model"), str):
            out["*"] = {doc["model"]: 1.0}
        agents = doc.get("agent")
        for name, agent in (agents or {}).items() if isinstance(agents, dict) else ():
            if isinstance(agent, dict) and isinstance(agent.get("model"), str):
                out[name] = {agent["model"]: 1.0}
        return out

    def _default_agent(self, report: LocatedProblems, value: Any, agents: dict[str, Any]) -> None:
        path: JsonPath = ("default_agent",)
        if not isinstance(value, str):
            report.error(path, f"must be an agent name, got {value!r}")
            return
        agent = agents.get(value)
        if isinstance(agent, dict):
            mode = agent.get("mode", "primary" if value in BUILTIN_PRIMARY else "all")
            if mode == "subagent":
                report.error(path, f"default agent {value} is a subagent; it must be a primary agent")
            if agent.get("disable") is True:
                report.error(path, f"default agent {value} is disabled")
        elif value in BUILTIN_OTHER:
            report.error(path, f"default agent {value} is not a primary agent")
        elif value not in BUILTIN_PRIMARY:
            report.error(
                path,
                f"default agent {show(value)} names no agent (none of this file's agents, "
                f"nor OpenCode's built-in {', '.join(sorted(BUILTIN_PRIMARY))})",
            )


KIND = OPENCODE = OpenCodeKind()
