"""Bitbucket's branch and path globs (`*`, `**`, `?`, `{a,b}`), matched without backtracking."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Final, TypeAlias

from keyless.limits import PIPELINE_GLOB_CACHE_SIZE

_STARSTAR: Final = "\x00**"
_STAR: Final = "\x00*"
_ANY: Final = "\x00?"
#: A branch glob state: element index, alternative (-1 outside `{...}`), offset in it.
_State: TypeAlias = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class BranchGlob:
    """Bitbucket's branch globs: ``*`` within a path segment, ``**`` across ``/``, ``{a,b}``.

    Matched by following every state at once (an NFA), so the work is at most the branch's
    length times the pattern's, where a backtracking regex took exponential time on ``*a*a*a``.
    """

    elements: tuple[str | tuple[str, ...], ...]

    def fullmatch(self, text: str) -> bool:
        states = self._closure({(0, -1, 0)})
        for char in text:
            states = self._closure(self._step(states, char))
            if not states:
                return False
        return (len(self.elements), -1, 0) in states

    def _closure(self, states: set[_State]) -> set[_State]:
        done: set[_State] = set()
        pending = list(states)
        while pending:
            state = pending.pop()
            if state in done:
                continue
            done.add(state)
            index, option, offset = state
            if index == len(self.elements):
                continue
            element = self.elements[index]
            if isinstance(element, tuple):
                if option < 0:
                    pending.extend((index, n, 0) for n in range(len(element)))
                elif offset == len(element[option]):
                    pending.append((index + 1, -1, 0))
            elif element in (_STAR, _STARSTAR):
                pending.append((index + 1, -1, 0))
        return done

    def _step(self, states: set[_State], char: str) -> set[_State]:
        following: set[_State] = set()
        for index, option, offset in states:
            if index == len(self.elements):
                continue
            element = self.elements[index]
            if isinstance(element, tuple):
                chosen = element[option] if option >= 0 else ""
                if offset < len(chosen) and chosen[offset] == char:
                    following.add((index, option, offset + 1))
            elif element == _STARSTAR:
                if char != "\n":  # as the regex `.*` it replaces
                    following.add(_state_at(index))
            elif element == _STAR:
                if char != "/":
                    following.add(_state_at(index))
            elif element == _ANY:
                if char != "/":
                    following.add(_state_at(index + 1))
            elif element == char:
                following.add(_state_at(index + 1))
        return following


def _state_at(index: int) -> _State:
    return (index, -1, 0)


@functools.lru_cache(maxsize=PIPELINE_GLOB_CACHE_SIZE)
def branch_glob(pattern: str) -> BranchGlob:
    """``pattern`` as a ``BranchGlob``."""
    out: list[str | tuple[str, ...]] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**", index):
            out.append(_STARSTAR)
            index += 2
            continue
        if char == "*":
            out.append(_STAR)
        elif char == "?":
            out.append(_ANY)
        elif char == "{" and "}" in pattern[index:]:
            end = pattern.index("}", index)
            out.append(tuple(pattern[index + 1 : end].split(",")))
            index = end
        else:
            out.append(char)
        index += 1
    return BranchGlob(tuple(out))
