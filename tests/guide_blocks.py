"""The Python code blocks of the user guide (spec/llm-fallback-guide.md), verbatim.

Each entry is (section heading, code). tests/test_guide.py runs every one against
the simulator; keep them identical to the guide so the guide stays true.
"""

# ruff: noqa: E501

GUIDE_BLOCKS: list[tuple[str, str]] = [
    (
        "Basic Usage",
        """\
from leadfactory.llm import LLMClient

# Initialize client (loads configuration from environment)
client = LLMClient()

# Make a chat completion request
response = client.chat_completion(
    messages=[
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is the capital of France?"}
    ],
    temperature=0.7,
    max_tokens=100
)

# Access the response
content = response['choices'][0]['message']['content']
provider = response['provider']
usage = response['usage']

print(f"Response from {provider}: {content}")
print(f"Usage: {usage}")
""",
    ),
    (
        "Programmatic Configuration",
        """\
from leadfactory.llm import LLMConfig, ProviderConfig, FallbackStrategy

# Create custom configuration
config = LLMConfig()
config.fallback_strategy = FallbackStrategy.COST_OPTIMIZED
config.max_fallback_attempts = 5

# Add custom provider
config.providers['custom'] = ProviderConfig(
    name='custom',
    api_key='your_key',
    default_model='custom-model',
    cost_per_1k_tokens=0.01
)

# Initialize client with custom config
client = LLMClient(config)
""",
    ),
    (
        "Smart Fallback (Default)",
        """\
config.fallback_strategy = FallbackStrategy.SMART_FALLBACK
""",
    ),
    (
        "Cost Optimized",
        """\
config.fallback_strategy = FallbackStrategy.COST_OPTIMIZED
""",
    ),
    (
        "Quality Optimized",
        """\
config.fallback_strategy = FallbackStrategy.QUALITY_OPTIMIZED
""",
    ),
    (
        "Round Robin",
        """\
config.fallback_strategy = FallbackStrategy.ROUND_ROBIN
""",
    ),
    (
        "Fail Fast",
        """\
config.fallback_strategy = FallbackStrategy.FAIL_FAST
""",
    ),
    (
        "Real-time Cost Tracking",
        """\
# Check provider costs
status = client.get_provider_status()
for provider, info in status.items():
    print(f"{provider}: ${info.get('daily_cost', 0):.4f} today")

# Reset cost tracking
client.reset_cost_tracking('openai')  # Reset single provider
client.reset_cost_tracking()          # Reset all providers
""",
    ),
    (
        "Budget Controls",
        """\
from leadfactory.llm.exceptions import LLMQuotaExceededError

try:
    response = client.chat_completion(messages)
except LLMQuotaExceededError as e:
    print(f"Budget exceeded: {e}")
""",
    ),
    (
        "Cost Estimation",
        """\
# Estimate cost before making request
estimated_tokens = client._estimate_tokens(messages, max_tokens=100)
cost = config.estimate_request_cost(estimated_tokens, 'openai')
print(f"Estimated cost: ${cost:.4f}")
""",
    ),
    (
        "Error Types",
        """\
from leadfactory.llm.exceptions import (
    LLMConnectionError,      # Network issues
    LLMRateLimitError,       # Rate limits exceeded
    LLMAuthenticationError,  # Invalid API keys
    LLMQuotaExceededError,   # Budget/quota limits
    LLMModelNotFoundError,   # Invalid model
    LLMTimeoutError,         # Request timeouts
    LLMValidationError,      # Input validation issues
    AllProvidersFailedError  # All providers failed
)

try:
    response = client.chat_completion(messages)
except LLMRateLimitError as e:
    print(f"Rate limited on {e.provider}, retry after {e.retry_after}s")
except AllProvidersFailedError as e:
    print(f"All providers failed: {e.provider_errors}")
""",
    ),
    (
        "Retry Logic",
        """\
import time
from leadfactory.llm.exceptions import LLMRateLimitError

def robust_completion(client, messages, max_retries=3):
    for attempt in range(max_retries):
        try:
            return client.chat_completion(messages)
        except LLMRateLimitError as e:
            if e.retry_after and attempt < max_retries - 1:
                time.sleep(e.retry_after)
                continue
            raise
        except Exception as e:
            if attempt == max_retries - 1:
                raise
            time.sleep(2 ** attempt)  # Exponential backoff
""",
    ),
    (
        "Pipeline Integration",
        """\
from leadfactory.llm import LLMClient, LLMError

class MyPipelineNode:
    def __init__(self):
        self.llm_client = LLMClient()

    def process(self, data):
        try:
            response = self.llm_client.chat_completion(
                messages=[
                    {"role": "system", "content": "You are a business analyst."},
                    {"role": "user", "content": f"Analyze this business: {data}"}
                ],
                temperature=0.3,
                max_tokens=500
            )

            return {
                'success': True,
                'content': response['choices'][0]['message']['content'],
                'provider': response['provider'],
                'cost': response.get('cost', 0)
            }

        except LLMError as e:
            return {
                'success': False,
                'error': str(e),
                'provider': getattr(e, 'provider', None)
            }
""",
    ),
    (
        "Batch Processing",
        """\
async def process_batch(client, items, batch_size=10):
    results = []

    for i in range(0, len(items), batch_size):
        batch = items[i:i+batch_size]
        batch_results = []

        for item in batch:
            try:
                response = client.chat_completion(
                    messages=[{"role": "user", "content": item}]
                )
                batch_results.append({
                    'success': True,
                    'content': response['choices'][0]['message']['content']
                })
            except Exception as e:
                batch_results.append({
                    'success': False,
                    'error': str(e)
                })

        results.extend(batch_results)

        # Check costs periodically
        status = client.get_provider_status()
        total_cost = sum(p.get('daily_cost', 0) for p in status.values())
        if total_cost > 10.0:  # Stop if over $10
            break

    return results
""",
    ),
    (
        '"No providers available"',
        """\
# Check provider status
client = LLMClient()
status = client.get_provider_status()
print(status)

# Verify environment variables
import os
print("OpenAI Key:", bool(os.getenv('OPENAI_API_KEY')))
print("Anthropic Key:", bool(os.getenv('ANTHROPIC_API_KEY')))
print("Ollama Host:", os.getenv('OLLAMA_HOST', 'not set'))
""",
    ),
    (
        '"All providers failed"',
        """\
try:
    response = client.chat_completion(messages)
except AllProvidersFailedError as e:
    for provider, error in e.provider_errors.items():
        print(f"{provider}: {error}")
""",
    ),
    (
        "High costs",
        """\
# Check current spending
status = client.get_provider_status()
for provider, info in status.items():
    cost = info.get('daily_cost', 0)
    if cost > 0:
        print(f"{provider}: ${cost:.4f} today")

# Reset if needed
client.reset_cost_tracking()
""",
    ),
    (
        "Rate limiting",
        """\
# Check rate limit configuration
config = LLMConfig.from_environment()
for name, provider in config.providers.items():
    print(f"{name}: {provider.rate_limit_rpm} RPM, {provider.rate_limit_tpm} TPM")
""",
    ),
    (
        "Debugging",
        """\
import logging
logging.basicConfig(level=logging.DEBUG)

# LLM client will now log all requests and responses
client = LLMClient()
""",
    ),
    (
        "Debugging",
        """\
config = LLMConfig.from_environment()
issues = config.validate()
if issues:
    print("Configuration issues:")
    for issue in issues:
        print(f"  - {issue}")
""",
    ),
    (
        "Performance Monitoring",
        """\
import time

def monitor_performance(client, messages):
    start_time = time.time()

    try:
        response = client.chat_completion(messages)
        elapsed = time.time() - start_time

        print(f"Success in {elapsed:.2f}s using {response['provider']}")
        print(f"Tokens: {response['usage']['total_tokens']}")

        return response
    except Exception as e:
        elapsed = time.time() - start_time
        print(f"Failed in {elapsed:.2f}s: {e}")
        raise
""",
    ),
]
