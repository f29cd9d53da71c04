"""The one conftest: loads the shared fixtures (tests/harness.py) everywhere."""

pytest_plugins = [
    "harness",
    "services",
    "governance_stores",
]  # gateway_harness is imported directly by the tests that use it
