"""msgspec's decoder of one usage line: the checks of `record_from_json`, done in C.

Imported only when msgspec is installed (`calls.typed_decoder`). A line this refuses is not
necessarily bad: it goes through the plain path, which decides and says why.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

NonNegative = Annotated[float, msgspec.Meta(ge=0)]
Tokens = Annotated[int, msgspec.Meta(ge=0, lt=2**53)]  # sums of these are exact as floats


class UsageLine(msgspec.Struct):
    """The fields of a usage record a gate reads; unknown fields are ignored."""

    ts: datetime | NonNegative
    duration_s: NonNegative
    outcome: Literal["success", "error", "rate_limited", "timeout"]
    cost_usd: NonNegative = 0.0
    failover: bool = False
    input_tokens: Tokens = msgspec.field(name="gen_ai.usage.input_tokens", default=0)
    output_tokens: Tokens = msgspec.field(name="gen_ai.usage.output_tokens", default=0)
    agent: str | None = msgspec.field(name="gen_ai.agent.name", default=None)
    model: str | None = msgspec.field(name="gen_ai.request.model", default=None)


DECODER = msgspec.json.Decoder(UsageLine)
