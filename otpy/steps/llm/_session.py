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
    LLM_FIELDS,
    build_request,
    call_provider,
    check_int,
    check_llm_fields,
    check_str,
    step_label,
)

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


class ClaudeSessionStep(Step):
    """``claude_session``: ``session_id`` and ``prompt`` (required), the sampling fields,
    and ``max_turns`` (keep only the last N exchanges, in memory and in what is sent).

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
        required_fields=("session_id", "prompt"),
        optional_fields=(*LLM_FIELDS, "max_turns", "claude_options"),
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
        session_id = check_str(checked, "session_id", required=True)
        if session_id is None or SESSION_ID.fullmatch(session_id) is None:
            raise StepValidationError(
                f"must be 1 to 192 letters, digits, '_', '.', '-' or '/', got {session_id!r}",
                step=step_label(checked),
                field="session_id",
            )
        check_str(checked, "prompt", required=True)
        check_int(checked, "max_turns", minimum=1)
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
        session_id: str = step["session_id"]
        prompt: str = step["prompt"]
        max_turns: int | None = step.get("max_turns")
        name = session_variable(session_id)
        with _session_lock(store, session_id):
            turns = _load(store, name)
            if max_turns is not None:
                turns = turns[-max_turns:]
            messages = [message for turn in turns for message in _messages(turn)]
            request = build_request(step, prompt=prompt, messages=messages)
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
