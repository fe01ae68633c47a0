"""Copy-on-write maps for the state: a block's cost follows what it touches.

Why: every block is applied to a *copy* of the state (the previous state stays readable by
the API, the batch cache and the history while the next block runs). A deep copy costs
O(state); a :class:`CowMap` child costs O(log n) and shares everything with its parent:

* **Layers.** A map is a stack of frozen dicts (``_layers``, oldest first) plus one dict of
  its own writes (``_own``). Lookups go newest to oldest. ``child()`` freezes the parent's
  own dict into a layer and merges small top layers like a binary counter (a layer is merged
  into the one below while that one is less than twice its size), so there are O(log n)
  layers and every entry is copied O(log n) times over its life.
* **Copy on access.** Values that the STF mutates in place (accounts, tasks, epochs) are
  cloned by ``clone`` the first time a writable map hands them out, so the parent's object
  is never touched. ``peek`` and iteration (``values``/``items``) return the stored objects
  without cloning: they are read-only views.
* **Savepoints.** ``begin``/``rollback``/``commit`` journal the first access to each key so
  a rejected action can be undone exactly (defence in depth: handlers check before they
  mutate).
* **Sealing.** A sealed map (a state that has been handed out) refuses writes and hands out
  its objects without cloning, so readers in other threads never cause writes.

Iteration order equals a plain dict's: insertion order, an overwritten key keeps its place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

_MISSING: Any = object()


class SealedError(TypeError):
    """A write to a state that has been handed out (copy it first)."""


class CowMap(MutableMapping[K, V], Generic[K, V]):
    """A persistent-ish dict (see the module docstring)."""

    __slots__ = ("_clone", "_jlen", "_journal", "_layers", "_len", "_own", "_sealed")

    def __init__(self, data: dict[K, V] | None = None,
                 clone: Callable[[V], V] | None = None) -> None:
        self._layers: tuple[dict[K, V], ...] = ()
        self._own: dict[K, V] = dict(data) if data else {}
        self._clone = clone
        self._sealed = False
        self._journal: dict[K, Any] | None = None
        self._len = len(self._own)
        self._jlen = 0

    # ---- reads
    def _find(self, key: K) -> Any:
        v = self._own.get(key, _MISSING)
        if v is _MISSING:
            for layer in reversed(self._layers):
                v = layer.get(key, _MISSING)
                if v is not _MISSING:
                    break
        return v

    def peek(self, key: K, default: Any = None) -> Any:
        """The stored object, never cloned: read it, do not mutate it."""
        v = self._find(key)
        return default if v is _MISSING else v

    def __getitem__(self, key: K) -> V:
        own = self._own
        v = own.get(key, _MISSING)
        j = self._journal
        if v is not _MISSING:
            if j is not None and self._clone is not None and key not in j:
                j[key] = v
                v = own[key] = self._clone(v)
            return v  # type: ignore[no-any-return]
        v = self._find(key)
        if v is _MISSING:
            raise KeyError(key)
        if self._sealed or self._clone is None:
            return v  # type: ignore[no-any-return]
        if j is not None and key not in j:
            j[key] = _MISSING
        v = own[key] = self._clone(v)
        return v  # type: ignore[no-any-return]

    def get(self, key: K, default: Any = None) -> Any:
        """``Mapping.get`` without its exception on a miss (admission reads a few absent
        keys per action): the same object ``self[key]`` would hand out, cloned for writing
        exactly when ``__getitem__`` would clone it, or ``default``."""
        v = self._own.get(key, _MISSING)
        if v is not _MISSING:
            if self._journal is None or self._clone is None:
                return v
            return self[key]
        v = self._find(key)
        if v is _MISSING:
            return default
        if self._sealed or self._clone is None:
            return v
        return self[key]

    def __contains__(self, key: object) -> bool:
        return self._find(key) is not _MISSING  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[K]:
        if not self._layers:
            yield from list(self._own)
            return
        seen: set[K] = set()
        for d in (*self._layers, self._own):
            for k in list(d):
                if k not in seen:
                    seen.add(k)
                    yield k

    def values(self) -> Any:  # read-only view (no clone)
        return [self._find(k) for k in self]

    def items(self) -> Any:  # read-only view (no clone)
        return [(k, self._find(k)) for k in self]

    def own_keys(self) -> list[K]:
        """Keys written (or handed out for writing) since this map was made."""
        return list(self._own)

    # ---- writes
    def __setitem__(self, key: K, value: V) -> None:
        if self._sealed:
            raise SealedError("this state is sealed; copy() it first")
        own = self._own
        j = self._journal
        if j is not None and key not in j:
            j[key] = own.get(key, _MISSING)
        if key not in own and self._find(key) is _MISSING:
            self._len += 1
        own[key] = value

    def __delitem__(self, key: K) -> None:
        raise TypeError("state maps only grow")

    def seal(self) -> None:
        self._sealed = True

    def child(self) -> CowMap[K, V]:
        """A writable copy sharing every entry; O(log n) amortised."""
        layers = self._layers
        if self._own:
            layers = (*layers, self._own)
            if not self._sealed:  # keep writing into a fresh dict; the old one is shared now
                self._layers, self._own = layers, {}
        while len(layers) >= 2 and len(layers[-2]) < 2 * len(layers[-1]):
            merged = dict(layers[-2])
            merged.update(layers[-1])
            layers = (*layers[:-2], merged)
        c: CowMap[K, V] = CowMap.__new__(CowMap)
        c._layers, c._own, c._clone = layers, {}, self._clone
        c._sealed, c._journal, c._len, c._jlen = False, None, self._len, 0
        return c

    # ---- savepoints
    def begin(self) -> None:
        self._journal = {}
        self._jlen = self._len

    def commit(self) -> None:
        self._journal = None

    def rollback(self) -> None:
        j = self._journal
        assert j is not None, "rollback without begin"
        own = self._own
        for k, old in j.items():
            if old is _MISSING:
                own.pop(k, None)
            else:
                own[k] = old
        self._len = self._jlen
        self._journal = None

    # ---- pickling: flattened, no layers
    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (dict(self.items()), self._clone))

    def __repr__(self) -> str:
        return f"CowMap({len(self)} entries, {len(self._layers)} layers)"


def _restore(data: dict[Any, Any], clone: Callable[[Any], Any] | None) -> CowMap[Any, Any]:
    return CowMap(data, clone)


def clone_record(obj: Any) -> Any:
    """Shallow copy of a dataclass instance whose list/dict/set fields are copied too (so
    ``ep.votes[pk] = ...`` on the clone cannot reach the original)."""
    new = object.__new__(type(obj))
    d = obj.__dict__.copy()
    for k, v in d.items():
        t = type(v)
        if t is list or t is dict or t is set:
            d[k] = v.copy()
    new.__dict__ = d
    return new
