"""Bad input only ever gives LLMValidationError and costs nothing: the properties.

Property-based: hypothesis builds requests with exactly one defect whose field is known
(junk messages, roles, contents, names, parameters, unknown keywords), sends them at a
client pointed at the simulator, sync and async, and checks that the error is our own
validation error naming that field, that no provider was called and that the ledger
stayed empty. Explicit cases for the shapes the properties do not generate are in
tests/test_bad_input_cases.py; malformed settings in tests/test_bad_input_settings.py.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from leadfactory.llm.validation import GENERATION_PARAMETERS, ROLES

from .rejection_checks import FIXTURES_OK, USER, assert_rejected_for_free, call_async, call_sync

# fixtures, imported so that pytest finds them in this module
from .rejection_checks import client as client

# The named arguments of chat_completion: never generated as "unknown" keyword names.
SIGNATURE = {"messages", "model", "temperature", "max_tokens", "cache", "caller", "stream"}

# -- strategies: junk values ---------------------------------------------------------------

big_ints = st.integers(min_value=-(10**300), max_value=10**300)  # within float range
floats = st.floats(allow_nan=True, allow_infinity=True)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    big_ints,
    floats,
    st.text(max_size=10),
    st.binary(max_size=10),
    st.complex_numbers(allow_nan=True, allow_infinity=True),
)
hashable_junk = st.one_of(
    st.none(),
    st.booleans(),
    big_ints,
    floats,
    st.binary(max_size=10),
    st.tuples(st.integers(), st.text(max_size=3)),
)
nested_junk = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.text(max_size=5), children, max_size=3),
        st.tuples(children, children),
    ),
    max_leaves=8,
)
good_text = st.text(max_size=30)
good_message = st.builds(
    lambda role, content: {"role": role, "content": content},
    st.sampled_from(["user", "assistant", "system"]),
    good_text,
)
good_part = st.builds(lambda text: {"type": "text", "text": text}, good_text)


def _not_a_sequence(value: Any) -> bool:
    return not isinstance(value, (list, tuple, range))


# -- strategies: one defect each, with the field it must be reported under ----------------


@st.composite
def defective_messages(draw) -> tuple[dict[str, Any], str]:
    """(keyword arguments of chat_completion, the field the error must name)."""
    kind = draw(
        st.sampled_from(
            [
                "not_a_list",
                "empty",
                "item",
                "role",
                "content",
                "part",
                "key",
                "only_system",
            ]
        )
    )
    if kind == "not_a_list":
        value = draw(
            st.one_of(
                scalars,
                st.dictionaries(st.text(max_size=5), nested_junk, max_size=3),
                st.sets(st.integers(), max_size=3),
                st.just(USER),  # one message, not a list of them
            ).filter(_not_a_sequence)
        )
        return {"messages": value}, "messages"
    if kind == "empty":
        return {"messages": draw(st.sampled_from([[], ()]))}, "messages"
    if kind == "only_system":
        texts = draw(st.lists(good_text, min_size=1, max_size=3))
        return {"messages": [{"role": "system", "content": t} for t in texts]}, "messages"

    before = draw(st.lists(good_message, max_size=3))
    after = draw(st.lists(good_message, max_size=2))
    index = len(before)
    where = f"messages[{index}]"
    role = draw(st.sampled_from(["user", "system", "developer"]))  # content is required
    if kind == "item":
        bad = draw(st.one_of(scalars, st.lists(nested_junk, max_size=3)))
        field = where
    elif kind == "role":
        bad = {"content": draw(good_text)}
        if draw(st.booleans()):
            bad["role"] = draw(
                st.one_of(hashable_junk, st.text(max_size=12).filter(lambda r: r not in ROLES))
            )
        field = f"{where}.role"
    elif kind == "content":
        bad = {"role": role}
        if draw(st.booleans()):
            bad["content"] = draw(
                st.one_of(
                    st.none(),
                    st.booleans(),
                    big_ints,
                    st.integers(min_value=10**300, max_value=10**400),  # huge
                    floats,
                    st.binary(max_size=10),
                    st.complex_numbers(),
                    st.dictionaries(st.text(max_size=5), nested_junk, max_size=3),
                    st.sets(st.integers(), max_size=3),
                )
            )
        field = f"{where}.content"
    elif kind == "part":
        parts = draw(st.lists(good_part, max_size=2))
        junk_part = draw(
            st.one_of(
                scalars,
                st.lists(nested_junk, max_size=2),
                st.dictionaries(
                    st.text(max_size=5).filter(lambda k: k != "type"), nested_junk, max_size=3
                ),
                st.builds(lambda t: {"type": t, "text": "x"}, hashable_junk),
            )
        )
        field = f"{where}.content[{len(parts)}]"
        bad = {"role": role, "content": [*parts, junk_part, *draw(st.lists(good_part))]}
    else:  # kind == "key": a key that is not a string
        bad = {"role": role, "content": draw(good_text)}
        bad[draw(hashable_junk)] = draw(scalars)
        field = where
    return {"messages": [*before, bad, *after]}, field


@st.composite
def defective_parameters(draw) -> tuple[dict[str, Any], str]:
    kind = draw(st.sampled_from(["temperature", "max_tokens", "unknown", "stream", "model"]))
    if kind == "temperature":
        value = draw(
            st.one_of(
                st.floats(max_value=-1e-12),  # (-0.0 is a fine temperature: it is 0)
                st.floats(min_value=2.0, exclude_min=True),
                st.sampled_from([math.nan, math.inf, -math.inf]),
                st.integers(min_value=-(10**300), max_value=-1),
                st.integers(min_value=3, max_value=10**300),
                st.booleans(),
                st.text(max_size=8),
                st.binary(max_size=8),
                st.complex_numbers(),
                st.lists(st.floats(0, 2), max_size=2),
            )
        )
    elif kind == "max_tokens":
        value = draw(
            st.one_of(
                st.integers(min_value=-(10**300), max_value=0),
                floats,  # 100.0 is not a whole number of tokens either
                st.booleans(),
                st.text(max_size=8),
                st.binary(max_size=8),
                st.lists(st.integers(1, 10), max_size=2),
            )
        )
    elif kind == "stream":  # True and False are fine (tests/test_stream_e2e.py)
        value = draw(scalars.filter(lambda v: v is not None and not isinstance(v, bool)))
    elif kind == "model":
        value = draw(
            st.one_of(
                st.booleans(),
                big_ints,
                floats,
                st.binary(max_size=8),
                st.lists(st.text(max_size=5), max_size=2),
                st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
                st.from_regex(r"\s*", fullmatch=True),
            )
        )
    else:  # an unknown keyword argument: its name is the field
        kind = draw(
            st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True).filter(
                lambda n: n not in GENERATION_PARAMETERS and n not in SIGNATURE
            )
        )
        value = draw(nested_junk)
    return {"messages": [USER], kind: value}, kind


any_defect = st.one_of(defective_messages(), defective_parameters())


@settings(max_examples=400, suppress_health_check=FIXTURES_OK, deadline=None, database=None)
@given(case=any_defect)
def test_bad_input_gives_a_validation_error_naming_the_field(client, sim_env, case):
    arguments, field = case
    error = call_sync(client, arguments)
    assert_rejected_for_free(error, field, client, sim_env, arguments)


@settings(max_examples=60, suppress_health_check=FIXTURES_OK, deadline=None, database=None)
@given(case=any_defect)
def test_async_bad_input_gives_a_validation_error_naming_the_field(client, sim_env, case):
    arguments, field = case
    error = call_async(client, arguments)
    assert_rejected_for_free(error, field, client, sim_env, arguments)
