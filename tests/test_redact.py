"""Redaction: one test per secret shape, keys that are and are not secrets, and linear time."""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rollout.checks.http import KIND as http_kind
from rollout.util.errors import BadInput
from rollout.util.redact import (
    MASK,
    MASK_CHANGED,
    TOKEN_SHAPES,
    is_secret_key,
    redact,
    redact_pair,
    redact_text,
)
from tests.conftest import make_fleet
from tests.prometheus import free_port
from tests.test_gates_metric import context, make_playbook

# (text, the secret that must go, what must stay)
TEXT_CASES = [
    ("https://bob:hunter2@db/x", "hunter2", "https://bob:"),
    ("postgresql://app:p@ss@db:5432/main", "p@ss", "@db:5432/main"),
    ("password='p w d' then", "w d", "then"),
    ('password="p w d" then', "w d", "then"),
    ('"password": "say \\"hi\\" now"', "now", '"password": "'),
    ("--password=hunter2 --user bob", "hunter2", "--user bob"),
    ("export GITHUB_TOKEN=abc123secret", "abc123secret", "export GITHUB_TOKEN="),
    ("master_key: mk-123", "mk-123", "master_key:"),
    ("tokens: t-123", "t-123", "tokens:"),
    ("credentials=c-123", "c-123", "credentials="),
    ("private_key: pk-123", "pk-123", "private_key:"),
    ("access_key = ak-123", "ak-123", "access_key"),
    ('{"key": "k-123", "model": "gpt"}', "k-123", '"model": "gpt"'),
    ('{"apiKeys": ["a-1", "a-2"], "model": "gpt"}', "a-2", '"model": "gpt"'),
    ('{"credentials": {"value": "v-1"}, "n": 1}', "v-1", '"n": 1'),
    ("apiKeys:\n  - a-1\n  - a-2\nmodel: gpt\n", "a-2", "model: gpt"),
    ("credentials:\n  value: v-1\nmodel: gpt\n", "v-1", "model: gpt"),
    ("- credentials:\n    value: v-1\n  name: n-1\n", "v-1", "name: n-1"),
    ("password: |\n  line-1\n  line-2\nmodel: gpt\n", "line-2", "model: gpt"),
    ("Authorization: Bearer abcdefgh.ijklmnop", "ijklmnop", "Authorization:"),
    ("curl -H 'Bearer abcdefgh12345678' x", "abcdefgh12345678", "curl -H"),
    ("x=password=hunter2", "hunter2", "x=password="),
    ("?api_key=k123&model=gpt", "k123", "&model=gpt"),
    ("slack: xoxp-1234567890-abcdefghij", "xoxp-1234567890-abcdefghij", "slack:"),
]

# one bare token of each shape in TOKEN_SHAPES, as a check might print it
SHAPE_SAMPLES = {
    "anthropic": "sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345",
    "openai": "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
    "stripe": "sk_live_abcdefghijklmnop1234",
    "github": "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
    "github-pat": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
    "gitlab": "glpat-abcdefghijklmnopqrst",
    "slack": "xoxb-1234567890-0987654321-abcdefghijklmnop",
    "huggingface": "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH",
    "aws-access-key-id": "AKIAIOSFODNN7EXAMPLE",
    "google-api-key": "AIzaSyA-1234567890abcdefghijklmnopqrstu",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
}


@pytest.mark.parametrize(("text", "secret", "kept"), TEXT_CASES)
def test_text_secret_is_masked(text: str, secret: str, kept: str) -> None:
    out = redact_text(text)
    assert secret not in out
    assert MASK in out
    assert kept in out


def test_every_token_shape_has_a_sample() -> None:
    assert sorted(SHAPE_SAMPLES) == sorted(name for name, _ in TOKEN_SHAPES)


@pytest.mark.parametrize("name", sorted(SHAPE_SAMPLES))
def test_token_shape_is_masked_anywhere(name: str) -> None:
    token = SHAPE_SAMPLES[name]
    for text in (token, f"ok {token}\n", f"value={token}", f'"{token}"', f"note: {token}, done"):
        out = redact_text(text)
        assert token not in out, text
        assert MASK in out
    assert redact({"model": token}) == {"model": MASK}
    assert redact([f"x {token}"]) == [f"x {MASK}"]


@pytest.mark.parametrize(
    "key",
    [
        "apiKey",
        "api_key",
        "API_KEY",
        "apiKeys",
        "x-api-key",
        "token",
        "tokens",
        "access_token",
        "githubToken",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "pwd",
        "authorization",
        "credentials",
        "private_key",
        "privateKey",
        "master_key",
        "access_key",
        "key",
        "ssh_key",
        "cookie",
    ],
)
def test_secret_keys(key: str) -> None:
    assert is_secret_key(key)


@pytest.mark.parametrize(
    "key",
    [
        "model",
        "max_tokens",
        "maxTokens",
        "max_output_tokens",
        "input_tokens",
        "budget_tokens",
        "token_limit",
        "tokenizer",
        "public_key",
        "monkey",
        "keybinds",
        "temperature",
    ],
)
def test_not_secret_keys(key: str) -> None:
    assert not is_secret_key(key)
    assert redact({key: "plain-value"}) == {key: "plain-value"}


def test_values_under_a_secret_key_are_masked_however_nested() -> None:
    doc = {
        "apiKeys": ["a-1", "a-2"],
        "credentials": {"value": "v-1", "port": 5432, "enabled": True},
        "password": 123456,
        "max_tokens": 4096,
        "provider": {"x": {"options": {"apiKey": "k", "baseURL": "https://u:p-1@h/v1"}}},
    }
    assert redact(doc) == {
        "apiKeys": [MASK, MASK],
        "credentials": {"value": MASK, "port": MASK, "enabled": True},
        "password": MASK,
        "max_tokens": 4096,
        "provider": {"x": {"options": {"apiKey": MASK, "baseURL": f"https://u:{MASK}@h/v1"}}},
    }


def test_a_changed_secret_in_a_list_shows_as_changed() -> None:
    old = {"apiKeys": ["a-1", "a-2"], "credentials": {"value": "v-1"}, "password": "p"}
    new = {"apiKeys": ["a-1", "a-3"], "credentials": {"value": "v-1"}, "password": "q"}
    a, b = redact_pair(old, new)
    assert a == {"apiKeys": [MASK, MASK], "credentials": {"value": MASK}, "password": MASK}
    assert b == {"apiKeys": [MASK, MASK_CHANGED], "credentials": {"value": MASK}, "password": MASK_CHANGED}
    a, b = redact_pair({"apiKeys": ["a-1"]}, {"apiKeys": ["a-1", "b-1"]})
    assert (a, b) == ({"apiKeys": [MASK]}, {"apiKeys": [MASK_CHANGED, MASK_CHANGED]})


def test_a_secret_copied_under_an_ordinary_key_is_masked_in_the_diff() -> None:
    from rollout.core.diffing import diff_one

    old = json.dumps({"apiKey": "no-shape-secret-1", "model": "a"}).encode()
    new = json.dumps({"apiKey": "no-shape-secret-1", "model": "b", "note": "copy no-shape-secret-1"}).encode()
    as_json, text = diff_one(old, new, "json")
    assert "no-shape-secret-1" not in json.dumps(as_json) + text
    assert f"copy {MASK}" in json.dumps(as_json)


def test_redaction_is_idempotent_and_leaves_plain_text() -> None:
    text = "model: gpt-5\nmax_tokens: 4096\nurl: https://example.com/x\n"
    assert redact_text(text) == text
    once = redact_text("token=abc password='p w' https://u:p@h/")
    assert redact_text(once) == once


@pytest.mark.parametrize(
    "text",
    [
        "sk-" + "a" * 5_000_000,
        "token=" + "a" * 5_000_000,
        "A" * 5_000_000,
        'password="' + "a" * 5_000_000,
        "a-" * 2_500_000,
        "https://" + "a" * 5_000_000,
        "eyJ" + "a" * 5_000_000 + ".",
        'password: ["' + "a" * 5_000_000,
    ],
    ids=["sk", "key-value", "bare", "open-quote", "dashes", "url", "jwt-prefix", "open-bracket"],
)
def test_a_5mb_token_redacts_in_one_pass(text: str) -> None:
    # Quadratic redaction never finished on 5 MB (146 s on 40 KB): this would hang, not fail.
    out = redact_text(text)
    assert len(out) <= len(text) + len(MASK)


# --- secrets a check prints or a probe carries, end to end ---


def test_a_check_printing_bare_tokens_leaks_them_nowhere(tmp_path: Path) -> None:
    leaked = [SHAPE_SAMPLES["openai"], SHAPE_SAMPLES["github"], SHAPE_SAMPLES["aws-access-key-id"]]
    # The last line is longer than the tail a measurement keeps: the tail starts at `word: cut-...`.
    script = "; ".join(
        [
            'echo "password=hunter2-secret"',
            *(f"echo {t}" for t in leaked),
            "python3 -c \"print('password: cut-secret-' + 'y' * 1985)\"",
            "exit 1",
        ]
    )
    fleet = make_fleet(tmp_path, checks=[{"name": "leaky", "run": script}])
    outputs = [fleet.cli("start", str(fleet.playbook))]
    assert outputs[0].exit_code == 3, outputs[0].output
    outputs += [fleet.cli(*verb) for verb in (["history"], ["status"], ["status", "--json"])]
    secrets = [*leaked, "hunter2-secret", "cut-secret"]
    folder = fleet.rollout_dir()
    seen = 0
    for name in ("events.jsonl", "state.json"):
        text = (folder / name).read_text()
        assert not [s for s in secrets if s in text], name
        seen += text.count(MASK)
    assert seen > 0
    for result in outputs:
        assert not [s for s in secrets if s in result.output]


def test_a_check_printing_a_secret_of_the_config_bare_leaks_it_nowhere(tmp_path: Path) -> None:
    # No known shape and no key in the output: only knowing the config's secrets can mask it.
    read = "import json,os; d=json.load(open(os.environ['ROLLOUT_CONFIG_PATH']))"
    show = "print(d['provider']['openai']['options']['apiKey'], d['provider']['openai']['password'])"
    check = {"name": "prints-key", "run": f'python3 -c "{read}; {show}"; exit 1'}
    fleet = make_fleet(tmp_path, checks=[check])
    doc = json.loads(fleet.candidate)
    doc["provider"]["openai"]["options"]["apiKey"] = "plain-words-no-shape"
    doc["provider"]["openai"]["password"] = 12345678
    (fleet.root / "candidate.json").write_text(json.dumps(doc))
    result = fleet.cli("start", str(fleet.playbook))
    assert result.exit_code == 3, result.output
    status = fleet.cli("status", "--json")
    for text in (
        result.output,
        status.output,
        (fleet.rollout_dir() / "events.jsonl").read_text(),
        (fleet.rollout_dir() / "state.json").read_text(),
    ):
        assert "plain-words-no-shape" not in text and "12345678" not in text
    assert MASK in (fleet.rollout_dir() / "state.json").read_text()


@pytest.fixture(name="auth_server")
def auth_server_fixture() -> Iterator[tuple[str, list[str | None]]]:
    seen: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.headers.get("Authorization"))
            body = json.dumps({"status": "ok", "token": "ghp_abcdefghijklmnopqrstuvwxyz0123456789"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"127.0.0.1:{srv.server_address[1]}", seen
    srv.shutdown()
    srv.server_close()


def test_http_check_sends_url_credentials_as_basic_auth_and_never_shows_them(
    tmp_path: Path, auth_server: tuple[str, list[str | None]]
) -> None:
    hostport, seen = auth_server
    spec: dict[str, Any] = {"name": "probe", "http": f"http://bob:hunter2@{hostport}/health", "on": "local"}
    spec["json"] = {"status": "ok", "token": "ghp_abcdefghijklmnopqrstuvwxyz0123456789"}
    pb = make_playbook(tmp_path, [spec])
    check = pb.health.checks[0]
    (m,) = http_kind.evaluate(check, context(pb))
    assert m.outcome == "pass", m.why
    assert seen == ["Basic " + base64.b64encode(b"bob:hunter2").decode()]
    assert m.details["url"] == f"http://bob:{MASK}@{hostport}/health"
    assert "hunter2" not in json.dumps(m.to_json())
    # The token it compared is masked once the gate redacts the measurement (gate.measure).
    assert "ghp_" not in redact_text(m.why) and "ghp_" not in json.dumps(redact(m.details))

    down = {"name": "probe", "http": f"http://bob:hunter2@127.0.0.1:{free_port()}/x", "on": "local"}
    pb = make_playbook(tmp_path, [down])
    (m,) = http_kind.evaluate(pb.health.checks[0], context(pb))
    assert m.outcome == "error"
    assert "hunter2" not in json.dumps(m.to_json()), m.why


def test_a_bad_http_url_is_refused_without_its_password(tmp_path: Path) -> None:
    with pytest.raises(BadInput) as e:
        make_playbook(tmp_path, [{"name": "probe", "http": "ftp://bob:hunter2@db/x"}])
    assert "hunter2" not in str(e.value) and MASK in str(e.value)
