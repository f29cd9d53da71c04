"""What a provider family plugs into the conformance suite.

Each `setup_<name>.py` in this folder defines ``SETUP``, a `ProviderSetup`: how to start the
provider's fake server (which speaks the provider's real wire format), the deployment that
points the gateway at it, how to read the provider-native request the fake received, and how to
make the fake fail the next request in each way a provider fails. `test_conformance.py` runs the
same scenarios against every setup, through the real gateway, with the official `openai` SDK.

All fakes answer alike, so that the scenarios can be written once: a text answer is
"Fake answer to: <the last user text>"; a request that offers tools and whose last message is the
user's gets a call of the chosen (else the first) tool, with placeholder arguments for its
required parameters; after a tool result the answer is text again.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Literal

from turnout import Deployment

#: The ways a provider fails that every adapter must map, in provider-neutral words.
Failure = Literal[
    "rate_limited",
    "server_error",
    "overloaded",
    "authentication",
    "context_window",
    "content_policy",
    "bad_request",
]
FAILURES: tuple[Failure, ...] = (
    "rate_limited",
    "server_error",
    "overloaded",
    "authentication",
    "context_window",
    "content_policy",
    "bad_request",
)


@dataclass(frozen=True)
class ProviderSetup:
    name: str
    #: Starts the fake server; what it yields is passed to the other hooks as `fake`.
    start: Callable[[], AbstractAsyncContextManager[Any]]
    #: The chat deployment of model group `group` on `fake`.
    chat: Callable[[Any, str], Deployment]
    #: The embedding deployment of group `group` on `fake`; None when the provider has none.
    embedding: Callable[[Any, str], Deployment] | None
    #: The provider-native JSON body of the last generation request the fake received.
    last_body: Callable[[Any], dict[str, Any]]
    #: In a native body: the system prompt, or None.
    system_prompt: Callable[[dict[str, Any]], str | None]
    #: In a native body: the conversation's turns (system prompt excluded), by role name.
    roles: Callable[[dict[str, Any]], list[str]]
    #: In a native body: how many images the last user turn carries.
    images: Callable[[dict[str, Any]], int]
    #: In a native body: the names of the tools offered.
    tool_names: Callable[[dict[str, Any]], list[str]]
    #: In a native body: the text of the tool results it carries.
    tool_results: Callable[[dict[str, Any]], list[str]]
    #: Make the fake's next generation request fail this way.
    fail_next: Callable[[Any, Failure], None]
    #: Whether image parts given by https URL are supported (else a 400 naming the parameter).
    image_urls: bool = True
