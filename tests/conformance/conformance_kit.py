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

import importlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from gateway_harness import RunningGateway, gateway_config, running_gateway
from turnout import Deployment, HealthConfig, RetryConfig

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


def all_setups() -> list[ProviderSetup]:
    """Every family's `SETUP`, one per ``setup_<name>.py`` of this folder, in name order: a new
    family joins every suite that runs over them by adding its file."""
    return [
        importlib.import_module(path.stem).SETUP
        for path in sorted(Path(__file__).parent.glob("setup_*.py"))
    ]


@dataclass
class Served:
    """One family's fake behind a running gateway that serves it as model group ``chat``."""

    setup: ProviderSetup
    fake: Any
    gateway: RunningGateway

    def body(self) -> dict[str, Any]:
        """The provider-native body of the last generation request the fake received."""
        return self.setup.last_body(self.fake)

    def reset(self) -> None:
        """Forget the fake's queued faults and recorded requests, between scenarios."""
        self.fake.reset()


@asynccontextmanager
async def serving(setup: ProviderSetup) -> AsyncIterator[Served]:
    """`setup`'s fake and a gateway in front of it, with no retries and no cooldowns, so that
    each failure reaches the client as it happened and the next scenario finds the deployment
    ready."""
    async with AsyncExitStack() as stack:
        fake = await stack.enter_async_context(setup.start())
        config = gateway_config(
            setup.chat(fake, "chat"),
            retries=RetryConfig(num_retries=0),
            health=HealthConfig(disable_cooldowns=True),
        )
        gateway = await stack.enter_async_context(running_gateway(config))
        yield Served(setup, fake, gateway)
