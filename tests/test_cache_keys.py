"""cache_key: one SHA-256 per request, the same whatever the spelling, different whenever
the answer could be.

Dict order, float and integer spellings, whitespace in JSON, None values and tuples do
not change the key; every field that determines the answer does; booleans and large
integers stay exact; a version prefix is hashed; pydantic models hash as their data;
what JSON cannot express is refused. And the cache package re-exports the function.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from leadfactory.llm import cache as cache_module
from leadfactory.llm.cache import cache_key
from leadfactory.llm.cache import request_key as request_key_module

from .cache_fixtures import make_request

# -- cache_key --------------------------------------------------------------------


def test_key_is_a_sha256_hex_digest():
    key = cache_key(make_request())
    assert len(key) == 64 and int(key, 16) >= 0


def test_key_ignores_dict_order():
    a = {
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.2,
        "model": "m",
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": True}},
    }
    b = {
        "response_format": {"json_schema": {"strict": True, "name": "x"}, "type": "json_schema"},
        "model": "m",
        "temperature": 0.2,
        "messages": [{"content": "hi", "role": "user"}],
    }
    assert cache_key(a) == cache_key(b)


@pytest.mark.parametrize("same", [0.70, 7e-1, Decimal("0.70"), Decimal("0.7")])
def test_key_normalises_floats(same):
    assert cache_key(make_request(temperature=0.7)) == cache_key(make_request(temperature=same))


def test_key_ignores_whitespace_and_number_spelling_in_json_requests():
    """Requests read from JSON text hash alike however the text was laid out."""
    compact = '{"messages":[{"role":"user","content":"hi"}],"temperature":0.7,"top_p":1}'
    spaced = """{
        "top_p" : 1.0 ,
        "temperature" :  7.0e-1,
        "messages" : [ { "content" : "hi", "role" : "user" } ]
    }"""
    assert cache_key(json.loads(compact)) == cache_key(json.loads(spaced))
    assert cache_key(json.loads(compact)) != cache_key(json.loads(compact.replace("0.7", "0.71")))


def test_key_treats_ints_equal_to_floats_alike():
    assert cache_key(make_request(temperature=1)) == cache_key(make_request(temperature=1.0))
    assert cache_key(make_request(temperature=0)) == cache_key(make_request(temperature=-0.0))
    assert cache_key(make_request(max_tokens=100)) == cache_key(make_request(max_tokens=100.0))


def test_key_keeps_booleans_and_large_ints_exact():
    assert cache_key(make_request(logprobs=True)) != cache_key(make_request(logprobs=1))
    assert cache_key(make_request(seed=2**53)) != cache_key(make_request(seed=2**53 + 1))
    assert cache_key(make_request(seed=10**400)) != cache_key(make_request(seed=10**400 + 1))


def test_key_drops_none_values_at_every_level():
    assert cache_key(make_request(model=None, seed=None)) == cache_key(
        {k: v for k, v in make_request().items() if k != "model"}
    )
    with_none = make_request(messages=[{"role": "user", "content": "hi", "name": None}])
    assert cache_key(with_none) == cache_key(
        make_request(messages=[{"role": "user", "content": "hi"}])
    )


def test_key_treats_tuples_as_lists():
    assert cache_key(make_request(stop=("\n", "END"))) == cache_key(
        make_request(stop=["\n", "END"])
    )


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.8},
        {"messages": [{"role": "user", "content": "Classify: ACME Corp."}]},
        {"messages": [{"role": "system", "content": "Classify: ACME Corp"}]},
        {"model": "anthropic/claude-3-5-haiku"},
        {"model": None},
        {"max_tokens": 101},
        {"top_p": 0.9},
        {"stop": ["\n"]},
        {"seed": 7},
    ],
)
def test_key_changes_with_what_determines_the_answer(change):
    assert cache_key(make_request(**change)) != cache_key(make_request())


def test_key_hashes_a_version_prefix(monkeypatch):
    before = cache_key(make_request())
    monkeypatch.setattr(request_key_module, "_KEY_PREFIX", "leadfactory-llm/cache-key/v999\n")
    assert cache_key(make_request()) != before


def test_key_hashes_pydantic_models_as_their_data():
    pydantic = pytest.importorskip("pydantic")

    class Lead(pydantic.BaseModel):
        name: str
        score: float

    assert cache_key({"x": Lead(name="a", score=1)}) == cache_key({"x": {"name": "a", "score": 1}})
    assert cache_key({"response_format": Lead}) != cache_key({"response_format": "Lead"})


def test_key_refuses_what_json_cannot_express():
    with pytest.raises(TypeError, match="cannot hash a object"):
        cache_key(make_request(stop=object()))
    with pytest.raises(TypeError, match="keys must be strings"):
        cache_key({"logit_bias": {50256: -100}})
    with pytest.raises(TypeError, match="mapping"):
        cache_key([("model", "m")])


def test_cache_re_exports_the_key_function():
    assert cache_module.cache_key is request_key_module.cache_key
    assert cache_module.CACHE_KEY_VERSION == request_key_module.CACHE_KEY_VERSION
