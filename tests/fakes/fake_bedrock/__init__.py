"""A fake Amazon Bedrock Runtime on a real socket, faithful to the wire format and broken on
command.

It serves what turnout's bedrock provider calls: ``POST /model/{modelId}/converse`` (a Converse
reply), ``/converse-stream`` (AWS's binary event-stream frames: ``messageStart``,
``contentBlockStart``/``Delta``/``Stop``, ``messageStop``, ``metadata``), ``/invoke`` for
Amazon Titan Text Embeddings (``inputText``, one per call) and Cohere Embed (``texts``), and
``/invoke`` and ``/invoke-with-response-stream`` for Claude models (Anthropic's Messages API,
its stream as ``chunk`` frames; see `claude`). It
checks credentials as Bedrock does, a bearer API key or a SigV4 signature recomputed with
botocore, answers errors in Bedrock's shape (``{"message"}`` with the exception in
``x-amzn-ErrorType``), and records every request::

    async with FakeBedrock() as fake:
        fake.enqueue(Fault.throttled(), Fault("cut", after_frames=3))
        deployment = Deployment(model_name="chat", provider="bedrock", base_url=fake.url, ...)

Answers follow the conventions of every turnout fake (see `answers`). The modules: `faults` (the
`Fault` type and Bedrock's usual errors), `eventstream` (the binary framing), `auth` (API keys
and SigV4), `answers` (what to answer), `claude` (Claude's Messages API) and `server` (the
aiohttp app and `FakeBedrock`).
"""

from fakes.fake_bedrock.faults import GUARDRAIL_MESSAGE, Fault, FaultKind
from fakes.fake_bedrock.server import FakeBedrock, ReceivedRequest

__all__ = ["GUARDRAIL_MESSAGE", "FakeBedrock", "Fault", "FaultKind", "ReceivedRequest"]
