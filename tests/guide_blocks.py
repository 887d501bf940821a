"""The Python code blocks of the user guide (spec/llm-fallback-guide.md), verbatim.

Each entry is (section heading, code). tests/test_guide.py runs every one against
the simulator; keep them identical to the guide so the guide stays true.
"""

GUIDE_BLOCKS: list[tuple[str, str]] = [
    (
        "Basic Usage",
        'from leadfactory.llm import LLMClient\n\n# Initialize client (loads configuration from environment)\nclient = LLMClient()\n\n# Make a chat completion request\nresponse = client.chat_completion(\n    messages=[\n        {"role": "system", "content": "You are a helpful assistant."},\n        {"role": "user", "content": "What is the capital of France?"}\n    ],\n    temperature=0.7,\n    max_tokens=100\n)\n\n# Access the response\ncontent = response[\'choices\'][0][\'message\'][\'content\']\nprovider = response[\'provider\']\nusage = response[\'usage\']\n\nprint(f"Response from {provider}: {content}")\nprint(f"Usage: {usage}")\n',
    ),
    (
        "Programmatic Configuration",
        "from leadfactory.llm import LLMConfig, ProviderConfig, FallbackStrategy\n\n# Create custom configuration\nconfig = LLMConfig()\nconfig.fallback_strategy = FallbackStrategy.COST_OPTIMIZED\nconfig.max_fallback_attempts = 5\n\n# Add custom provider\nconfig.providers['custom'] = ProviderConfig(\n    name='custom',\n    api_key='your_key',\n    default_model='custom-model',\n    cost_per_1k_tokens=0.01\n)\n\n# Initialize client with custom config\nclient = LLMClient(config)\n",
    ),
    (
        "Smart Fallback (Default)",
        "config.fallback_strategy = FallbackStrategy.SMART_FALLBACK\n",
    ),
    (
        "Cost Optimized",
        "config.fallback_strategy = FallbackStrategy.COST_OPTIMIZED\n",
    ),
    (
        "Quality Optimized",
        "config.fallback_strategy = FallbackStrategy.QUALITY_OPTIMIZED\n",
    ),
    (
        "Round Robin",
        "config.fallback_strategy = FallbackStrategy.ROUND_ROBIN\n",
    ),
    (
        "Fail Fast",
        "config.fallback_strategy = FallbackStrategy.FAIL_FAST\n",
    ),
    (
        "Real-time Cost Tracking",
        "# Check provider costs\nstatus = client.get_provider_status()\nfor provider, info in status.items():\n    print(f\"{provider}: ${info.get('daily_cost', 0):.4f} today\")\n\n# Reset cost tracking\nclient.reset_cost_tracking('openai')  # Reset single provider\nclient.reset_cost_tracking()          # Reset all providers\n",
    ),
    (
        "Budget Controls",
        'from leadfactory.llm.exceptions import LLMQuotaExceededError\n\ntry:\n    response = client.chat_completion(messages)\nexcept LLMQuotaExceededError as e:\n    print(f"Budget exceeded: {e}")\n',
    ),
    (
        "Cost Estimation",
        "# Estimate cost before making request\nestimated_tokens = client._estimate_tokens(messages, max_tokens=100)\ncost = config.estimate_request_cost(estimated_tokens, 'openai')\nprint(f\"Estimated cost: ${cost:.4f}\")\n",
    ),
    (
        "Error Types",
        'from leadfactory.llm.exceptions import (\n    LLMConnectionError,      # Network issues\n    LLMRateLimitError,       # Rate limits exceeded\n    LLMAuthenticationError,  # Invalid API keys\n    LLMQuotaExceededError,   # Budget/quota limits\n    LLMModelNotFoundError,   # Invalid model\n    LLMTimeoutError,         # Request timeouts\n    LLMValidationError,      # Input validation issues\n    AllProvidersFailedError  # All providers failed\n)\n\ntry:\n    response = client.chat_completion(messages)\nexcept LLMRateLimitError as e:\n    print(f"Rate limited on {e.provider}, retry after {e.retry_after}s")\nexcept AllProvidersFailedError as e:\n    print(f"All providers failed: {e.provider_errors}")\n',
    ),
    (
        "Retry Logic",
        "import time\nfrom leadfactory.llm.exceptions import LLMRateLimitError\n\ndef robust_completion(client, messages, max_retries=3):\n    for attempt in range(max_retries):\n        try:\n            return client.chat_completion(messages)\n        except LLMRateLimitError as e:\n            if e.retry_after and attempt < max_retries - 1:\n                time.sleep(e.retry_after)\n                continue\n            raise\n        except Exception as e:\n            if attempt == max_retries - 1:\n                raise\n            time.sleep(2 ** attempt)  # Exponential backoff\n",
    ),
    (
        "Pipeline Integration",
        "from leadfactory.llm import LLMClient, LLMError\n\nclass MyPipelineNode:\n    def __init__(self):\n        self.llm_client = LLMClient()\n\n    def process(self, data):\n        try:\n            response = self.llm_client.chat_completion(\n                messages=[\n                    {\"role\": \"system\", \"content\": \"You are a business analyst.\"},\n                    {\"role\": \"user\", \"content\": f\"Analyze this business: {data}\"}\n                ],\n                temperature=0.3,\n                max_tokens=500\n            )\n\n            return {\n                'success': True,\n                'content': response['choices'][0]['message']['content'],\n                'provider': response['provider'],\n                'cost': response.get('cost', 0)\n            }\n\n        except LLMError as e:\n            return {\n                'success': False,\n                'error': str(e),\n                'provider': getattr(e, 'provider', None)\n            }\n",
    ),
    (
        "Batch Processing",
        "async def process_batch(client, items, batch_size=10):\n    results = []\n\n    for i in range(0, len(items), batch_size):\n        batch = items[i:i+batch_size]\n        batch_results = []\n\n        for item in batch:\n            try:\n                response = client.chat_completion(\n                    messages=[{\"role\": \"user\", \"content\": item}]\n                )\n                batch_results.append({\n                    'success': True,\n                    'content': response['choices'][0]['message']['content']\n                })\n            except Exception as e:\n                batch_results.append({\n                    'success': False,\n                    'error': str(e)\n                })\n\n        results.extend(batch_results)\n\n        # Check costs periodically\n        status = client.get_provider_status()\n        total_cost = sum(p.get('daily_cost', 0) for p in status.values())\n        if total_cost > 10.0:  # Stop if over $10\n            break\n\n    return results\n",
    ),
    (
        '"No providers available"',
        "# Check provider status\nclient = LLMClient()\nstatus = client.get_provider_status()\nprint(status)\n\n# Verify environment variables\nimport os\nprint(\"OpenAI Key:\", bool(os.getenv('OPENAI_API_KEY')))\nprint(\"Anthropic Key:\", bool(os.getenv('ANTHROPIC_API_KEY')))\nprint(\"Ollama Host:\", os.getenv('OLLAMA_HOST', 'not set'))\n",
    ),
    (
        '"All providers failed"',
        'try:\n    response = client.chat_completion(messages)\nexcept AllProvidersFailedError as e:\n    for provider, error in e.provider_errors.items():\n        print(f"{provider}: {error}")\n',
    ),
    (
        "High costs",
        "# Check current spending\nstatus = client.get_provider_status()\nfor provider, info in status.items():\n    cost = info.get('daily_cost', 0)\n    if cost > 0:\n        print(f\"{provider}: ${cost:.4f} today\")\n\n# Reset if needed\nclient.reset_cost_tracking()\n",
    ),
    (
        "Rate limiting",
        '# Check rate limit configuration\nconfig = LLMConfig.from_environment()\nfor name, provider in config.providers.items():\n    print(f"{name}: {provider.rate_limit_rpm} RPM, {provider.rate_limit_tpm} TPM")\n',
    ),
    (
        "Debugging",
        "import logging\nlogging.basicConfig(level=logging.DEBUG)\n\n# LLM client will now log all requests and responses\nclient = LLMClient()\n",
    ),
    (
        "Debugging",
        'config = LLMConfig.from_environment()\nissues = config.validate()\nif issues:\n    print("Configuration issues:")\n    for issue in issues:\n        print(f"  - {issue}")\n',
    ),
    (
        "Performance Monitoring",
        "import time\n\ndef monitor_performance(client, messages):\n    start_time = time.time()\n\n    try:\n        response = client.chat_completion(messages)\n        elapsed = time.time() - start_time\n\n        print(f\"Success in {elapsed:.2f}s using {response['provider']}\")\n        print(f\"Tokens: {response['usage']['total_tokens']}\")\n\n        return response\n    except Exception as e:\n        elapsed = time.time() - start_time\n        print(f\"Failed in {elapsed:.2f}s: {e}\")\n        raise\n",
    ),
]
