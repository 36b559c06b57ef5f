"""`bench serve`: a catalogue model on a measured backend, served over the OpenAI-compatible API (bench.serving)."""

from __future__ import annotations

import argparse
import ipaddress
import sys

from bench.cli.common import EXIT_OK, parse_number
from bench.core.errors import UsageError, invalid_value
from bench.core.sweep import parse_option_flags


def _host(raw: str) -> str:
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        if raw != "localhost":
            raise invalid_value("--host", raw, "an IP address, e.g. 127.0.0.1 (loopback, the default)") from None
    return raw


def _options(raw: list[str] | None) -> tuple:
    given = parse_option_flags("--option", raw or [])
    multi = [k for k, v in given.items() if len(v) != 1]
    if multi:
        raise UsageError(f"--option: {multi[0]} has several values; a server runs one configuration")
    return tuple(sorted((k, v[0]) for k, v in given.items()))


def _cmd_serve(args: argparse.Namespace) -> int:
    from bench.serving.server import load_engine, serve

    port = parse_number("--port", args.port, int)
    if not 0 <= port <= 65535:
        raise invalid_value("--port", args.port, "a port from 0 (any free one) to 65535")
    host = _host(args.host)
    max_queued = parse_number("--max-queued", args.max_queued, int)
    if not 1 <= max_queued <= 100_000:
        raise invalid_value("--max-queued", args.max_queued, "a whole number from 1 to 100,000")
    grace = parse_number("--shutdown-grace", args.shutdown_grace, float)
    if not 0 <= grace <= 600:  # also refuses nan
        raise invalid_value("--shutdown-grace", args.shutdown_grace, "seconds from 0 to 600")
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise UsageError("bench serve needs aiohttp: pip install 'catchup-bench[serve]'") from None
    print(f"loading {args.model} on {args.backend} ({args.precision}) ...", file=sys.stderr, flush=True)
    engine = load_engine(
        args.model, args.backend, args.precision, _options(args.option), args.weights, args.served_model_name,
        max_queued=max_queued,
    )  # fmt: skip

    def ready(bound: int) -> None:
        print(
            f"serving {engine.model} ({engine.technique}) at http://{host}:{bound}/v1 -- Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        print(f"http://{host}:{bound}", flush=True)

    try:
        serve(engine, host, port, ready, grace_s=grace)
    except OSError as exc:
        raise UsageError(f"--port: {port} cannot be bound on {host}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:  # before the signal handlers were in place
        pass
    print("stopped", file=sys.stderr)
    return EXIT_OK


def register(sub) -> None:
    """Add this command's parser to the `bench` subcommands."""
    p = sub.add_parser(
        "serve",
        help="serve a catalogue LM over the OpenAI-compatible API (streaming), as a baseline engine",
        description="Builds --model on --backend (any measured backend; its technique: precision, -O options) and "
        "serves it at http://HOST:PORT/v1 (completions, chat completions, streaming, /v1/models). One request at a "
        "time, greedy, EOS ignored; a synthetic word tokenizer (one word, one token; see docs/SERVING-ENGINES.md). "
        "Prints the base URL on stdout once it listens. SIGINT or SIGTERM stops it gracefully (no new requests, the "
        "waiting ones answered 503, the one in progress given --shutdown-grace seconds to finish), exit 0; a second "
        "signal stops it at once.",
        epilog="Example: bench serve --model gpt2-tiny --port 8000 & bench run --backend openai --model gpt2-tiny "
        "-O endpoint=http://127.0.0.1:8000 -O concurrency=4",
    )
    p.add_argument("--model", "-m", required=True, help="a generation model of the catalogue (see `bench list`)")
    p.add_argument("--backend", "-b", default="cpu", help="measured backend that runs it (default cpu)")
    p.add_argument("--precision", "-p", default="fp32", help="default fp32")
    p.add_argument("--option", "-O", action="append", metavar="KEY=V", help="backend option, e.g. -O threads=2")
    p.add_argument("--weights", metavar="DIR", help="safetensors weights of the same architecture (default: random)")
    p.add_argument("--served-model-name", metavar="NAME", help="the model's id in the API (default: --model)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: loopback only)")
    p.add_argument("--port", default="8000", help="port (default 8000; 0: any free port, printed)")
    p.add_argument(
        "--max-queued",
        default="256",
        metavar="N",
        help="requests that may wait for the generation thread; one more is answered 503 with Retry-After "
        "(default 256, 1 to 100,000)",
    )
    p.add_argument("--shutdown-grace", default="2", metavar="S",
                   help="on SIGINT/SIGTERM, seconds the request in progress may take to finish before it is "
                   "cancelled (default 2, 0 to 600)")  # fmt: skip
    p.set_defaults(func=_cmd_serve)
