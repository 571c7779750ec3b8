"""``claude_session``: a multi-turn conversation remembered per session id.

A session's turns live in a :class:`~otpy.state.StateProvider` as the ``json`` variable
``session.<id>``: a list of ``{"user": prompt, "assistant": answer}`` exchanges. Each call
sends the remembered exchanges as ``messages`` followed by the new prompt, then appends the
new exchange. One exchange is one turn, so the history always starts with a user message.
An exchange in which the step used tools (``claude_options.allowed_tools``) also keeps its
whole conversation — tool calls and results — under ``"messages"``, and is sent back so.

Calls on one session id are serialised by a lock per (store, session id): two steps of
concurrent runs on the same session never lose a turn. The lock is in-process; two
processes sharing a persistent store should not drive the same session at once.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Mapping
from typing import Any, ClassVar, Final

from otpy.errors import StepValidationError, VariableExistsError, VariableNotFound
from otpy.providers import Message
from otpy.state import LocalState, StateProvider
from otpy.steps._base import Step, StepContext, StepMetadata, StepResult
from otpy.steps.llm._agentic import agent_metadata, ask, check_tool_fields
from otpy.steps.llm._common import (
    CLAUDE_FIELDS,
    LLM_FIELDS,
    call_provider,
    check_int,
    check_llm_fields,
    check_str,
    step_label,
)
from otpy.steps.llm._prompting import check_preset, preset_request

__all__ = ["ClaudeSessionStep", "default_session_store", "session_variable"]

SESSION_ID: Final = re.compile(r"[A-Za-z0-9_.\-/]{1,192}")
"""What a session id may be: it becomes part of a state variable name."""

_default_store: StateProvider | None = None
_default_lock = threading.Lock()

# One lock per (store, session id), dropped once nobody holds or waits for it.
_locks: weakref.WeakValueDictionary[tuple[int, str], Any] = weakref.WeakValueDictionary()
_locks_guard = threading.Lock()


def default_session_store() -> StateProvider:
    """The process-wide in-memory store of ``claude_session`` (made on first use)."""
    global _default_store
    with _default_lock:
        if _default_store is None:
            _default_store = LocalState(session_id="otpy.llm.sessions")
        return _default_store


def session_variable(session_id: str) -> str:
    """The state variable holding a session's turns."""
    return f"session.{session_id}"


def _session_lock(store: StateProvider, session_id: str) -> Any:
    key = (id(store), session_id)
    with _locks_guard:
        lock = _locks.get(key)
        if lock is None:
            lock = threading.Lock()
            _locks[key] = lock
        return lock


DEFAULT_SESSION_PRESET: Final = "analysis"
"""claude_session's preset when none is given (pipeline_ex's)."""
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.\-/]+")


def session_of(config: Mapping[str, Any]) -> str | None:
    """The session id of a step: ``session_id``, else pipeline_ex's
    ``session_config.session_name``, else the step's name (unsafe characters as ``_``)."""
    if config.get("session_id") is not None:
        value = config["session_id"]
        return value if isinstance(value, str) else None
    session = config.get("session_config")
    name = session.get("session_name") if isinstance(session, Mapping) else None
    if isinstance(name, str) and name:
        return name
    label = config.get("name")
    return _UNSAFE.sub("_", label)[:192] if isinstance(label, str) and label else None


def _max_turns(config: Mapping[str, Any]) -> int | None:
    if config.get("max_turns") is not None:
        return int(config["max_turns"])
    session = config.get("session_config")
    value = session.get("max_turns") if isinstance(session, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


class ClaudeSessionStep(Step):
    """``claude_session``: a ``prompt`` in a session (``session_id``, or pipeline_ex's
    ``session_config: {session_name, max_turns}``, else the step's name), the sampling
    fields, ``preset`` (default ``analysis``), ``claude_options``, and ``max_turns`` (keep
    only the last N exchanges, in memory and in what is sent).

    The store is the class attribute ``store`` (None: :func:`default_session_store`);
    :meth:`using` makes a subclass bound to another store (the CompatibilityManager
    registers one for its ``session_store``). ``execute`` holds the session's lock while
    it reads the history, calls the provider and writes the new history, so a slow
    provider delays only other calls on the same session. If the call fails nothing is
    remembered.
    """

    metadata: ClassVar[StepMetadata] = StepMetadata(
        description="Multi-turn conversation: remembers each session's turns (by "
        "session_id) in a state store and sends them with every new prompt.",
        required_fields=("prompt",),
        optional_fields=(
            *LLM_FIELDS,
            *CLAUDE_FIELDS,
            "session_id",
            "session_config",
            "max_turns",
            "preset",
        ),
        capabilities=("text", "chat"),
    )

    store: ClassVar[StateProvider | None] = None
    """Where turns are kept; None means the process-wide default store."""

    @classmethod
    def using(cls, store: StateProvider) -> type[ClaudeSessionStep]:
        """A subclass of this step that keeps its sessions in ``store``."""
        if not isinstance(store, StateProvider):
            raise TypeError(f"a session store must be a StateProvider, got {store!r}")
        return type(cls.__name__, (cls,), {"store": store, "__module__": cls.__module__})

    @classmethod
    def session_store(cls) -> StateProvider:
        """The store this class keeps its sessions in."""
        return cls.store if cls.store is not None else default_session_store()

    @classmethod
    def validate(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        checked = super().validate(config)
        check_str(checked, "session_id")
        session = checked.get("session_config")
        if session is not None and not isinstance(session, Mapping):
            raise StepValidationError(
                "must be a mapping", step=step_label(checked), field="session_config"
            )
        if isinstance(session, Mapping):
            check_int(session, "max_turns", minimum=1)
        session_id = session_of(checked)
        if session_id is None or SESSION_ID.fullmatch(session_id) is None:
            raise StepValidationError(
                f"must be 1 to 192 letters, digits, '_', '.', '-' or '/', got {session_id!r}",
                step=step_label(checked),
                field="session_id",
            )
        check_str(checked, "prompt", required=True)
        check_int(checked, "max_turns", minimum=1)
        check_preset(checked)
        check_llm_fields(checked)
        check_tool_fields(checked)
        return checked

    @classmethod
    def history(cls, session_id: str) -> list[dict[str, Any]]:
        """The remembered exchanges of a session, oldest first (empty if none)."""
        return _load(cls.session_store(), session_variable(session_id))

    @classmethod
    def forget(cls, session_id: str) -> bool:
        """Drop a session's memory; False if there was none."""
        store = cls.session_store()
        with _session_lock(store, session_id):
            try:
                store.delete_variable(session_variable(session_id))
            except VariableNotFound:
                return False
        return True

    def execute(self, step: Mapping[str, Any], context: StepContext) -> StepResult:
        store = self.session_store()
        session_id = session_of(step) or "default"
        prompt: str = step["prompt"]
        max_turns = _max_turns(step)
        name = session_variable(session_id)
        with _session_lock(store, session_id):
            turns = _load(store, name)
            if max_turns is not None:
                turns = turns[-max_turns:]
            messages = [message for turn in turns for message in _messages(turn)]
            _, request = preset_request(
                step, DEFAULT_SESSION_PRESET, prompt=prompt, messages=messages
            )
            capabilities = self.metadata.capabilities
            completion, agent = ask(
                step,
                context,
                request,
                lambda asked: call_provider(context, step, asked, capabilities),
            )
            turn: dict[str, Any] = {"user": prompt, "assistant": completion.text}
            if agent is not None:
                turn["messages"] = [
                    m.model_dump(mode="json", exclude_defaults=True)
                    for m in agent.messages[len(messages) :]
                ]
            turns.append(turn)
            if max_turns is not None:
                turns = turns[-max_turns:]
            _save(store, name, turns)
        return StepResult.of_completion(
            completion,
            output=completion.text,
            metadata={"session_id": session_id, "turns": len(turns), **agent_metadata(agent)},
        )


def _messages(turn: Mapping[str, Any]) -> list[Message]:
    """The messages of one remembered exchange (the whole tool conversation if kept)."""
    kept = turn.get("messages")
    if isinstance(kept, list) and kept:
        return [Message.model_validate(m) for m in kept]
    return [
        Message(role="user", content=turn["user"]),
        Message(role="assistant", content=turn["assistant"]),
    ]


def _load(store: StateProvider, name: str) -> list[dict[str, Any]]:
    try:
        value = store.get_variable(name).value
    except VariableNotFound:
        return []
    return [dict(turn) for turn in value] if isinstance(value, list) else []


def _save(store: StateProvider, name: str, turns: list[dict[str, Any]]) -> None:
    try:
        store.set_variable(name, turns)
    except VariableNotFound:
        try:
            store.register_variable(name, "json", turns, description="claude_session turns")
        except VariableExistsError:  # another process made it meanwhile
            store.set_variable(name, turns)
