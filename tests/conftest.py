"""The one conftest: loads the shared fixtures (tests/harness.py) everywhere."""

pytest_plugins = ["harness"]
