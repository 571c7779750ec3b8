"""Version checks: does each registered step type satisfy what a pipeline requires?

Requirements are PEP 440 specifier sets (``packaging.specifiers.SpecifierSet``):
``">=1.0,<2"``, ``"~=1.2"``, ``"==1.*"``. Also accepted, translated clause by clause
(clauses are separated by commas):

======================  ===========================  =====================================
written                 means                        becomes
======================  ===========================  =====================================
``^1.2.3`` / ``^1.2``   npm caret: same major        ``>=1.2.3,<2`` / ``>=1.2,<2``
``^0.2.3`` / ``^0.0.3`` npm caret below 1.0          ``>=0.2.3,<0.3`` / ``>=0.0.3,<0.0.4``
``~1.2.3`` / ``~1.2``   npm tilde: same minor        ``>=1.2.3,<1.3`` / ``>=1.2,<1.3``
``~1``                  npm tilde, major only        ``>=1,<2``
``~> 1.2``              Elixir/Ruby pessimistic      ``~=1.2``
``1.2.0``               a bare version: exactly it   ``==1.2.0``
``*`` or ``""``         anything                     (no constraint)
======================  ===========================  =====================================

The bounds come from ``packaging.version.Version(...).release``; nothing parses versions
by hand. A registered pre-release satisfies a requirement that its version number meets
(what is registered is what will run, so excluding pre-releases would only hide it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

from otpy.errors import StepValidationError

__all__ = ["Incompatibility", "check_versions", "parse_requirement"]


@dataclass(frozen=True, slots=True)
class Incompatibility:
    """A step type whose registered version does not satisfy the requirement:
    ``registered`` is None when the type is not registered at all."""

    step: str
    required: str
    registered: str | None
    reason: str


def _version(text: str, step: str, requirement: str) -> Version:
    try:
        return Version(text)
    except InvalidVersion:
        raise StepValidationError(
            f"requirement {requirement!r}: {text!r} is not a version", step=step, field="version"
        ) from None


def _upper(release: tuple[int, ...], index: int) -> str:
    """The release with component ``index`` bumped and the rest dropped: (1, 2, 3), 1 -> 1.3."""
    bumped = [*release[:index], release[index] + 1]
    return ".".join(str(part) for part in bumped)


def _clause(clause: str, step: str, requirement: str) -> str:
    text = clause.strip()
    if text in ("", "*"):
        return ""
    if text.startswith("~>"):
        return "~=" + text[2:].strip()
    if text.startswith("^"):
        version = _version(text[1:].strip(), step, requirement)
        release = version.release
        # npm: the first non-zero component may not change; with none, the last given one
        # (of at most three): ^0 -> <1, ^0.0 -> <0.1, ^0.0.0 -> <0.0.1.
        fixed = next((i for i, part in enumerate(release) if part != 0), None)
        if fixed is None:
            fixed = min(len(release), 3) - 1
        return f">={version},<{_upper(release, fixed)}"
    if text.startswith("~") and not text.startswith("~="):
        version = _version(text[1:].strip(), step, requirement)
        release = version.release
        index = 1 if len(release) >= 2 else 0
        return f">={version},<{_upper(release, index)}"
    if text[0].isdigit():
        _version(text, step, requirement)
        return f"=={text}"
    return text


def parse_requirement(requirement: str, *, step: str = "?") -> SpecifierSet:
    """The SpecifierSet a requirement means (see the table above); StepValidationError
    naming ``step`` and the requirement if it is not one."""
    if not isinstance(requirement, str):
        raise StepValidationError(
            f"a version requirement must be a string, got {requirement!r}",
            step=step,
            field="version",
        )
    clauses = [_clause(part, step, requirement) for part in requirement.split(",")]
    try:
        return SpecifierSet(",".join(c for c in clauses if c))
    except InvalidSpecifier as exc:
        raise StepValidationError(
            f"invalid version requirement {requirement!r}: {exc} (use PEP 440 such as "
            "'>=1.0,<2', or npm-style '^1.2' / '~1.2')",
            step=step,
            field="version",
        ) from None


def check_versions(
    required: Mapping[str, str], registered: Mapping[str, str]
) -> list[Incompatibility]:
    """Every step type of ``required`` (name -> requirement) that ``registered`` (name ->
    version) does not satisfy, in the order of ``required``; empty if all are met.

    Every requirement is parsed first: a bad one raises StepValidationError naming the
    step and the requirement, before anything is compared.
    """
    specifiers = {step: parse_requirement(spec, step=step) for step, spec in required.items()}
    found: list[Incompatibility] = []
    for step, specifier in specifiers.items():
        wanted = required[step]
        have = registered.get(step)
        if have is None:
            found.append(Incompatibility(step, wanted, None, "not registered"))
            continue
        try:
            version = Version(have)
        except InvalidVersion:
            found.append(
                Incompatibility(step, wanted, have, f"registered version {have!r} is invalid")
            )
            continue
        if not specifier.contains(version, prereleases=True):
            meaning = f" ({specifier})" if str(specifier) != wanted.replace(" ", "") else ""
            why = f"registered version {have} does not satisfy {wanted}{meaning}"
            found.append(Incompatibility(step, wanted, have, why))
    return found
