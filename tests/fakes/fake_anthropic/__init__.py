"""A fake Anthropic Messages API on a real socket, faithful to the wire format, broken on command.

For what only fails over a real connection and in Anthropic's own shapes: the Anthropic adapter,
its SSE translation, its error mapping. It serves ``POST /v1/messages`` (whole, or streamed as
named events: ``message_start``, ``content_block_start``, ``ping``, ``content_block_delta``,
``content_block_stop``, ``message_delta``, ``message_stop``) and ``GET /v1/models``, checks
``x-api-key`` and ``anthropic-version``, rejects malformed requests as Anthropic does (extra
fields, a ``system`` role, unpaired ``tool_use``/``tool_result``, a missing ``max_tokens``), and
records every request it receives. It also serves Claude as Vertex AI does, at the model's
``:rawPredict`` and ``:streamRawPredict`` paths, with a bearer token and Google's error shape
(see `server`)::

    async with FakeAnthropic() as fake:
        fake.enqueue(Fault.overloaded(), Fault("cut", after_chunks=5))
        deployment = Deployment(..., provider="anthropic", base_url=fake.url)

Answers follow the conformance suite's conventions (see `answers`). Faults are consumed one per
request, oldest first; `set_default` gives one to every request the queue leaves alone; their
kinds are described in `faults`. Anthropic has no content-policy HTTP status: its documented
refusal is a 200 answer with ``stop_reason: "refusal"`` (`Fault.refused`); the 400 "Output
blocked by content filtering policy" seen in the wild is `Fault.content_filtered`.

The modules: `faults` (the `Fault` type and its presets), `validation` (what a request must look
like), `answers` (the Message and its events), `sending` (writing them, broken as the fault
says) and `server` (the aiohttp app, `FakeAnthropic` and the rate-limit headers). What every fake
shares (the socket, the fault queue, the record of requests, breaking an answer) is
`fakes.fake_server`'s.
"""

from fakes.fake_anthropic.faults import FAULT_KINDS as FAULT_KINDS
from fakes.fake_anthropic.faults import Fault, FaultKind
from fakes.fake_anthropic.sending import MALFORMED_EVENT as MALFORMED_EVENT
from fakes.fake_anthropic.server import FakeAnthropic, RateLimits
from fakes.fake_server.server import ReceivedRequest

__all__ = ["FakeAnthropic", "Fault", "FaultKind", "RateLimits", "ReceivedRequest"]
