"""Azure OpenAI (the dated deployments API), against `FakeAzure`."""

from __future__ import annotations

from conformance_kit import Failure, ProviderSetup
from setup_openai import READERS

from fakes import fake_azure
from fakes.fake_azure import FakeAzure
from fakes.fake_openai import Fault
from turnout import Deployment, Secret

_FAULTS: dict[Failure, Fault] = {
    "rate_limited": fake_azure.rate_limited(retry_after=3),
    "server_error": Fault.server_error(),
    "overloaded": fake_azure.service_unavailable(),
    "authentication": fake_azure.access_denied(),
    "context_window": Fault.context_length_exceeded(),
    "content_policy": fake_azure.content_filter(),
    "bad_request": Fault.http_error(
        400, "Invalid value for 'temperature'", "invalid_request_error", param="temperature"
    ),
}


def _deployment(fake: FakeAzure, group: str, model: str) -> Deployment:
    assert fake.api_key is not None
    return Deployment(
        model_name=group,
        provider="azure",
        model=model,
        id=f"azure-{group}",
        base_url=fake.url,
        api_key=Secret(fake.api_key),
        api_version="2024-10-21",
    )


SETUP = ProviderSetup(
    name="azure",
    start=lambda: FakeAzure(deployments=("gpt-4o-mini", "text-embedding-3-small")),
    chat=lambda fake, group: _deployment(fake, group, "gpt-4o-mini"),
    embedding=lambda fake, group: _deployment(fake, group, "text-embedding-3-small"),
    fail_next=lambda fake, failure: fake.enqueue(_FAULTS[failure]),
    **READERS,  # Azure's bodies are OpenAI's
)
