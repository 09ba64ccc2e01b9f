"""One benchmark run: start what it needs, measure every figure once, write and print results.

Phases, in order (each is logged with its duration; one failing does not stop the others, but
fails the run):

    services     ingest and the read API: one ingest for load, one ingest and one API for
                 freshness, one API over the backlog's database
    limits       raw aiokafka produce, and consume + decode, of study_session reports
    ingest       single-report POSTs, then batches of 1,000, to the load ingest
    aggregation  a mixed backlog produced straight to Kafka, drained by one new aggregator
                 (within a time limit); its peak RSS afterwards
    freshness    reports through ingest at a steady rate to an aggregator of their own, from an
                 empty database; probes polled through the read API
    reads        the read API over the backlog's totals at a target request rate, two endpoints
                 in turn, after restarting it (the time its follower takes to replay the topic)
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import aggregation, api_reads, freshness, ingest_load, kafka_limits, restore
from bench.environment import (
    INGEST_RATE_LIMIT,
    RunNames,
    Servers,
    Services,
    create_run_topics,
    drop_run_data,
    servers,
    wait_database_idle,
)
from bench.figures import Figures, table
from bench.machine import machine, now, summary_line, versions
from bench.procs import CpuWatch, memory_kb
from bench.promtext import Scrape, bucket_change, scrape
from bench.sizes import Sizes
from bench.stats import histogram_bound
from bench.workload import READ_PERIODS, Workload, kafka_message
from deploy.processes import ServiceProcess
from shared.adapters.mongo import redact_uri
from shared.domain.auth import Scope, mint
from shared.domain.hierarchy import load_vietnam
from shared.domain.stamps import stamp_key

log = logging.getLogger(__name__)

INGEST_WARM_UP = 64  # single reports sent before the clock starts (connections, pools, caches)


class PhaseSkipped(RuntimeError):
    """A phase could not run because an earlier one did not leave what it needs."""


@dataclass
class Context:
    sizes: Sizes
    partitions: int
    seed: int
    servers: Servers
    names: RunNames
    services: Services
    workload: Workload
    figures: Figures
    details: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    procs: dict[str, ServiceProcess] = field(default_factory=dict)

    def proc(self, name: str) -> ServiceProcess:
        proc = self.procs.get(name)
        if proc is None or not proc.alive():
            raise PhaseSkipped(f"the {name} process is not running")
        return proc

    def watch(self) -> CpuWatch:
        """CPU use from now on of the servers started here, the live services and the bench."""
        pids = {name: proc.pid or 0 for name, proc in self.procs.items() if proc.alive()}
        return CpuWatch({**self.servers.pids, **pids}).start()

    def settle(self, before: str) -> None:
        """Let the database finish what earlier phases left it doing (see wait_database_idle)."""
        waited = wait_database_idle(self.servers.mongodb_uri, self.sizes.idle_timeout_s)
        self.details.setdefault("database_busy_s", {})[before] = round(waited, 2)

    def run_phase(self, name: str, phase: Callable[[Context], None]) -> None:
        log.info("phase %s: start", name)
        started = time.perf_counter()
        try:
            phase(self)
        except Exception as exc:  # recorded and reported; it fails the run
            log.exception("phase %s failed", name)
            self.errors.append(f"{name}: {type(exc).__name__}: {exc}"[:2000])
        elapsed = time.perf_counter() - started
        self.details.setdefault("phase_seconds", {})[name] = round(elapsed, 2)
        log.info("phase %s: done in %.1f s", name, elapsed)


# ---------------------------------------------------------------- phases


def phase_services(ctx: Context) -> None:
    """Start the HTTP services together (they boot in parallel), then wait for each."""
    ctx.procs["ingest-load"] = ctx.services.http("ingest", "load")
    ctx.procs["api-main"] = ctx.services.http("api", "main")
    ctx.procs["ingest-fresh"] = ctx.services.http("ingest", "fresh")
    ctx.procs["api-fresh"] = ctx.services.http("api", "fresh")
    for proc in ctx.procs.values():
        proc.wait_ready(ctx.sizes.phase_timeout_s)


def phase_limits(ctx: Context) -> None:
    sizes, bootstrap = ctx.sizes, ctx.servers.bootstrap
    topic = ctx.names.reports_topic("limits")
    messages = [kafka_message(r, ctx.workload.tree) for r in ctx.workload.study_sessions(sizes.limit_reports, "lim")]
    produced = asyncio.run(
        kafka_limits.produce(
            bootstrap,
            topic,
            messages,
            sizes.phase_timeout_s,
            ctx.servers.kafka_options("ingest"),  # not stamped: raw aiokafka, read by no aggregator
        )
    )
    log.info("raw produce: %d reports in %.2f s", produced.count, produced.seconds)
    consumed = asyncio.run(
        kafka_limits.consume_and_decode(
            bootstrap, topic, len(messages), sizes.phase_timeout_s, ctx.servers.kafka_options("admin")
        )
    )
    log.info("raw consume+decode: %d reports in %.2f s", consumed.count, consumed.seconds)
    if consumed.failures:
        raise RuntimeError(f"{consumed.failures} messages did not decode")
    through_faust, faust_cpu = _faust_consume(ctx, len(messages))
    log.info(
        "faust consume+decode: %d reports in %.2f s (%s s of processor time)",
        through_faust.count,
        through_faust.seconds,
        faust_cpu,
    )
    ctx.figures.set("kafka_produce_rate", produced.rate)
    ctx.figures.set("kafka_consume_decode_rate", consumed.rate if consumed.count else None)
    ctx.figures.set("faust_consume_decode_rate", through_faust.rate if through_faust.count >= len(messages) else None)
    ctx.details["limits"] = {
        "message_bytes_mean": sum(len(v) for _, v in messages) / len(messages),
        "produce": produced.as_dict(),
        "consume_decode": consumed.as_dict(),
        "faust_consume_decode": {**through_faust.as_dict(), "cpu_seconds": faust_cpu},
    }


def _faust_consume(ctx: Context, expected: int) -> tuple[kafka_limits.Timed, float | None]:
    """The same messages through a faust agent set up as the aggregate worker's (bench.faust_limit),
    in a process of its own, logged in as the aggregator, in the limits role's consumer group."""
    result = ctx.services.run_dir / "limits" / "faust-limit.json"
    result.unlink(missing_ok=True)
    proc = ctx.services.faust_consumer("limits", expected, result)
    deadline = time.monotonic() + ctx.sizes.phase_timeout_s
    try:
        while not result.exists() and proc.alive() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        ctx.services.stop(proc)
    if not result.exists():
        log.warning("the faust consumer measured nothing; see %s:\n%s", proc.log_path, proc.tail())
        return kafka_limits.Timed(0, 0.0), None
    got = json.loads(result.read_text())
    return kafka_limits.Timed(int(got["count"]), float(got["seconds"]), int(got["failures"])), got["cpu_seconds"]


def phase_ingest(ctx: Context) -> None:
    sizes, workload = ctx.sizes, ctx.workload
    url, token = ctx.proc("ingest-load").url, ctx.names.token  # a token per client
    ctx.settle("ingest")
    warm = workload.study_sessions(INGEST_WARM_UP, "warm")
    asyncio.run(ingest_load.single_reports(url, token, warm, sizes.single_concurrency, 60))
    watch = ctx.watch()
    single = asyncio.run(
        ingest_load.single_reports(
            url,
            token,
            workload.study_sessions(sizes.single_reports, "one"),
            sizes.single_concurrency,
            sizes.single_seconds,
        )
    )
    log.info("ingest, single: %d accepted in %.2f s", single.accepted, single.seconds)
    single_cpu = watch.stop()
    watch = ctx.watch()
    batched = asyncio.run(
        ingest_load.batches(
            url,
            token,
            workload.study_sessions(sizes.batches * sizes.batch_size, "bat"),
            sizes.batch_size,
            sizes.batch_concurrency,
            sizes.batch_seconds,
        )
    )
    log.info("ingest, batches: %d accepted in %.2f s", batched.accepted, batched.seconds)
    ctx.figures.set("ingest_single_rate", single.rate or None)
    ctx.figures.set("ingest_batch_rate", batched.rate or None)
    ctx.details["ingest"] = {
        "single": {**single.as_dict(), "concurrency": sizes.single_concurrency, "cpu": single_cpu},
        "batches": {**batched.as_dict(), "concurrency": sizes.batch_concurrency, "cpu": watch.stop()},
    }
    ctx.services.stop(ctx.procs.pop("ingest-load"))  # idle from here on


def phase_aggregation(ctx: Context) -> None:
    loaded = _produce_backlog(ctx)
    ctx.settle("aggregation")
    snapshots = {"BAOCAO_AGGREGATE_SNAPSHOT_EVERY": str(ctx.sizes.snapshot_every)}
    workers = [
        ctx.services.aggregator("main", _worker_name(i, ctx.sizes.workers), snapshots) for i in range(ctx.sizes.workers)
    ]
    ctx.procs.update((f"{w.name}-main", w) for w in workers)
    urls = [w.url for w in workers]
    watch = ctx.watch()
    drain = _watch_drain(ctx, workers)
    view_behind_s = asyncio.run(aggregation.wait_view_written(urls, 120)) if drain.done else None
    each = [memory_kb(w.pid or 0) for w in workers]
    memory = {key: sum(m[key] for m in each) for key in ("processes", "peak_rss_kb", "rss_kb")}
    cpu = watch.stop()
    flushes = aggregation.flush_summary(None, asyncio.run(aggregation.metrics_now(urls)), drain.applied)
    timeout = 30 if drain.done else 0  # committed offsets trail the applied counter by ~1 s
    topic, group = ctx.names.reports_topic("main"), ctx.names.consumer_group("main")
    lag, waited = aggregation.wait_lag_zero(
        ctx.servers.bootstrap, group, topic, timeout, ctx.servers.kafka_options("admin")
    )
    for w in workers:  # the reads then see a settled database
        ctx.services.stop(ctx.procs.pop(f"{w.name}-main"))
    _record_drain(ctx, drain, memory)
    ctx.details["aggregation"] = {
        "backlog": ctx.sizes.backlog,
        "backlog_produce": loaded.as_dict(),
        "drain": drain.as_dict(),
        "consumer_lag_after": lag,
        "lag_zero_wait_s": round(waited, 2),
        "workers": ctx.sizes.workers,
        "memory_after_drain": memory,
        "memory_after_drain_per_worker": each,
        "cpu": cpu,
        "flushes": flushes,
        # after the last report was applied, until MongoDB had everything published
        "view_written_after_s": view_behind_s,
    }


def _produce_backlog(ctx: Context) -> kafka_limits.Timed:
    sizes, topic = ctx.sizes, ctx.names.reports_topic("main")
    log.info("producing a backlog of %d mixed reports to %s", sizes.backlog, topic)
    backlog = (kafka_message(r, ctx.workload.tree) for r in ctx.workload.mixed(sizes.backlog, "mx"))
    time_limit = sizes.phase_timeout_s + sizes.backlog / 1000
    # as ingest writes them: logged in as ``ingest``, each envelope stamped with the run's key
    loaded = asyncio.run(
        kafka_limits.produce(
            ctx.servers.bootstrap,
            topic,
            backlog,
            time_limit,
            ctx.servers.kafka_options("ingest"),
            stamp_key(ctx.names.secret),
        )
    )
    log.info("backlog of %d produced in %.1f s", loaded.count, loaded.seconds)
    return loaded


def _worker_name(index: int, workers: int) -> str:
    return "aggregate" if workers == 1 else f"aggregate-{index + 1}"


def _watch_drain(ctx: Context, workers: list[ServiceProcess]) -> aggregation.Drain:
    sizes = ctx.sizes
    interval = 0.1 if sizes.backlog <= 20_000 else 0.25
    started = time.perf_counter()
    drain = asyncio.run(
        aggregation.watch_drain(
            [w.url for w in workers],
            lambda: all(w.alive() for w in workers),
            sizes.backlog,
            started,
            sizes.drain_timeout_s,
            interval,
        )
    )
    rate = f"{drain.rate:,.0f}" if drain.rate else "n/a"
    log.info("aggregator: %d of %d applied, %s reports/s", drain.applied, sizes.backlog, rate)
    return drain


def _record_drain(ctx: Context, drain: aggregation.Drain, memory: dict[str, int]) -> None:
    sizes = ctx.sizes
    ctx.figures.set("aggregate_rate", drain.rate)
    ctx.figures.set("aggregate_peak_rss_mb", memory["peak_rss_kb"] / 1024 or None)
    if not drain.done:
        note = (
            f"partial: {drain.applied:,.0f} of {sizes.backlog:,} applied within the {sizes.drain_timeout_s:.0f} s limit"
        )
        log.warning("backlog %s", note)
        ctx.figures.annotate("aggregate_rate", note)
        ctx.figures.annotate("aggregate_peak_rss_mb", note)
    if dead := drain.outcomes.get("dead_letter", 0):
        log.warning("%d backlog messages went to the dead-letter topic", dead)


def phase_restore(ctx: Context) -> None:
    """The aggregation's state restored by new workers (bench/restore.py)."""
    if "aggregation" not in ctx.details:
        raise PhaseSkipped("the restore phase restores what the aggregation phase built")
    ctx.settle("restore")
    snapshots = str(ctx.sizes.snapshot_every)
    timeout = ctx.sizes.phase_timeout_s + ctx.sizes.backlog / 1000

    def start(name: str, env: dict[str, str]) -> ServiceProcess:
        proc = ctx.procs[name] = ctx.services.aggregator(
            "main", name, {"BAOCAO_AGGREGATE_SNAPSHOT_EVERY": snapshots, **env}
        )
        return proc

    def stop(proc: ServiceProcess) -> None:
        ctx.services.stop(ctx.procs.pop(proc.name))

    out: dict[str, Any] = {}
    for name, env in (("restore-whole", {"BAOCAO_AGGREGATE_SNAPSHOT_EVERY": "0"}), ("restore-snapshot", {})):
        proc, out[name] = restore.start_and_restore(start, name, env, ctx.partitions, timeout)
        stop(proc)
    out["takeover"] = restore.join_and_kill(start, stop, ctx.partitions, timeout)
    ctx.figures.set("restore_whole_s", out["restore-whole"]["slowest_partition_s"])
    ctx.figures.set("restore_snapshot_s", out["restore-snapshot"]["slowest_partition_s"])
    ctx.figures.set("takeover_s", out["takeover"]["kill"]["first"]["slowest_partition_s"])
    ctx.details["restore"] = out


def phase_freshness(ctx: Context) -> None:
    sizes = ctx.sizes
    ingest, api = ctx.proc("ingest-fresh"), ctx.proc("api-fresh")
    ctx.settle("freshness")
    agg = ctx.services.aggregator("fresh")
    ctx.procs["aggregate-fresh"] = agg
    agg.wait_ready(sizes.phase_timeout_s)
    before = asyncio.run(aggregation.metrics_now([agg.url]))
    watch = ctx.watch()
    result = asyncio.run(
        freshness.measure(
            ingest.url,
            api.url,
            ctx.names.token,  # a token per client
            ctx.workload,
            rate=sizes.freshness_rate,
            seconds=sizes.freshness_seconds,
            probe_every=sizes.probe_every,
            drain_s=sizes.visible_within_s,
        )
    )
    cpu = watch.stop()
    expected = before.total(aggregation.APPLIED) + result["accepted"]
    after = asyncio.run(aggregation.wait_applied(agg.url, expected, timeout_s=5))
    horizon_s = time.perf_counter() - result.pop("load_started")  # no report is older than this
    ctx.details["memory_fresh_aggregator"] = memory_kb(agg.pid or 0)
    ctx.services.stop(ctx.procs.pop("aggregate-fresh"))
    buckets = bucket_change(before, after, aggregation.FRESHNESS)
    _record_freshness(ctx, result, buckets, horizon_s)
    flushes = aggregation.flush_summary(before, after, result["accepted"])
    ctx.details["freshness"] = {**result, "cpu": cpu, "aggregator_histogram_change": buckets, "flushes": flushes}


def _record_freshness(
    ctx: Context, result: dict[str, Any], buckets: list[tuple[float, float]], horizon_s: float
) -> None:
    """Figures from the probes (ack -> visible through the API) and from the aggregator's
    histogram (receipt at ingest -> totals written), with a note where they are bounds. A
    histogram quantile is the upper bound of its bucket, or ``horizon_s`` (the time since the
    load began, which no report's freshness can exceed) when that is smaller."""
    figures = ctx.figures
    figures.set("freshness_send_rate", result["send_rate"] or None)
    figures.set("freshness_p50_ms", result["freshness"]["p50_ms"])
    figures.set("freshness_p99_ms", result["freshness"]["p99_ms"])
    for q, key in ((0.5, "aggregate_freshness_p50_ms"), (0.99, "aggregate_freshness_p99_ms")):
        bound = histogram_bound(q, buckets)
        if bound is None:
            continue
        upper, beyond = bound
        if beyond or upper > horizon_s:
            upper = horizon_s
            figures.annotate(key, f"at most the {horizon_s:.0f} s since the load began (coarse buckets)")
        figures.set(key, upper * 1000)
    if result["lower_bound"]:
        note = (
            f"lower bound: {result['probes_unseen']} of {result['probes_acknowledged']} probes"
            f" not visible {ctx.sizes.visible_within_s:.0f} s after the load ended"
        )
        figures.annotate("freshness_p50_ms", note)
        figures.annotate("freshness_p99_ms", note)
    written = buckets[-1][1] if buckets else 0
    if written < result["accepted"]:
        note = f"only the {written:,.0f} of {result['accepted']:,} reports written in time"
        for key in ("aggregate_freshness_p50_ms", "aggregate_freshness_p99_ms"):
            figures.annotate(key, "; ".join(filter(None, [figures.items[key].note, note])))


def restart_api(ctx: Context) -> dict[str, Any]:
    """Restart the API that followed the aggregation, as after a deployment: how long its follower
    takes to replay the totals topic (reads go to MongoDB meanwhile), and the documents it holds."""
    ctx.services.stop(ctx.proc("api-main"))
    started = time.perf_counter()
    api = ctx.procs["api-main"] = ctx.services.http("api", "main")
    api.wait_ready(ctx.sizes.phase_timeout_s)
    ready = time.perf_counter() - started

    async def replayed() -> Scrape:
        async with httpx.AsyncClient() as client:
            while True:
                page = await scrape(client, api.url)
                if page.total("baocao_api_cache_complete") >= 1:
                    return page
                if time.perf_counter() - started > ctx.sizes.phase_timeout_s:
                    raise TimeoutError("the API did not replay the totals topic in time")
                await asyncio.sleep(0.2)

    ctx.figures.set("api_restart_s", ready)
    page = asyncio.run(replayed())
    out = {
        "ready_seconds": ready,
        "replayed_seconds": time.perf_counter() - started,
        "cached_documents": page.total("baocao_api_cache_documents"),
    }
    log.info(
        "API restarted: ready after %.1f s, topic replayed after %.1f s (%d documents in memory)",
        out["ready_seconds"],
        out["replayed_seconds"],
        out["cached_documents"],
    )
    return out


def phase_reads(ctx: Context) -> None:
    sizes, workload = ctx.sizes, ctx.workload
    out: dict[str, Any] = {"restart": restart_api(ctx)}
    api, token = ctx.proc("api-main"), ctx.names.token()
    n = max(1, round(sizes.api_rate * sizes.api_seconds))
    for name, paths in (
        ("totals", api_reads.totals_paths(workload, n, ctx.seed)),
        ("children", api_reads.children_paths(workload, n, ctx.seed)),
    ):
        ctx.settle(f"reads-{name}")
        watch = ctx.watch()
        route = api_reads.ROUTES[name]
        result = asyncio.run(api_reads.read_at_rate(api.url, token, paths, sizes.api_rate, sizes.api_seconds, route))
        result["cpu"] = watch.stop()
        log.info(
            "read API %s: %.0f req/s, p50 %.1f ms, p99 %.1f ms",
            name,
            result["rate"],
            result["p50_ms"] or 0,
            result["p99_ms"] or 0,
        )
        ctx.figures.set(f"api_{name}_rate", result["rate"] or None)
        ctx.figures.set(f"api_{name}_p50_ms", result["p50_ms"])
        ctx.figures.set(f"api_{name}_p99_ms", result["p99_ms"])
        out[name] = result
    # one commune's token reading its totals while 4 clients of its neighbour's search the units
    # as fast as the API answers (the expensive reads are rationed per token)
    ctx.settle("reads-search")
    searcher, neighbour = workload.communes[0], workload.communes[1]
    result = asyncio.run(
        api_reads.neighbour_under_search(
            api.url,
            mint(ctx.names.secret, neighbour, [Scope.READ], 3600),
            f"/v1/units/{neighbour}/totals?period={READ_PERIODS[0]}",
            mint(ctx.names.secret, searcher, [Scope.READ], 3600),
            "/v1/units?q=zz&tree=legacy",
            clients=4,
            seconds=sizes.api_seconds,
        )
    )
    alone, busy = result["neighbour_alone"], result["neighbour_while_searching"]
    log.info(
        "read API under search: neighbour p50 %.1f -> %.1f ms, p99 %.1f -> %.1f ms; searches %s",
        alone["p50_ms"] or 0,
        busy["p50_ms"] or 0,
        alone["p99_ms"] or 0,
        busy["p99_ms"] or 0,
        result["search_statuses"],
    )
    for q in ("p50", "p99"):
        ctx.figures.set(f"api_search_neighbour_{q}_ms", busy[f"{q}_ms"])
        ctx.figures.limit(f"api_search_neighbour_{q}_ms", alone[f"{q}_ms"], "nobody searching")
    out["search"] = result
    out["api_memory"] = memory_kb(api.pid or 0)  # its cache full after the replay and the reads
    ctx.details["reads"] = out


PHASES: list[tuple[str, Callable[[Context], None]]] = [
    ("services", phase_services),
    ("limits", phase_limits),
    ("ingest", phase_ingest),
    ("aggregation", phase_aggregation),
    ("restore", phase_restore),
    ("freshness", phase_freshness),
    ("reads", phase_reads),
]


# ---------------------------------------------------------------- the run


def measure(
    sizes: Sizes, partitions: int, seed: int, only: frozenset[str] | None = None
) -> tuple[Figures, dict[str, Any]]:
    """Run every phase (or those in ``only``, with the services they need) against the servers;
    return the figures and the run's details."""
    figures = Figures(sizes.backlog, sizes.workers)
    with servers() as srv:
        names = RunNames()
        ctx = Context(
            sizes=sizes,
            partitions=partitions,
            seed=seed,
            servers=srv,
            names=names,
            services=Services(srv, names),
            workload=Workload(load_vietnam(), names.suffix, seed),
            figures=figures,
        )
        ctx.details["run_id"] = names.suffix
        ctx.details["servers"] = {
            **{k: redact_uri(v) for k, v in srv.endpoints.items()},
            "started_here": srv.started_here,
        }
        ctx.details["service_logs"] = str(ctx.services.logs)
        try:
            create_run_topics(srv, names, partitions)
            wanted = only
            if wanted is not None and wanted & {"ingest", "freshness", "reads"}:
                wanted = wanted | {"services"}
            for name, phase in PHASES:
                if wanted is None or name in wanted:
                    ctx.run_phase(name, phase)
        finally:
            ctx.services.stop_all()
            if not srv.started_here:
                drop_run_data(srv, names)
    figures.apply_limits(sizes.freshness_rate, sizes.api_rate)
    ctx.details["errors"] = ctx.errors
    return figures, ctx.details


def write_results(directory: Path, results: dict[str, Any], stamp: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{stamp}.json"
    for n in range(2, 100):  # two runs in the same second keep both files
        if not path.exists():
            break
        path = directory / f"{stamp}-{n}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path


def run(sizes: Sizes, partitions: int, seed: int, results_dir: Path, only: frozenset[str] | None = None) -> int:
    """The whole benchmark (or the phases in ``only``); prints the table and the results path.
    0 when every figure was measured (of a whole run) and no phase failed."""
    started = now()
    info = {"machine": machine(), "versions": versions()}
    log.info("benchmark %s: %s", sizes.mode, summary_line(info))
    figures, details = measure(sizes, partitions, seed, only)
    finished = now()
    missing = figures.missing() if only is None else []
    results = {
        "schema": 1,
        "mode": sizes.mode,
        "phases": sorted(only) if only is not None else [name for name, _ in PHASES],
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "duration_s": round((finished - started).total_seconds(), 1),
        **info,
        "settings": {
            **sizes.as_dict(),
            "partitions": partitions,
            "seed": seed,
            "ingest_rate_limit_per_token": INGEST_RATE_LIMIT,
            "ingest_tokens": "one per client connection",
        },
        "figures": figures.as_dict(),
        "missing_figures": missing,
        "details": details,
    }
    path = write_results(results_dir, results, started.strftime("%Y%m%dT%H%M%SZ"))
    print(f"baocao benchmark, {sizes.mode}, {started:%Y-%m-%d %H:%M} UTC, backlog {sizes.backlog:,}")
    print(summary_line(info))
    print(table(figures))
    print(f"results: {path}")
    if missing:
        log.error("figures not measured: %s", ", ".join(missing))
    for error in details["errors"]:
        log.error("%s", error)
    return 0 if not missing and not details["errors"] else 1
