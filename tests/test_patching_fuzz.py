"""jsonc_edit.rewrite over generated documents, comments and merge patches: the edited text always
parses to the patched document, and the comments of members the patch leaves alone stay."""

from __future__ import annotations

import copy
import json
from typing import Any

import json_merge_patch
from hypothesis import given, settings
from hypothesis import strategies as st

from rollout.configkinds import jsonc_edit
from rollout.configkinds.jsonc import load_jsonc

KEYS = st.sampled_from(["a", "b", "model", "agent", "x y", "é", "build", "z"])
SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.text('ab"\\/', max_size=4)
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
PATCHES = st.recursive(
    SCALARS | st.lists(SCALARS, max_size=2),
    lambda inner: st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)


def _commented(doc: dict[str, Any], indent: int | str, crlf: bool) -> str:
    """The document as a person writes it: indented, a comment after every line that allows one."""
    lines = json.dumps(doc, indent=indent, ensure_ascii=False).splitlines()
    out = [
        line + (f" // note {n}" if n % 2 and not line.rstrip().endswith(("{", "[")) else "")
        for n, line in enumerate(lines)
    ]
    newline = "\r\n" if crlf else "\n"
    return newline.join(out) + newline


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS, DOCS, max_size=5), PATCHES, st.sampled_from([2, 4, "\t"]), st.booleans())
def test_rewrite_gives_the_patched_document(
    doc: dict[str, Any], patch: Any, indent: int | str, crlf: bool
) -> None:
    text = _commented(doc, indent, crlf)
    assert load_jsonc(text.encode())[0] == doc
    new = json_merge_patch.merge(copy.deepcopy(doc), copy.deepcopy(patch))
    edited = jsonc_edit.rewrite(text, doc, new)
    assert edited is not None
    assert load_jsonc(edited.encode())[0] == new
    if isinstance(new, dict) and list(new)[: len(doc)] == list(doc) and all(new[k] == doc[k] for k in doc):
        # only keys added: every comment is still there
        assert all(
            f"// note {n}" in edited for n in range(1, len(text.splitlines()), 2) if f"// note {n}" in text
        )
    if crlf:
        assert "\n" not in edited.replace("\r\n", "")
