"""The built-in providers as the environment configures them (``OPENAI_*``, ``ANTHROPIC_*``,
``OLLAMA_*``), over the defaults in :data:`~leadfactory.llm.settings_env.BUILTIN_DEFAULTS`.

``<PREFIX>_INPUT_COST_PER_1K_TOKENS`` and ``<PREFIX>_OUTPUT_COST_PER_1K_TOKENS`` price the
provider's configured model (an entry of ``ProviderConfig.model_prices``); a
``cost_per_1k_tokens`` left at its built-in default is not a price the user set, so it
prices nothing (see :mod:`.pricing`). ``<PREFIX>_CONTEXT_WINDOW`` and
``<PREFIX>_MAX_OUTPUT_TOKENS`` state the configured model's limits (an entry of
``ProviderConfig.model_facts``), over LiteLLM's map.
"""

from __future__ import annotations

from .exceptions import LLMConfigurationError
from .provider_config import ModelFacts, ModelPrice, ProviderConfig
from .settings_env import BUILTIN_DEFAULTS, BUILTIN_PROVIDERS, configuration_errors
from .settings_env import ProviderEnvironment as _ProviderEnvironment

__all__ = ["providers_from_environment"]


def _provider_from_environment(name: str) -> ProviderConfig | None:
    prefix = f"{name.upper()}_"
    with configuration_errors(env_prefix=prefix):
        env = _ProviderEnvironment(_env_prefix=prefix)
    if name != "ollama" and not env.api_key:
        return None  # openai and anthropic are configured only when their key is set
    values = dict(BUILTIN_DEFAULTS[name])
    found = env.model_dump(exclude_none=True)
    found.pop("host" if name != "ollama" else "base_url", None)
    if "host" in found:
        found["base_url"] = found.pop("host")
    if "model" in found:
        found["default_model"] = found.pop("model")
    split = {part: found.pop(f"{part}_cost_per_1k_tokens", None) for part in ("input", "output")}
    window = found.pop("context_window", None), found.pop("max_output_tokens", None)
    values.update(found)
    if any(price is not None for price in split.values()):
        values["model_prices"] = {values["default_model"]: _split_price(prefix, split)}
    if any(limit is not None for limit in window):
        facts = ModelFacts(max_input_tokens=window[0], max_output_tokens=window[1])
        values["model_facts"] = {values["default_model"]: facts}
    with configuration_errors(env_prefix=prefix):
        provider = ProviderConfig(name=name, **values)
    if "cost_per_1k_tokens" not in found:  # the built-in default, not a price the user set
        provider.model_fields_set.discard("cost_per_1k_tokens")
    return provider


def _split_price(prefix: str, split: dict[str, float | None]) -> ModelPrice:
    """The model price of ``<PREFIX>_INPUT_``/``OUTPUT_COST_PER_1K_TOKENS`` (both needed)."""
    for part, price in split.items():
        if price is None:
            other = "OUTPUT" if part == "input" else "INPUT"
            raise LLMConfigurationError(
                f"{prefix}{other}_COST_PER_1K_TOKENS is set but {prefix}{part.upper()}"
                "_COST_PER_1K_TOKENS is not: set both (USD per 1,000 tokens)",
                metadata={"fields": [f"{prefix}{part.upper()}_COST_PER_1K_TOKENS"]},
            )
    return ModelPrice(
        input_cost_per_token=(split["input"] or 0.0) / 1000.0,
        output_cost_per_token=(split["output"] or 0.0) / 1000.0,
    )


def providers_from_environment() -> dict[str, ProviderConfig]:
    """The built-in providers configured by the environment, in declared order."""
    providers = {}
    for name in BUILTIN_PROVIDERS:
        provider = _provider_from_environment(name)
        if provider is not None:
            providers[name] = provider
    return providers
