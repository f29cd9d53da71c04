"""The command line, ``python -m fakes.fake_openai``: a fast upstream for benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Sequence

from fakes.fake_openai.server import FakeOpenAI


async def _serve_announced(fake: FakeOpenAI) -> None:
    await fake.start()
    print(f"fake OpenAI listening on {fake.url}", flush=True)
    await fake.serve_forever()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m fakes.fake_openai``: a fast upstream that records nothing."""
    parser = argparse.ArgumentParser(
        prog="python -m fakes.fake_openai",
        description="A fake OpenAI API for benchmarks: no recording, by default no auth.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", help="require this bearer key")
    parser.add_argument("--model", action="append", help="serve only these models (repeatable)")
    parser.add_argument("--reply", help="the answer's text (default: echo the prompt)")
    parser.add_argument("--chunk-delay", type=float, default=0.0, help="seconds between events")
    args = parser.parse_args(argv)
    fake = FakeOpenAI(
        args.api_key,
        models=args.model,
        reply=args.reply,
        chunk_delay=args.chunk_delay,
        record=False,
        host=args.host,
        port=args.port,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_announced(fake))
