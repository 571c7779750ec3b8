"""What a DSPy job is made of, between the stored spec and live DSPy objects.

- references: ``"module:attr"`` imported (:func:`load_reference`) — the user names the code
  to import; nothing from a stored or YAML value is ever evaluated;
- examples: ``dspy.Example`` to and from the stored ``{"inputs": ..., "expected": ...}``;
- the optimizer: by name (a DSPy teleprompter class, made with the job's metric, seed,
  threads and LM where it takes them) or an instance; ``"evaluate"`` for an evaluation;
- the LM: the job's calls go through ``otpy.dspy.lm`` (its target is stored, so another
  process makes the same LM); every LM a program or optimizer holds must be one;
- programs as DSPy saves them (``module.save("x.json")``'s JSON).
"""

from __future__ import annotations

import copy
import difflib
import inspect
import json
import sys
import threading
import types
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dspy  # type: ignore[import-untyped]
import orjson
from dspy.teleprompt import Teleprompter  # type: ignore[import-untyped]
from dspy.utils.saving import get_dependency_versions  # type: ignore[import-untyped]

from otpy._plugins import resolve
from otpy.dspy._engine import OtpyEngine
from otpy.dspy._lm import HasProviders, bind, lm
from otpy.errors import ConfigurationError
from otpy.optimize import DSPyTarget

__all__ = [
    "EVALUATE",
    "DSPyParts",
    "check_lms",
    "compile_arguments",
    "example_records",
    "examples_of",
    "fresh",
    "load_reference",
    "lm_of",
    "make_optimizer",
    "optimizer_class",
    "program_from_json",
    "program_json",
    "program_of",
    "target_of",
]

EVALUATE = "evaluate"
"""The optimizer name of a job that evaluates its program (``dspy.Evaluate``) and keeps it."""


@dataclass
class DSPyParts:
    """The live objects of a DSPy job: the ``program`` and ``optimizer`` as given (each run
    works on deep copies, so that a re-run starts as the first did; ``optimizer`` None for
    an evaluation), the ``metric``, the ``lm`` its calls go to, and the ``compiled``
    program once a run of this process has made it."""

    program: Any
    optimizer: Any
    metric: Callable[..., Any]
    lm: Any
    compiled: Any = None


def load_reference(reference: str, *, what: str, base_dir: str | None = None) -> Any:
    """The object ``module:attr`` names (``attr`` may be dotted), importing the module
    (``base_dir`` is put on ``sys.path`` first if it is not there). ConfigurationError
    naming ``what`` and the reference if it cannot be imported or has no such attribute."""
    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ConfigurationError(f"{what}: {reference!r} is not a reference 'module:attr'")
    if base_dir is not None and base_dir not in sys.path:
        sys.path.insert(0, base_dir)
    try:
        return resolve(reference)
    except ImportError as exc:
        raise ConfigurationError(f"{what}: cannot import {module_name!r} ({exc})") from exc
    except AttributeError:
        raise ConfigurationError(
            f"{what}: {module_name!r} has no attribute {attribute!r}"
        ) from None


def program_of(found: Any, what: str = "program") -> Any:
    """A ``dspy.Module``: ``found`` itself, or what ``found()`` returns (a class or a
    factory); ConfigurationError otherwise."""
    if not isinstance(found, dspy.Module) and callable(found):
        found = found()
    if not isinstance(found, dspy.Module):
        raise ConfigurationError(f"{what}: expected a dspy.Module, got {type(found).__name__}")
    return found


def example_records(
    examples: Sequence[Any], inputs: Sequence[str] | None, what: str
) -> list[dict[str, Any]]:
    """``examples`` (``dspy.Example`` with their inputs set, or mappings whose ``inputs``
    are named) as the job stores them; ConfigurationError naming ``what`` and the example
    for one without inputs or whose values are not JSON."""
    records = []
    for index, example in enumerate(examples):
        if isinstance(example, dspy.Example):
            fields = dict(example.items())
            names = list(inputs) if inputs is not None else list(example._input_keys or ())
        elif isinstance(example, Mapping):
            fields, names = dict(example), list(inputs or ())
        else:
            raise ConfigurationError(
                f"{what}[{index}]: expected a dspy.Example or a mapping, got "
                f"{type(example).__name__}"
            )
        missing = [name for name in names if name not in fields]
        if not names or missing:
            why = f"lacks the inputs {missing}" if missing else "has no inputs"
            raise ConfigurationError(
                f"{what}[{index}] {why}: use dspy.Example(...).with_inputs(...), or name "
                "the input fields with inputs="
            )
        record = {
            "inputs": {name: fields[name] for name in names},
            "expected": {k: v for k, v in fields.items() if k not in names},
        }
        try:
            json.dumps(record)
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(
                f"{what}[{index}]: a job stores its examples as JSON: {exc}"
            ) from None
        records.append(record)
    return records


def examples_of(records: Sequence[Mapping[str, Any]]) -> list[Any]:
    """The ``dspy.Example`` of stored records (inputs first, then the other fields)."""
    return [
        dspy.Example(**record["inputs"], **(record.get("expected") or {})).with_inputs(
            *record["inputs"]
        )
        for record in records
    ]


def optimizer_class(name: str) -> type | None:
    """The DSPy teleprompter called ``name`` (case, ``_`` and ``-`` aside: ``mipro_v2``
    is ``MIPROv2``); None for ``"evaluate"``. ConfigurationError naming the known ones."""
    if name.lower() == EVALUATE:
        return None
    known = {
        attr: value
        for attr in dir(dspy.teleprompt)
        if isinstance(value := getattr(dspy.teleprompt, attr), type)
        and issubclass(value, Teleprompter)
        and value is not Teleprompter
    }
    wanted = name.replace("_", "").replace("-", "").lower()
    for attr, value in known.items():
        if attr.lower() == wanted:
            return value
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ConfigurationError(
        f"unknown optimizer {name!r}{hint} (known: {EVALUATE}, {', '.join(sorted(known))})"
    )


def make_optimizer(
    name: str,
    options: Mapping[str, Any],
    *,
    metric: Callable[..., Any],
    seed: int,
    threads: int | None,
    job_lm: Any,
) -> Any:
    """The optimizer ``name`` made with ``options``, and with the job's ``metric``,
    ``seed``, ``threads`` (``num_threads``) and LM (``reflection_lm``, GEPA's) where its
    constructor takes them and ``options`` does not say; None for ``"evaluate"``.
    ConfigurationError for an unknown name or an option it does not take."""
    cls = optimizer_class(name)
    if cls is None:
        if options:
            raise ConfigurationError(f"optimizer {EVALUATE!r} takes no options")
        return None
    parameters = inspect.signature(cls).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    unknown = [key for key in options if key not in parameters and not takes_any]
    if unknown:
        accepted = ", ".join(p for p in parameters if p != "self")
        raise ConfigurationError(
            f"optimizer {cls.__name__}: unknown options {unknown} (it takes: {accepted})"
        )
    arguments = dict(options)
    for key, value in (
        ("metric", metric),
        ("seed", seed),
        ("num_threads", threads),
        ("reflection_lm", job_lm),
    ):
        if key in parameters and key not in arguments and value is not None:
            arguments[key] = value
    try:
        with dspy.context(lm=job_lm):  # what it takes from DSPy's settings is the job's LM
            return cls(**arguments)
    except (TypeError, ValueError, AssertionError) as exc:
        raise ConfigurationError(f"optimizer {cls.__name__}: {exc}") from exc


def compile_arguments(optimizer: Any, trainset: list[Any], valset: list[Any] | None,
                      options: Mapping[str, Any]) -> dict[str, Any]:  # fmt: skip
    """The keyword arguments of ``optimizer.compile``: the trainset, the valset where it
    takes one, and ``options``; ConfigurationError for an option it does not take."""
    parameters = inspect.signature(optimizer.compile).parameters
    unknown = [key for key in options if key not in parameters]
    if unknown:
        raise ConfigurationError(
            f"{type(optimizer).__name__}.compile takes no {unknown} (it takes: "
            f"{', '.join(p for p in parameters if p != 'student')})"
        )
    arguments: dict[str, Any] = {"trainset": trainset, **options}
    if valset is not None:
        if "valset" not in parameters:
            raise ConfigurationError(f"{type(optimizer).__name__}.compile takes no valset")
        arguments["valset"] = valset
    return arguments


_LOCKS = {type(threading.Lock()): threading.Lock, type(threading.RLock()): threading.RLock}


def fresh(template: Any) -> Any:
    """A deep copy of ``template`` (a program or an optimizer) for one run, its locks new
    ones (DSPy's optimizers hold some); a shallow one, with a warning, if it cannot be
    deep-copied (a re-run may then not replay exactly)."""
    try:
        if isinstance(template, dspy.Module):
            return template.deepcopy()
        return copy.deepcopy(template, _new_locks(template))
    except Exception as exc:  # an attribute that cannot be copied
        warnings.warn(
            f"otpy.dspy: {type(template).__name__} cannot be deep-copied ({exc}); each run "
            "of the job uses a shallow copy, so a resumed run may not replay exactly",
            stacklevel=2,
        )
        return copy.copy(template)


def _new_locks(root: Any) -> dict[int, Any]:
    """A deep-copy memo giving every lock held by ``root``'s attributes (and the lists,
    dicts and objects in them) a new lock."""
    memo: dict[int, Any] = {}
    seen: set[int] = set()
    stack = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        make = _LOCKS.get(type(item))
        if make is not None:
            memo[id(item)] = make()
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set):
            stack.extend(item)
        elif hasattr(item, "__dict__") and not isinstance(item, type | types.ModuleType):
            stack.extend(vars(item).values())
    return memo


def target_of(job_lm: Any) -> DSPyTarget:
    """Where ``job_lm`` (an ``otpy.dspy.lm``) sends its calls, as a job stores it."""
    engine = getattr(job_lm, "engine", None)
    if not isinstance(job_lm, dspy.LM) or not isinstance(engine, OtpyEngine):
        raise ConfigurationError(
            f"a DSPy job's LM must be otpy.dspy.lm(rt) (its calls are held, budgeted and "
            f"journaled by the job), got {job_lm!r}"
        )
    state = engine.dump_state()
    settings = {}
    for key, value in job_lm.kwargs.items():
        if value is not None and key not in ("num_retries",):
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                continue  # kept in this process only
            settings[key] = value
    return DSPyTarget(
        provider=state["provider"],
        capabilities=list(state["capabilities"]),
        model=state["model"],
        failover=state["failover"],
        settings=settings,
    )


def lm_of(rt: HasProviders, target: DSPyTarget) -> Any:
    """The ``otpy.dspy.lm`` on ``rt`` a stored ``target`` describes."""
    capability = target.capabilities if target.provider is None else None
    return lm(
        rt,
        target.provider,
        capability=capability or None,
        model=target.model,
        failover=target.failover,
        **target.settings,
    )


def check_lms(program: Any, optimizer: Any) -> None:
    """ConfigurationError naming the first LM the program's predictors or the optimizer's
    attributes hold that is not an ``otpy.dspy.lm`` (its calls would escape the job)."""
    held: list[tuple[str, Any]] = []
    for name, predictor in program.named_predictors():
        held.append((f"program predictor {name!r}", getattr(predictor, "lm", None)))
    for name, value in (vars(optimizer) if optimizer is not None else {}).items():
        held.append((f"optimizer attribute {name!r}", value))
    for where, value in held:
        if isinstance(value, dspy.BaseLM) and not isinstance(
            getattr(value, "engine", None), OtpyEngine
        ):
            raise ConfigurationError(
                f"{where} holds the LM {value!r}, which does not go through otpy: a DSPy "
                "job's calls must (use otpy.dspy.lm(rt))"
            )


def program_json(program: Any) -> str:
    """``program`` in DSPy's own format: what ``program.save("x.json")`` writes."""
    state = program.dump_state()
    state["metadata"] = {"dependency_versions": get_dependency_versions()}
    return orjson.dumps(state, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode()


def program_from_json(template: Any, text: str, rt: HasProviders | None) -> Any:
    """A copy of ``template`` with the saved state ``text`` loaded (as
    ``program.load("x.json")`` does), its otpy LMs bound to ``rt``."""
    program = fresh(template)
    state = orjson.loads(text)
    state.pop("metadata", None)
    program.load_state(state, allow_unsafe_lm_state=True)
    if rt is not None:
        bind(program, rt)
    return program
