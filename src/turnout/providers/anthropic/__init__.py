"""Anthropic's Messages API: request and response translation, streaming, errors."""
