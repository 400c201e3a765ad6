"""Shared pieces of the property-based tests (tests/unit/test_properties_*.py): one settings
profile, so that every run draws the same examples (no example database, no random seed), and
strategies for YAML-ish documents and for mutations of a real configuration file."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# Reproducible: the examples come from the test's name, none are replayed from a local
# database; the number is bounded so that the whole property set stays fast.
PROPERTIES = settings(
    derandomize=True,
    database=None,
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=False,
)

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)


def yamlish(keys: list[str]) -> st.SearchStrategy[Any]:
    """Random nestings of mappings, lists and scalars; mapping keys are mostly `keys` (the
    sections and fields a loader knows), so that documents get past the first check."""
    key = st.sampled_from(keys) | st.text(max_size=8) | st.integers(-3, 3)
    return st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(key, inner, max_size=5),
        max_leaves=20,
    )


Path_ = tuple[Any, ...]


def paths(node: Any, at: Path_ = ()) -> Iterator[Path_]:
    """Every place in a document (keys of mappings, indexes of lists), parents first."""
    yield at
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, (*at, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, (*at, i))


def other_type(value: Any) -> st.SearchStrategy[Any]:
    """A scalar whose type differs from `value`'s (bool and int counted apart)."""
    kinds = {
        type(None): st.none(),
        bool: st.booleans(),
        int: st.integers(min_value=-(2**40), max_value=2**40),
        float: st.floats(allow_nan=True, allow_infinity=True),
        str: st.text(max_size=12),
    }
    return st.one_of(*(s for t, s in kinds.items() if type(value) is not t))


@dataclass(frozen=True)
class Mutation:
    """One change to a document: the value at `at` deleted, replaced, or its key renamed."""

    at: Path_
    action: str  # "delete", "replace" or "rename"
    value: Any = None

    def apply(self, doc: Any) -> bool:
        """Change `doc` in place; False when `at` is gone (an earlier mutation removed it)."""
        parent = doc
        for k in self.at[:-1]:
            try:
                parent = parent[k]
            except (KeyError, IndexError, TypeError):
                return False
        last = self.at[-1]
        if isinstance(parent, dict) and last in parent:
            if self.action == "delete":
                del parent[last]
            elif self.action == "rename":
                parent[self.value] = parent.pop(last)
            else:
                parent[last] = self.value
            return True
        if isinstance(parent, list) and isinstance(last, int) and last < len(parent):
            if self.action == "delete":
                del parent[last]
            elif self.action == "replace":
                parent[last] = self.value
            return self.action != "rename"
        return False


@st.composite
def mutation(draw: st.DrawFn, doc: Any) -> Mutation:
    """A field deleted, a value replaced by a random scalar of another type (sometimes a small
    nesting), or a key renamed to random text."""
    at = draw(st.sampled_from([p for p in paths(doc) if p]))
    value = copy.deepcopy(doc)
    for k in at:
        value = value[k]
    renamable = isinstance(at[-1], str)  # a key of a mapping, not an index of a list
    action = draw(st.sampled_from(["delete", "replace", "replace", *["rename"] * renamable]))
    if action == "rename":
        return Mutation(at, action, draw(st.text(max_size=10)))
    if action == "replace":
        new = draw(other_type(value) | yamlish(["x"]).filter(lambda v: isinstance(v, list | dict)))
        return Mutation(at, action, new)
    return Mutation(at, action)


def mutated(doc: Any, changes: list[Mutation]) -> tuple[Any, list[Mutation]]:
    """A copy of `doc` with `changes` applied in order; returns the ones that applied."""
    out = copy.deepcopy(doc)
    return out, [m for m in changes if m.apply(out)]
