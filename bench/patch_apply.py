"""What computing one host's candidate costs: apply_patch on realistic files, per kind and format.

Prints the median time per host over --repeat runs (after one warm-up), for an OpenCode JSONC file
with comments (merge patch and json-patch), a LiteLLM config.yaml (json-patch on one weight) and a
Codex config.toml (merge patch).

    python bench/patch_apply.py --repeat 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from rollout.core.patching import apply_patch

OPENCODE = (
    b"{\n  // personal settings\n"
    + b'  "$schema": "https://opencode.ai/config.json",\n'
    + b'  "provider": {"corp": {"options": {"baseURL": "https://llm.example/v1"}}},\n'
    + b'  "mcp": {\n'
    + b"".join(
        b'    "srv%d": {"type": "local", "command": ["npx", "srv%d"]}, // server %d\n' % (i, i, i)
        for i in range(40)
    )
    + b'    "last": {"type": "remote", "url": "https://mcp.example"}\n  },\n'
    + b'  "agent": {\n    "build": {"model": "anthropic/claude-sonnet-4-5", "temperature": 0.1}\n  }\n}\n'
)
LITELLM = b"# proxy\nmodel_list:\n" + b"".join(
    b"  - model_name: group%d   # group %d\n    litellm_params:\n      model: openai/gpt-4o-mini\n      weight: 1\n"
    % (i, i)
    for i in range(40)
)
CODEX = b'# codex\nmodel = "o3"  # main\n' + b"".join(
    b'\n[profiles.p%d]\nmodel = "gpt-4o"\n' % i for i in range(40)
)
CASES = [
    ("opencode", "merge", OPENCODE, json.dumps({"agent": {"build": {"model": "openai/gpt-5.2"}}}).encode()),
    (
        "opencode",
        "json-patch",
        OPENCODE,
        b'[{"op": "replace", "path": "/agent/build/model", "value": "a/b"}]',
    ),
    (
        "litellm",
        "json-patch",
        LITELLM,
        b'[{"op": "replace", "path": "/model_list/3/litellm_params/weight", "value": 5}]',
    ),
    ("toml", "merge", CODEX, b'{"model": "gpt-5", "profiles": {"p3": {"model": "gpt-5-mini"}}}'),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    for kind, fmt, base, patch in CASES:
        apply_patch(base, patch, fmt, kind, where="bench")
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            apply_patch(base, patch, fmt, kind, where="bench")
            times.append(time.perf_counter() - start)
        print(
            f"{kind:9} {fmt:10} {len(base):6} bytes: {statistics.median(times) * 1000:7.2f} ms per host (median of {args.repeat})"
        )


if __name__ == "__main__":
    main()
