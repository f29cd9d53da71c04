"""A fake OpenAI API on a real socket, faithful to the wire format and broken on command.

`SimulatedProvider` exercises routing without sockets; this server is for what only fails over
a real connection: the OpenAI-compatible adapter, the HTTP seam's timeouts and pools, the SSE
parser. It serves ``/v1/chat/completions`` and ``/v1/completions`` (whole or streamed),
``/v1/embeddings`` (floats or base64) and ``/v1/models`` with OpenAI's shapes, headers and
error bodies, and records every request it receives::

    async with FakeOpenAI() as fake:
        fake.enqueue(Fault.rate_limited(retry_after=1), Fault("cut", after_chunks=3))
        client = openai.AsyncOpenAI(base_url=fake.url, api_key="sk-fake")

Answers are deterministic: "Fake answer to: <the last user message>" (or the configured
``reply``), one token per word, cut at ``max_tokens``, as ``n`` identical choices. A request
with ``tools`` whose last message is the user's gets a call of the first tool instead.

Faults are consumed one per request, oldest first (one with a ``path`` waits for a request to
that path); `set_default` gives one to every request the queue leaves alone. A fault strikes
before anything else, authentication included. Before the headers: ``delay`` (then answer),
``status`` (an OpenAI error), ``reset`` (TCP reset), ``hang`` (silence until the client or the
server quits). After them, on a stream: ``slow_first_token``, ``cut`` (close, no [DONE]),
``stall`` (silence, connection kept), ``malformed`` (a garbage event, then the rest),
``no_done``, ``no_finish`` and ``error_event`` (an error event, then a clean end). On a whole
answer ``slow_first_token`` delays the body, ``cut`` sends half of it, ``stall`` none of it and
``malformed`` garbage; the three others change nothing there.

As a fast upstream for benchmarks: ``python -m fakes.fake_openai --port 8001``.

The modules: `faults` (the `Fault` type and its presets), `rate_limits` (the ``x-ratelimit-*``
headers), `errors` (OpenAI's error object), `answers` (the bodies, chunks, tool calls and
embeddings to send), `sending` (writing them, broken as the fault says), `server` (the aiohttp
app and `FakeOpenAI`) and `cli` (the command line). What every fake shares (the socket, the
fault queue, the record of requests, breaking an answer) is `fakes.fake_server`'s.
"""

from fakes.fake_openai.cli import main
from fakes.fake_openai.faults import FAULT_KINDS as FAULT_KINDS
from fakes.fake_openai.faults import Fault, FaultKind
from fakes.fake_openai.rate_limits import RateLimits
from fakes.fake_openai.sending import DONE_EVENT as DONE_EVENT
from fakes.fake_openai.sending import MALFORMED_EVENT as MALFORMED_EVENT
from fakes.fake_openai.server import FakeOpenAI
from fakes.fake_server.server import ReceivedRequest

__all__ = ["FakeOpenAI", "Fault", "FaultKind", "RateLimits", "ReceivedRequest", "main"]
