"""What every fake provider shares: `FakeServer` (the socket, the fault queue, the record of
requests), `FaultBase` (the fault kinds and fields common to all) and the sending of answers
broken as a fault says.

Each fake (`fake_openai`, `fake_anthropic`, `fake_gemini`, `fake_bedrock`, `fake_azure`) keeps
only what is its provider's: routes, authentication, answers, error bodies and framing.

The modules: `faults` (`FaultBase`), `sending` (writing answers, resets and hang-ups) and
`server` (`FakeServer` and `ReceivedRequest`).
"""

from fakes.fake_server.faults import COMMON_KINDS, FaultBase
from fakes.fake_server.server import NOT_JSON, FakeServer, ReceivedRequest

__all__ = ["COMMON_KINDS", "NOT_JSON", "FakeServer", "FaultBase", "ReceivedRequest"]
