"""Talking to Redis, for everything of turnout's that Redis holds (routing state, budgets).

- `link`: redis-py's client for any URL form turnout accepts (one Redis, Sentinel, Cluster,
  TLS), the password handed to it alone, and what counts as Redis failing.
- `pipe`: one pipelined connection for hot-path scripts, built on hiredis.

Below both `turnout.state` and `turnout.governance`, which stay apart from each other.
"""
