"""Deployment health as pure rules over a record: circuit breaker, cooldowns, outcome accounting.

Both state stores (in-process now, shared later) run these same rules, so a deployment's health
means the same thing whichever store holds it.
"""
