"""Happy-path cost of one synchronous call: LLMClient.chat_completion vs bare litellm.completion.

    python bench/bench_overhead.py [--quick] [--calls 300]

The last section (:func:`telemetry_overhead`, issue 19) runs the client with telemetry
off, with traces and metrics through the OpenTelemetry API without an SDK (the global
proxies; and the API's NoOp providers given explicitly),
with the SDK and in-memory exporter/reader, and with a prometheus-client registry: the
added ms per call over HTTP, then the same cases against a provider call that returns
at once (no HTTP, ledger off), which isolates the telemetry's own time.

The client runs with the ledger on and rate limits on (1M RPM, 1G TPM, never hit)
and misses the cache (``cache=False``; one case instead stores every answer, with
caching on and unique prompts). Every case sends unique prompts to the same
simulator. The cases are interleaved: each step runs every case in a random order,
as a burst of 4 calls whose first is not recorded (it absorbs the work LiteLLM's
background thread still does for the previous case).
Wall-clock ms is what a caller waits; CPU ms is the calling thread's own work
(client + LiteLLM, not the simulator thread) and is steadier on a busy machine.
"""

from __future__ import annotations

from _common import (
    CLIENT_MODELS,
    NATIVE_OLLAMA_MODEL,
    banner,
    bare_args,
    bare_completion,
    interleaved,
    interleaved_calls,
    load_litellm,
    median,
    messages,
    paired_median_diff,
    percentile,
    simulator,
    table,
    target_cell,
)

LIMITS = {
    "OPENAI_RATE_LIMIT_RPM": "1000000",
    "OPENAI_RATE_LIMIT_TPM": "1000000000",
    "OLLAMA_RATE_LIMIT_RPM": "1000000",
    "OLLAMA_RATE_LIMIT_TPM": "1000000000",
}
# (label, numerator case, denominator case, target on the median wall-clock ratio)
RATIOS = [
    ("client / bare, openai", "client openai", "bare openai", 1.10),
    ("client miss+store / bare, openai", "client openai, miss+store", "bare openai", 1.10),
    ("client / bare, ollama", "client ollama", "bare ollama", 1.15),
    ("client ollama / client openai", "client ollama", "client openai", 1.1),
    ("bare ollama / bare openai", "bare ollama", "bare openai", None),
    ("bare ollama_chat / bare openai", "bare ollama_chat (native route)", "bare openai", None),
]


def main() -> None:
    calls, settings = interleaved_calls(__doc__)
    banner(
        "bench_overhead: sync happy path, client vs bare LiteLLM",
        settings + "limits on (1M RPM, 1G TPM)",
    )
    with simulator(**LIMITS) as (sim, _tmp):
        litellm = load_litellm()
        from leadfactory.llm import LLMClient, LLMConfig

        client = LLMClient(LLMConfig(fallback_strategy="smart_fallback", enable_caching=True))

        def prompt(i: int) -> list[dict]:
            return messages(f"Say hello, call number {i}.")

        def ask(provider: str, cache: bool):
            return lambda i: client.chat_completion(
                prompt(i), model=CLIENT_MODELS[provider], max_tokens=20, cache=cache
            )

        cases = {
            "client openai": ask("openai", cache=False),
            "bare openai": lambda i: bare_completion(sim, prompt(i), "openai"),
            "client openai, miss+store": ask("openai", cache=True),
            "client ollama": ask("ollama", cache=False),
            "bare ollama": lambda i: bare_completion(sim, prompt(i), "ollama"),
            # Reference: LiteLLM's native Ollama route (/api/chat), which the client avoids.
            "bare ollama_chat (native route)": lambda i: litellm.completion(
                **bare_args(sim, prompt(i), "ollama")
                | {"model": NATIVE_OLLAMA_MODEL, "api_base": sim.base_url("ollama")}
            ),
        }
        wall, cpu = interleaved(cases, calls)
        client.close()

    table(
        ["case", "median ms", "p99 ms", "CPU median ms"],
        [[n, median(wall[n]), percentile(wall[n], 99), median(cpu[n])] for n in cases],
    )
    print()
    rows = []
    for label, a, b, target in RATIOS:
        r_wall = median(wall[a]) / median(wall[b])
        rows.append(
            [
                label,
                r_wall,
                percentile(wall[a], 99) / percentile(wall[b], 99),
                median(cpu[a]) / median(cpu[b]),
                paired_median_diff(wall[a], wall[b]),
                paired_median_diff(cpu[a], cpu[b]),
                target_cell(r_wall, target) if target else "(reference)",
            ]
        )
    table(
        ["ratio", "median", "p99", "CPU", "added ms", "added CPU ms", "target (median)"],
        rows,
    )
    print("\n(added ms: median of per-call differences between calls of the same step)")
    telemetry_overhead(calls)


# -- telemetry (issue 19) ------------------------------------------------------------

TELEMETRY_TARGETS = {
    "API, no SDK": 0.1,
    "no-op providers": 0.1,
    "SDK + in-memory": 0.5,
    "prometheus": 0.5,
}


def telemetry_cases(client_for, ask) -> dict:
    """The client with telemetry off, on with each back end: ``case -> fn(i)``."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from prometheus_client import CollectorRegistry

    from leadfactory.llm.telemetry import Telemetry

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    settings = {
        "off": Telemetry(),
        # the global providers, no SDK set in this process: the API's proxies (spans are
        # skipped while no SDK is set; metrics go through the proxy meter's instruments)
        "API, no SDK": Telemetry(traces=True, metrics=True),
        # the API's NoOp providers, given: the client holds no observer at all
        "no-op providers": Telemetry(
            traces=True,
            metrics=True,
            tracer_provider=trace.NoOpTracerProvider(),
            meter_provider=metrics.NoOpMeterProvider(),
        ),
        "SDK + in-memory": Telemetry(
            traces=True,
            metrics=True,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        ),
        "prometheus": Telemetry(prometheus=True, registry=CollectorRegistry()),
    }
    # The exporter keeps every span; appending to it is part of the measured cost.
    return {name: ask(client_for(telemetry)) for name, telemetry in settings.items()}


def telemetry_overhead(calls: int) -> None:
    """Added time per call with telemetry on, over HTTP and against an instant provider."""
    import copy

    from leadfactory.llm import LLMClient, LLMConfig, providers

    def prompt(i: int) -> list[dict]:
        return messages(f"Say hello, call number {i}.")

    def ask(client):
        return lambda i: client.chat_completion(
            prompt(i), model="openai", max_tokens=20, cache=False
        )

    print()
    banner(
        "bench_overhead: telemetry (issue 19), client with telemetry on vs off",
        f"{calls} timed calls per case, interleaved; openai; cache=False",
    )
    with simulator(**LIMITS) as (_sim, _tmp):
        load_litellm()
        cases = telemetry_cases(
            lambda t: LLMClient(LLMConfig(enable_caching=False), telemetry=t), ask
        )
        wall, cpu = interleaved(cases, calls)
        answer = providers.complete(
            providers.call_arguments(LLMConfig().providers["openai"], prompt(0))
        )
    _telemetry_table("over HTTP (simulator), ledger on", cases, wall, cpu)

    real = providers.complete
    providers.complete = lambda arguments: copy.deepcopy(answer)  # no HTTP: the client only
    try:
        with simulator(LLM_COST_TRACKING="false") as (_sim, _tmp):
            cases = telemetry_cases(
                lambda t: LLMClient(LLMConfig(enable_caching=False), telemetry=t), ask
            )
            wall, cpu = interleaved(cases, calls * 10)
    finally:
        providers.complete = real
    _telemetry_table("instant provider (no HTTP), ledger off", cases, wall, cpu)


def _telemetry_table(title: str, cases: dict, wall: dict, cpu: dict) -> None:
    print(f"\n{title}")
    rows = []
    for name in cases:
        added = paired_median_diff(cpu[name], cpu["off"]) if name != "off" else 0.0
        target = TELEMETRY_TARGETS.get(name)
        rows.append(
            [
                name,
                median(wall[name]),
                median(cpu[name]),
                paired_median_diff(wall[name], wall["off"]) if name != "off" else 0.0,
                added,
                target_cell(added, target, unit=" ms") if target else "-",
            ]
        )
    table(["telemetry", "median ms", "CPU ms", "added ms", "added CPU ms", "target"], rows)


if __name__ == "__main__":
    main()
