"""The `turnout` command: `serve` the gateway, `check-config` a file."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import replace

from turnout import __version__
from turnout.config.load import check_config_file, load_config
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
    serve.add_argument("--strict", action="store_true", help=_STRICT)

    check = commands.add_parser(
        "check-config",
        help="report every problem of a config file and exit (non-zero on errors)",
        description="Reports every error, skipped deployment, warning and note at once. "
        "Environment variables that are not set are notes unless --require-env: a file can "
        "be checked where its secrets are not.",
    )
    check.add_argument("file")
    check.add_argument("--strict", action="store_true", help=_STRICT)
    check.add_argument(
        "--require-env",
        action="store_true",
        help="an environment variable the file uses that is not set is an error, as it is "
        "for serve",
    )

    args = parser.parse_args(argv)
    if args.command == "check-config":
        return _check(args.file, strict=args.strict, require_env=args.require_env)
    return _serve(args)


_STRICT = (
    "a deployment turnout cannot serve (an unsupported provider, a wildcard) is an error "
    "instead of being skipped"
)


def _check(path: str, *, strict: bool, require_env: bool) -> int:
    """Print every problem of the file: errors and skipped deployments on stderr, warnings
    and notes on stdout, then a summary; 2 when the file would not serve as it is."""
    report = check_config_file(path, unset_ok=not require_env)
    config = report.config
    if config is not None:
        try:
            check_supported(config.router)
        except ConfigError as unsupported:
            report = replace(report, config=None, errors=(*report.errors, unsupported.message))
            config = None
    for problem in report.errors:
        print(f"error: {problem}", file=sys.stderr)
    for skipped in report.skipped:
        print(f"{'error' if strict else 'skipped'}: {skipped}", file=sys.stderr)
    for warning in report.warnings:
        print(f"warning: {warning}")
    for note in report.notes:
        print(f"note: {note} (not checked: --require-env makes this an error)")
    failed = len(report.errors) + (len(report.skipped) if strict else 0)
    if config is None or failed:
        print(f"{path}: {failed} error{'s' if failed != 1 else ''}", file=sys.stderr)
        return 2
    groups = {d.model_name for d in config.router.model_list}
    print(
        f"{path}: OK ({config.format} format): {len(config.router.model_list)} deployments in "
        f"{len(groups)} model groups, strategy {config.router.routing.strategy}"
        + (f"; {len(report.skipped)} skipped" if report.skipped else "")
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
    if args.strict and config.skipped:
        for skipped in config.skipped:
            print(f"turnout: {skipped}", file=sys.stderr)
        print("turnout: --strict: not serving with deployments left out", file=sys.stderr)
        return 2
    configure_logging(args.log_level or config.server.log_level)
    for skipped in config.skipped:
        logger.error("config: %s", skipped)
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
