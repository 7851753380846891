"""OpenCode's opencode.json: valid configs pass, each broken one fails with its exact message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rollout import configkinds
from rollout.configkinds.base import ConfigContext

PLAN = Path(__file__).parent.parent / "playbooks" / "model-assignment" / "opencode.json"


def check(text: str | dict, **options) -> list[str]:
    data = text if isinstance(text, str) else json.dumps(text, indent=2)
    ctx = ConfigContext(Path("."), options, "opencode.json")
    problems = configkinds.check_candidate(data.encode(), "opencode", ctx)
    return [p.render("opencode.json") for p in problems]


def test_the_plans_assignment_is_valid():
    assert check(PLAN.read_text()) == []


def test_minimal_and_builtin_agents_need_no_description():
    assert check({"model": "anthropic/claude-sonnet-4-5", "agent": {"build": {"temperature": 0.1}}}) == []


def test_jsonc_with_comments_is_accepted():
    text = """{
  // the plan's coder
  "agent": {
    "CoderAgent": {
      "description": "codes", /* free tier */
      "model": "opencode/big-pickle",
      "temperature": 0.0,
    },
  },
}"""
    assert check(text) == []


def test_unknown_top_level_key_is_an_error_with_a_suggestion():
    text = '{\n  "agents": {},\n  "fallbacks": {}\n}'
    assert check(text) == [
        "opencode.json:2: agents: unknown top-level key 'agents' (OpenCode refuses the file; did you mean "
        "'agent'?)",
        "opencode.json:3: fallbacks: unknown top-level key 'fallbacks' (OpenCode refuses the file)",
    ]


def test_unknown_agent_key_is_a_warning():
    text = '{\n  "agent": {\n    "build": {\n      "fallback_models": ["openai/gpt-5-mini"]\n    }\n  }\n}'
    assert check(text) == [
        "opencode.json:4: warning: agent.build.fallback_models: agent build: unknown agent key "
        "'fallback_models' (OpenCode passes it to the provider as an option)"
    ]


def test_unknown_model_names_agent_model_and_closest_id():
    assert check({"agent": {"build": {"model": "openai/gpt-5-2"}}}) == [
        "opencode.json:4: agent.build.model: agent build: unknown model openai/gpt-5-2 "
        "(closest known: openai/gpt-5.2)"
    ]
    assert check({"small_model": "gpt-5-mini"}) == [
        "opencode.json:2: small_model: small_model: model must be 'provider/model', got 'gpt-5-mini'"
    ]


def test_temperature_rules():
    agents = {
        "build": {"temperature": 3},
        "plan": {"temperature": 1.5},
        "general": {"temperature": "hot"},
        "explore": {"temperature": -0.1},
    }
    assert check({"agent": agents}) == [
        "opencode.json:4: agent.build.temperature: agent build: temperature 3 is outside 0-2",
        "opencode.json:7: warning: agent.plan.temperature: agent plan: temperature 1.5 is above 1 "
        "(risky for coding agents)",
        "opencode.json:10: agent.general.temperature: agent general: temperature must be a finite "
        "number, got 'hot'",
        "opencode.json:13: agent.explore.temperature: agent explore: temperature -0.1 is outside 0-2",
    ]


def test_top_p_mode_steps_color():
    agent = {"top_p": 1.2, "mode": "boss", "steps": 0, "color": "red", "disable": "no"}
    assert check({"agent": {"build": agent}}) == [
        "opencode.json:4: agent.build.top_p: agent build: top_p must be a number from 0 to 1, got 1.2",
        "opencode.json:5: agent.build.mode: agent build: mode must be one of subagent, primary, all, "
        "got 'boss'",
        "opencode.json:6: agent.build.steps: agent build: steps must be a whole number >= 1, got 0",
        "opencode.json:7: agent.build.color: agent build: color must be a hex color like #FF5733",
        "opencode.json:8: agent.build.disable: agent build: disable must be true or false, got 'no'",
    ]


def test_custom_agent_needs_a_description():
    assert check({"agent": {"Reviewer": {"model": "openai/gpt-5.2"}}}) == [
        "opencode.json:3: agent.Reviewer: agent Reviewer: a custom agent needs a description "
        "(OpenCode shows it to pick the agent)"
    ]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"default_agent": "build"}, []),
        ({"default_agent": "A", "agent": {"A": {"description": "d"}}}, []),
        (
            {"default_agent": "A", "agent": {"A": {"description": "d", "mode": "subagent"}}},
            ["opencode.json:2: default_agent: default agent A is a subagent; it must be a primary agent"],
        ),
        (
            {"default_agent": "explore"},
            ["opencode.json:2: default_agent: default agent explore is not a primary agent"],
        ),
        (
            {"default_agent": "Ghost"},
            [  # an error since issue 18: a default naming no agent is a broken assignment
                "opencode.json:2: default_agent: default agent 'Ghost' names no agent (none of this "
                "file's agents, nor OpenCode's built-in build, plan)"
            ],
        ),
    ],
)
def test_default_agent_must_be_primary(doc, expected):
    assert check(doc) == expected


def test_custom_provider_models_are_known():
    doc = {
        "provider": {"ollama": {"models": {"qwen3:8b": {"name": "Qwen3 8B"}}}},
        "agent": {"build": {"model": "ollama/qwen3:8b"}},
    }
    assert check(doc) == []


def test_models_of_disabled_or_not_enabled_providers():
    doc = {"disabled_providers": ["openai"], "agent": {"build": {"model": "openai/gpt-5.2"}}}
    assert check(doc) == [
        "opencode.json:7: agent.build.model: agent build: provider openai of openai/gpt-5.2 is in "
        "disabled_providers"
    ]
    doc = {"enabled_providers": ["anthropic"], "small_model": "google/gemini-2.0-flash-lite"}
    assert check(doc) == [
        "opencode.json:5: small_model: small_model: provider google of google/gemini-2.0-flash-lite is not "
        "in enabled_providers"
    ]


def test_all_problems_at_once_in_file_order():
    text = (
        '{\n  "theme": "x",\n  "agentz": 1,\n  "agent": {\n    "build": {\n'
        '      "model": "openai/gpt-5.3",\n      "temperature": 3\n    }\n  }\n}'
    )
    assert check(text) == [
        "opencode.json:3: agentz: unknown top-level key 'agentz' (OpenCode refuses the file; "
        "did you mean 'agent'?)",
        "opencode.json:6: agent.build.model: agent build: unknown model openai/gpt-5.3 "
        "(closest known: openai/gpt-5.2)",
        "opencode.json:7: agent.build.temperature: agent build: temperature 3 is outside 0-2",
    ]


def test_root_must_be_an_object():
    assert check("[1]") == ["opencode.json:1: an OpenCode config must be a JSON object"]


def test_assignment_lists_agents_and_default():
    doc = json.loads(PLAN.read_text())
    got = configkinds.get("opencode").assignment(doc)  # type: ignore[attr-defined]
    assert got["*"] == {"openai/gpt-5.2": 1.0}
    assert got["CoderAgent"] == {"opencode/big-pickle": 1.0}
    assert got["ContextScout"] == {"google/gemini-2.0-flash-lite": 1.0}
    assert len(got) == 14


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"provider": []}, ["opencode.json:2: provider: must be an object of providers, got []"]),
        (
            {"provider": {"x": "y"}},
            ["opencode.json:3: provider.x: provider x: must be an object, got 'y'"],
        ),
        (
            {"provider": {"x": {"models": ["m"]}}},
            ["opencode.json:4: provider.x.models: provider x: models must be an object of models"],
        ),
        (
            {"provider": {"x": {"models": {"m": 1}}}},
            ["opencode.json:5: provider.x.models.m: provider x: model m must be an object, got 1"],
        ),
        (
            {"disabled_providers": "openai"},
            ["opencode.json:2: disabled_providers: must be a list of provider ids, got 'openai'"],
        ),
        (
            {"enabled_providers": ["openai", 3]},
            ["opencode.json:2: enabled_providers: must be a list of provider ids, got ['openai', 3]"],
        ),
        ({"disabled_providers": ["openai"], "provider": {"x": {"models": {"m": {}}}}}, []),
    ],
)
def test_provider_block_and_provider_lists_have_their_shapes(doc, expected):
    assert check(doc) == expected
