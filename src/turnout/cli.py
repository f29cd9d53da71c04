"""The `turnout` command: `serve` the gateway, `check-config` a file."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from turnout import __version__
from turnout.config.load import load_config
from turnout.config.server import GatewayConfig, with_command_line
from turnout.errors import ConfigError
from turnout.providers.registry import check_supported

logger = logging.getLogger("turnout")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="turnout", description="An LLM routing gateway with an OpenAI-compatible API."
    )
    parser.add_argument("--version", action="version", version=f"turnout {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the gateway")
    source = serve.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="turnout.yaml or a LiteLLM config.yaml")
    source.add_argument(
        "--demo", action="store_true", help="built-in simulated providers, no API keys needed"
    )
    serve.add_argument("--host", help="address to listen on (default from config: 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default from config: 4000)")
    serve.add_argument("--workers", type=int, help="worker processes (default from config: 1)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    check = commands.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file")

    args = parser.parse_args(argv)
    if args.command == "check-config":
        return _check(args.file)
    return _serve(args)


def _check(path: str) -> int:
    try:
        config = load_config(path)
        check_supported(config.router)
    except ConfigError as error:
        message = error.message
        print(message if message.startswith(path) else f"{path}: {message}", file=sys.stderr)
        return 2
    for warning in config.warnings:
        print(f"warning: {warning}")
    groups = {d.model_name for d in config.router.model_list}
    print(
        f"{path}: OK ({config.format} format): {len(config.router.model_list)} deployments in "
        f"{len(groups)} model groups, strategy {config.router.routing.strategy}"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from turnout.gateway.serve import configure_logging, run

    try:
        config = _demo() if args.demo else load_config(args.config)
        config = _override(config, args)
        check_supported(config.router)
    except ConfigError as error:
        print(f"turnout: {error.message}", file=sys.stderr)
        return 2
    configure_logging(args.log_level or config.server.log_level)
    for warning in config.warnings:
        logger.warning("config: %s", warning)
    if args.demo:
        logger.info(
            "demo mode: simulated providers (no API keys). Try:\n"
            "  curl -s http://%s:%d/v1/chat/completions -H 'content-type: application/json' "
            '-d \'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}\'',
            config.server.host,
            config.server.port,
        )
    run(config, routing_detail=args.demo)
    return 0


def _demo() -> GatewayConfig:
    from turnout.demo import demo_config

    return demo_config()


def _override(config: GatewayConfig, args: argparse.Namespace) -> GatewayConfig:
    changes = {
        name: value
        for name in ("host", "port", "workers", "log_level")
        if (value := getattr(args, name)) is not None
    }
    return with_command_line(config, changes)


if __name__ == "__main__":
    sys.exit(main())
