"""A fake Gemini API on a real socket, faithful to the wire format and broken on command.

It speaks the Generative Language API as documented: ``generateContent``,
``streamGenerateContent`` (server-sent events with ``alt=sse``), ``batchEmbedContents`` and
``embedContent`` under ``/v1beta/models/{model}:{method}``, with the key in ``x-goog-api-key``
(or ``?key=``); and Vertex AI's route to the same methods with a bearer token. Errors are Google's
``{"error": {"code", "message", "status", "details"}}``: a wrong key is 400 INVALID_ARGUMENT with
reason API_KEY_INVALID, a missing one 403 PERMISSION_DENIED; request bodies are checked as
strictly as Gemini's protobuf parser checks them (an unknown field is a 400)::

    async with FakeGemini(api_key="k") as fake:
        fake.enqueue(Fault.rate_limited(retry_delay=3), Fault("cut", after_chunks=2))
        url = fake.url  # e.g. http://127.0.0.1:41234, without an API version

Answers are deterministic: "Fake answer to: <the last user text>", one token per word, cut at
``maxOutputTokens``; a request declaring functions whose last turn is the user's text gets a
call of the allowed (else the first) function. Faults are consumed one per request, oldest first
(one with a ``method`` waits for a request of that method); `FakeGemini.set_default` gives one
to every request the queue leaves alone.

The modules: `faults` (the `Fault` type, its presets and Google's error body), `validation`
(the request checks), `answers` (the bodies and events to send) and `server` (the aiohttp app,
`FakeGemini`, and the writing of answers).
"""

from fakes.fake_gemini.faults import FAULT_KINDS as FAULT_KINDS
from fakes.fake_gemini.faults import Fault, FaultKind
from fakes.fake_gemini.server import MALFORMED_EVENT as MALFORMED_EVENT
from fakes.fake_gemini.server import FakeGemini, ReceivedRequest

__all__ = ["FakeGemini", "Fault", "FaultKind", "ReceivedRequest"]
