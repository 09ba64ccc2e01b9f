"""Benchmarks against a local stack: ``python -m bench [--smoke] [--reports N]`` (``make bench``).

Starts Kafka and the database (profile "bench") unless KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI
name running ones, runs the services as processes, measures once, prints a table of figures with
their limits and ratios, and writes the results as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from bench.run import PHASES, run
from bench.sizes import FULL, SMOKE
from deploy.stack import StackError

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="seconds-long sizes (a check, not a measurement)")
    parser.add_argument("--reports", type=int, metavar="N", help="backlog size for aggregation and memory")
    parser.add_argument("--drain-timeout", type=float, metavar="S", help="seconds the aggregator gets to drain")
    parser.add_argument(
        "--workers", type=int, metavar="N", help="aggregate workers draining the backlog together (default 1)"
    )
    parser.add_argument("--partitions", type=int, default=8, help="partitions of each topic (default 8)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated reports")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help=f"default {RESULTS}")
    parser.add_argument(
        "--only",
        metavar="PHASE[,PHASE]",
        help="run only these phases (limits, ingest, aggregation, restore, freshness, reads); for profiling one part",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.reports is not None and args.reports < 1:
        parser.error("--reports must be at least 1")
    if args.workers is not None and not 1 <= args.workers <= args.partitions:
        parser.error(f"--workers must be between 1 and the partitions ({args.partitions})")
    if args.only is not None:
        known = {name for name, _ in PHASES}
        args.only = frozenset(p.strip() for p in args.only.split(",") if p.strip())
        if unknown := args.only - known:
            parser.error(f"--only: unknown phase(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    return args


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("aiokafka", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("kafka").setLevel(logging.ERROR)  # kafka-python warns on every admin call


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging(args.log_level)
    sizes = (SMOKE if args.smoke else FULL).adjusted(args.reports, args.drain_timeout, args.workers)
    try:
        return run(sizes, args.partitions, args.seed, args.results_dir, args.only)
    except StackError as exc:
        logging.getLogger("bench").error("could not start the servers: %s", exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
