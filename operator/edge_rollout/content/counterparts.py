"""Which tensor of the previous release a changed tensor is delta-coded against.

Pure: compares tensor keys (name, dtype, byte size, digest) of two releases of a file. A tensor
whose bytes the base already has needs no delta (its chunks are found by content); a changed
one is paired by name first, then by dtype and size in file order (exporters rename `Constant`
outputs between exports). No bytes, no I/O.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class TensorKey:
    """What the pairing looks at of one placed tensor."""

    name: str
    dtype: str
    size: int
    digest: str

    @property
    def shape(self) -> tuple[str, int]:
        """What two counterparts must share for a delta between them: dtype and byte size."""
        return self.dtype, self.size


def counterparts(new: Sequence[TensorKey], old: Sequence[TensorKey]) -> dict[str, str]:
    """New tensor name -> old tensor name, for every changed new tensor that has a counterpart.

    Unchanged tensors (digest present in `old`) are left out, and so are the old tensors they
    reuse. The rest pair by equal name and shape, then the k-th unpaired new tensor of a shape
    with the k-th unpaired old tensor of that shape, in file order. One old tensor serves one new.

    >>> k = lambda n, d: TensorKey(n, "float32", 8, d)
    >>> new, old = [k("a", "1"), k("x", "2"), k("y", "9")], [k("a", "0"), k("b", "2"), k("c", "3")]
    >>> counterparts(new, old)
    {'a': 'a', 'y': 'c'}
    """
    reused = {t.digest for t in old} & {t.digest for t in new}
    changed = [t for t in new if t.digest not in reused]
    free = {t.name: t for t in old if t.digest not in reused}
    pairs: dict[str, str] = {}
    for t in changed:
        same = free.get(t.name)
        if same is not None and same.shape == t.shape:
            pairs[t.name] = free.pop(t.name).name
    by_shape: defaultdict[tuple[str, int], deque[TensorKey]] = defaultdict(deque)
    for t in free.values():
        by_shape[t.shape].append(t)
    for t in changed:
        if t.name not in pairs and by_shape[t.shape]:
            pairs[t.name] = by_shape[t.shape].popleft().name
    return pairs
