"""turnout: an LLM routing gateway.

The router is a library: ``from turnout import Router`` works in-process, with no HTTP server,
and ``turnout.open_router(config)`` builds one with real providers from a config.
"""

from turnout.clock import Clock, SystemClock
from turnout.config.router import (
    BreakerConfig,
    Deployment,
    FallbackConfig,
    HealthConfig,
    HybridWeights,
    RetryConfig,
    RouterConfig,
    RoutingConfig,
    Timeouts,
    parse_router_config,
)
from turnout.errors import TurnoutError
from turnout.observe.bus import Observer
from turnout.observe.events import Event
from turnout.observe.stats import RouterStats
from turnout.providers.base import Provider
from turnout.router.assembly import open_router
from turnout.router.result import Response
from turnout.router.router import DeploymentHealth, Router
from turnout.router.streaming import Stream
from turnout.secrets import Secret
from turnout.wire import (
    Operation,
    Principal,
    ProviderResponse,
    RateLimitHints,
    Request,
    StreamChunk,
    Usage,
)

__version__ = "0.1.0"

__all__ = [
    "BreakerConfig",
    "Clock",
    "Deployment",
    "DeploymentHealth",
    "Event",
    "FallbackConfig",
    "HealthConfig",
    "HybridWeights",
    "Observer",
    "Operation",
    "Principal",
    "Provider",
    "ProviderResponse",
    "RateLimitHints",
    "Request",
    "Response",
    "RetryConfig",
    "Router",
    "RouterConfig",
    "RouterStats",
    "RoutingConfig",
    "Secret",
    "Stream",
    "StreamChunk",
    "SystemClock",
    "Timeouts",
    "TurnoutError",
    "Usage",
    "__version__",
    "open_router",
    "parse_router_config",
]
