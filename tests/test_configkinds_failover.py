"""Kinds with failover chains (oh-my-opencode, LiteLLM): chains, cycles, limits, exact messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rollout import configkinds
from rollout.configkinds.base import ConfigContext

PLAN = Path(__file__).parent.parent / "playbooks" / "model-assignment" / "oh-my-opencode.json"
RUNTIME = {"runtime_fallback": {"enabled": True}}


def check(data: str | dict, kind: str = "oh-my-opencode", source: str = "oh-my-opencode.json") -> list[str]:
    text = data if isinstance(data, str) else json.dumps(data, indent=2)
    ctx = ConfigContext(Path("."), {}, source)
    return [p.render(source) for p in configkinds.check_candidate(text.encode(), kind, ctx)]


def agents(**chains: tuple[str, str | list[Any]]) -> dict[str, Any]:  # fallback_models: an id or a list
    return {**RUNTIME, "agents": {n: {"model": m, "fallback_models": f} for n, (m, f) in chains.items()}}


# --- oh-my-opencode ----------------------------------------------------------------------


def test_the_plans_chains_are_valid():
    assert check(PLAN.read_text()) == []


def test_string_list_and_object_entries_are_accepted():
    doc = agents(
        A=("openai/gpt-5.2", "anthropic/claude-sonnet-4-5"),
        B=(
            "opencode/big-pickle",
            ["openai/gpt-5-mini", {"model": "google/gemini-3-pro-preview", "variant": "high"}],
        ),
        C=("openai/gpt-5-mini", ["anthropic/claude-haiku-4-5(high)"]),
    )
    assert check(doc) == []


def test_jsonc_with_comments_is_accepted():
    text = """{
  // chains
  "runtime_fallback": true,
  "agents": {
    "A": {"model": "openai/gpt-5.2", "fallback_models": ["anthropic/claude-sonnet-4-5",]},
  },
}"""
    assert check(text) == []


def test_self_reference():
    assert check(agents(A=("openai/gpt-5.2", ["anthropic/claude-sonnet-4-5", "openai/gpt-5.2"]))) == [
        "oh-my-opencode.json:10: agents.A.fallback_models[1]: agent A falls back to its own primary "
        "openai/gpt-5.2"
    ]


def test_bare_fallback_inherits_the_primary_provider():
    assert check(agents(A=("openai/gpt-5.2", ["anthropic/claude-sonnet-4-5", "gpt-5.2"]))) == [
        "oh-my-opencode.json:10: agents.A.fallback_models[1]: agent A falls back to its own primary "
        "openai/gpt-5.2"
    ]


def test_duplicate_entry():
    doc = agents(A=("openai/gpt-5.2", ["google/gemini-3-pro-preview", "anthropic/claude-sonnet-4-5",
                                        "google/gemini-3-pro-preview"]))  # fmt: skip
    assert check(doc) == [
        "oh-my-opencode.json:11: agents.A.fallback_models[2]: agent A lists google/gemini-3-pro-preview "
        "twice (entries 1 and 3)"
    ]


def test_cycle_across_agents():
    doc = agents(
        A=("openai/gpt-5.2", ["anthropic/claude-sonnet-4-5"]),
        B=("anthropic/claude-sonnet-4-5", ["google/gemini-3-pro-preview", "openai/gpt-5.2"]),
    )
    assert check(doc) == [
        "oh-my-opencode.json:14: agents.B.fallback_models: fallback cycle anthropic/claude-sonnet-4-5 -> "
        "google/gemini-3-pro-preview -> openai/gpt-5.2 -> anthropic/claude-sonnet-4-5 "
        "(through agent A, agent B)"
    ]


def test_unknown_model_with_closest():
    assert check(agents(A=("openai/gpt-5.2", ["anthropic/claude-sonet-4-5"]))) == [
        "oh-my-opencode.json:9: agents.A.fallback_models[0]: agent A: unknown model "
        "anthropic/claude-sonet-4-5 (closest known: anthropic/claude-sonnet-4-5)"
    ]


def test_too_long_chain_and_runtime_attempts():
    chain = ["openai/gpt-5-mini", "openai/gpt-5", "anthropic/claude-sonnet-4-5", "anthropic/claude-haiku-4-5",
             "google/gemini-2.0-flash", "google/gemini-3-pro-preview"]  # fmt: skip
    doc = agents(A=("opencode/big-pickle", chain))
    doc["runtime_fallback"]["max_fallback_attempts"] = 3
    assert check(doc) == [
        "oh-my-opencode.json:9: agents.A.fallback_models: agent A has 6 fallbacks; at most 5 are allowed",
        "oh-my-opencode.json:9: warning: agents.A.fallback_models: agent A has 6 fallbacks but "
        "runtime_fallback.max_fallback_attempts is 3: the rest are never tried",
    ]


def test_single_provider_chain_is_a_warning():
    assert check(agents(A=("openai/gpt-5.2", ["openai/gpt-5-mini"]))) == [
        "oh-my-opencode.json:9: warning: agents.A.fallback_models: agent A: the whole chain is on "
        "provider 'openai' (one outage or rate limit stops every step)"
    ]


def test_temperature_above_two_is_an_error():
    doc = {"agents": {"A": {"model": "openai/gpt-5.2", "temperature": 3}}}
    assert check(doc) == [
        "oh-my-opencode.json:5: agents.A.temperature: agent A: temperature 3 is outside 0-2"
    ]


def test_chains_without_runtime_fallback_warn_once():
    doc = {"agents": {"A": {"model": "openai/gpt-5.2", "fallback_models": "anthropic/claude-sonnet-4-5"}}}
    assert check(doc) == [
        "oh-my-opencode.json:1: warning: runtime_fallback: fallback_models are set but runtime_fallback "
        "is not enabled: chains are not tried on API errors (429, 5xx)"
    ]


def test_runtime_fallback_fields():
    doc = {"runtime_fallback": {"enabled": "yes", "retry_on_errors": [429, 1000], "max_fallback_attempts": 50,
                                "cooldown": 1}}  # fmt: skip
    assert check(doc) == [
        "oh-my-opencode.json:3: runtime_fallback.enabled: must be true or false, got 'yes'",
        "oh-my-opencode.json:4: runtime_fallback.retry_on_errors: must be a list of HTTP status codes, "
        "got [429, 1000]",
        "oh-my-opencode.json:8: runtime_fallback.max_fallback_attempts: must be a number from 1 to 20, got "
        "50",
        "oh-my-opencode.json:9: warning: runtime_fallback.cooldown: unknown runtime_fallback key 'cooldown'",
    ]


def test_bad_fallback_shapes():
    bad_a = {"model": "openai/gpt-5.2", "fallback_models": 5}
    bad_b = {"model": "openai/gpt-5.2", "fallback_models": [{"variant": "high"}]}
    doc = {**RUNTIME, "agents": {"A": bad_a, "B": bad_b}}
    assert check(doc) == [
        "oh-my-opencode.json:9: agents.A.fallback_models: agent A: fallback_models must be a model id "
        "or a list, got 5",
        "oh-my-opencode.json:14: agents.B.fallback_models[0].model: agent B: a fallback needs a model id, "
        "got None",
    ]


# --- LiteLLM -----------------------------------------------------------------------------

LITELLM = """\
model_list:
  - model_name: cheap
    litellm_params:
      model: google/gemini-2.0-flash
  - model_name: coder
    litellm_params:
      model: openai/gpt-5-mini
      weight: 3
  - model_name: coder
    litellm_params:
      model: anthropic/claude-haiku-4-5
      weight: 1
  - model_name: premium
    litellm_params:
      model: anthropic/claude-sonnet-4-5
router_settings:
  fallbacks: [{"cheap": ["coder", "premium"]}, {"coder": ["premium"]}]
"""


def lite(text: str) -> list[str]:
    return check(text, "litellm", "config.yaml")


def test_litellm_valid_config():
    assert lite(LITELLM) == []


def test_litellm_cycle_between_model_groups():
    text = LITELLM + '  context_window_fallbacks: [{"premium": ["cheap"]}]\n'
    assert lite(text) == [
        "config.yaml:17: router_settings.fallbacks[0].cheap: fallback cycle cheap -> coder -> premium -> "
        "cheap (through model group cheap, model group premium)"
    ]


def test_litellm_self_reference_unknown_group_and_weight():
    text = LITELLM.replace("weight: 1", "weight: -1").replace(
        '{"coder": ["premium"]}', '{"coder": ["coder", "premum"]}'
    )
    assert lite(text) == [
        "config.yaml:12: model_list[2].litellm_params.weight: deployment coder: weight must be a number > 0, "
        "got -1",
        "config.yaml:17: router_settings.fallbacks[1].coder[1]: model group coder falls back to unknown "
        "group 'premum'",
        "config.yaml:17: router_settings.fallbacks[1].coder[0]: model group coder falls back to its own "
        "primary coder",
    ]


def test_litellm_unknown_model_and_unchecked_provider():
    text = LITELLM.replace("google/gemini-2.0-flash", "google/gemini-2.0-flesh").replace(
        "anthropic/claude-sonnet-4-5", "azure/my-sonnet"
    )
    assert lite(text) == [
        "config.yaml:4: model_list[0].litellm_params.model: deployment cheap: unknown model "
        "google/gemini-2.0-flesh (closest known: google/gemini-2.0-flash)",
        "config.yaml:15: warning: model_list[3].litellm_params.model: deployment premium: provider of "
        "azure/my-sonnet is not in the catalog (unchecked)",
    ]


def test_litellm_assignment_shares_by_weight():
    import yaml

    got = configkinds.get("litellm").assignment(yaml.safe_load(LITELLM))  # type: ignore[attr-defined]
    assert got["coder"] == {"openai/gpt-5-mini": 0.75, "anthropic/claude-haiku-4-5": 0.25}
    assert got["cheap"] == {"google/gemini-2.0-flash": 1.0}


def test_litellm_is_checked_only_when_named_in_the_playbook(tmp_path):
    import yaml
    from click.testing import CliRunner

    from rollout.cli import cli

    source = tmp_path / "config.yaml"
    source.write_text(LITELLM + '  context_window_fallbacks: [{"premium": ["cheap"]}]\n')
    config = {"source": "config.yaml", "path": "fleet/{host}/config.yaml"}
    doc = {"name": "gateway", "config": config, "targets": {"transport": "local", "hosts": ["gw-1"]}}
    (tmp_path / "pb.yml").write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "pb.yml")])
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith("candidate yaml\n")
    doc["config"]["kind"] = "litellm"
    (tmp_path / "pb.yml").write_text(yaml.safe_dump(doc))
    result = CliRunner().invoke(cli, ["validate", str(tmp_path / "pb.yml")])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: {source}: the candidate config (litellm) is invalid: 1 error(s)\n"
        f"  {source}:17: router_settings.fallbacks[0].cheap: fallback cycle cheap -> coder -> premium -> "
        "cheap (through model group cheap, model group premium)\n"
    )
