"""The Redis layout of ``RedisState``: keys, Lua scripts, records <-> JSON, and the
optimistic transaction on a session's keys.

A session ``S`` under the prefix ``P`` is five keys in one hash slot (``{S}`` is the hash
tag) and one channel:

- ``P:{S}:records`` hash, variable id -> the record as JSON (``Variable.to_dict``);
- ``P:{S}:names`` hash, name -> id; ``P:{S}:versions`` hash, id -> version;
- ``P:{S}:order`` sorted set of ids, scored in registration order;
- ``P:{S}:session`` hash: ``created_at``, ``metadata`` (JSON), ``seq`` (commits so far),
  ``order`` (registrations so far);
- ``P:{S}:changes``: every commit publishes ``{"origin", "write", "changes", "seq"}``.

``P:sessions`` (a sorted set of session ids by creation time) lists the sessions.

A write reads what it needs, computes the new records in Python (types and constraints
are checked there), then runs ``COMMIT`` — one Lua script: it checks that every record
read is still at the version read (and that a new name is still free, and for an import
that no commit happened since the snapshot), and only then writes everything, counts the
commit in ``seq`` and publishes it. Nothing else runs in Redis meanwhile, so the commit
is atomic, and the channel carries the commits in ``seq`` order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from otpy.errors import StateError
from otpy.state._records import dumps
from otpy.state._store import Transaction
from otpy.state._types import is_valid_name
from otpy.state._variable import Variable, VariableChange

if TYPE_CHECKING:
    import redis

__all__ = ["COMMIT", "FIND", "SNAPSHOT", "Keys", "RedisTransaction", "decode_changes"]

COMMIT: Final = """
local records, names, versions, order, session = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
if ARGV[2] ~= '' and (redis.call('HGET', session, 'seq') or '0') ~= ARGV[2] then
  return 0
end
local arity = {v = 3, n = 2, w = 5, d = 3, c = 1, m = 2}
local i = 3
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'v' and redis.call('HGET', versions, ARGV[i + 1]) ~= ARGV[i + 2] then
    return 0
  elseif op == 'n' and redis.call('HEXISTS', names, ARGV[i + 1]) == 1 then
    return 0
  end
  i = i + arity[op]
end
i = 3
while i <= #ARGV do
  local op = ARGV[i]
  if op == 'w' then
    local id = ARGV[i + 1]
    if redis.call('HSET', records, id, ARGV[i + 4]) == 1 then
      redis.call('ZADD', order, redis.call('HINCRBY', session, 'order', 1), id)
      redis.call('HSET', names, ARGV[i + 2], id)
    end
    redis.call('HSET', versions, id, ARGV[i + 3])
  elseif op == 'd' then
    redis.call('HDEL', records, ARGV[i + 1])
    redis.call('HDEL', versions, ARGV[i + 1])
    redis.call('ZREM', order, ARGV[i + 1])
    redis.call('HDEL', names, ARGV[i + 2])
  elseif op == 'c' then
    redis.call('DEL', records, names, versions, order)
  elseif op == 'm' then
    redis.call('HSET', session, 'metadata', ARGV[i + 1])
  end
  i = i + arity[op]
end
local seq = redis.call('HINCRBY', session, 'seq', 1)
redis.call('PUBLISH', KEYS[6], ARGV[1] .. seq .. '}')
return seq
"""
"""KEYS: records, names, versions, order, session, channel. ARGV: the message without
its end (``seq}`` is appended), the ``seq`` the session must be at (``""``: any), then
operations: checks ``v id version`` (still at that version), ``n name`` (name free);
writes ``w id name version json``, ``d id name``, ``c`` (remove every variable), ``m json``
(session metadata). Returns the commit's ``seq``, or 0 if a check failed (nothing done)."""

FIND: Final = """
local out = {}
for i = 1, #ARGV, 2 do
  local id = ARGV[i + 1]
  if ARGV[i] == 'n' then id = redis.call('HGET', KEYS[2], id) end
  out[#out + 1] = id and redis.call('HGET', KEYS[1], id) or false
end
return out
"""
"""KEYS: records, names. ARGV: pairs ``n name`` or ``i id``. Returns each record's JSON
(nil where there is none)."""

SNAPSHOT: Final = """
local meta = redis.call('HMGET', KEYS[3], 'seq', 'created_at', 'metadata')
local out = {meta[1] or '0', meta[2] or '', meta[3] or ''}
local ids = redis.call('ZRANGE', KEYS[2], 0, -1)
for first = 1, #ids, 1000 do
  local found = redis.call('HMGET', KEYS[1], unpack(ids, first, math.min(first + 999, #ids)))
  for j = 1, #found do out[#out + 1] = found[j] end
end
return out
"""
"""KEYS: records, order, session. Returns ``seq``, ``created_at``, session metadata (``""``
where unset), then every record's JSON in registration order."""


class Keys:
    """The key names of one session under a prefix (see the module docstring)."""

    def __init__(self, prefix: str, session_id: str) -> None:
        base = f"{prefix}:{{{session_id}}}"
        self.records, self.names = f"{base}:records", f"{base}:names"
        self.versions, self.order = f"{base}:versions", f"{base}:order"
        self.session, self.channel = f"{base}:session", f"{base}:changes"
        self.sessions = f"{prefix}:sessions"

    @property
    def commit(self) -> list[str]:
        return [self.records, self.names, self.versions, self.order, self.session, self.channel]


def record_from_json(data: Any, where: str) -> Variable:
    """The Variable of a stored record (JSON text or its parsed dict); StateError if it is
    broken."""
    try:
        fields = json.loads(data) if isinstance(data, str) else data
        return Variable(**fields)
    except (TypeError, ValueError) as exc:
        shown = str(data)[:200]
        raise StateError(f"{where}: a stored variable is broken ({exc}): {shown}") from exc


def decode_changes(entries: Sequence[Sequence[Any]], where: str) -> list[VariableChange]:
    """The changes of a published commit: ``[kind, old record, new record]`` entries."""
    changes = []
    for kind, old, new in entries:
        if kind == "registered":
            changes.append(VariableChange.registered(record_from_json(new, where)))
        elif kind == "updated":
            before, after = record_from_json(old, where), record_from_json(new, where)
            changes.append(VariableChange.updated(before, after))
        else:
            changes.append(VariableChange.deleted(record_from_json(old, where)))
    return changes


class RedisTransaction(Transaction):
    """Reads through the read scripts (remembering what it read) and stages operations
    for one ``COMMIT``; ``commit`` returns its ``seq`` or 0 if another writer changed
    what was read (then the caller runs its body again in a new transaction)."""

    def __init__(self, client: redis.Redis, keys: Keys, scripts: Mapping[str, Any], where: str):
        self._client, self._keys, self._scripts, self._where = client, keys, scripts, where
        self._read: dict[str, str] = {}
        self._written: dict[str, str] = {}
        self._ops: list[str] = []
        self._seq = ""
        self._snapshot: list[Any] | None = None

    def find(self, key: str) -> Variable | None:
        return self._find([key]).get(key)

    def find_many(self, keys: Sequence[str]) -> dict[str, Variable]:
        return self._find(keys)

    def _find(self, keys: Sequence[str]) -> dict[str, Variable]:
        args = [part for key in keys for part in ("n" if is_valid_name(key) else "i", key)]
        raws = self._scripts["find"](keys=[self._keys.records, self._keys.names], args=args)
        found: dict[str, Variable] = {}
        for raw in raws:
            if raw is not None:
                record = record_from_json(raw, self._where)
                self._read[record.id] = raw
                found[record.id] = found[record.name] = record
        return found

    def all(self) -> list[Variable]:
        records = []
        for raw in self._load()[3:]:
            record = record_from_json(raw, self._where)
            self._read[record.id] = raw
            records.append(record)
        return records

    def session(self) -> tuple[dict[str, Any], float]:
        _seq, created_at, metadata = self._load()[:3]
        try:
            return dict(json.loads(metadata or "{}")), float(created_at or 0.0)
        except (TypeError, ValueError) as exc:
            raise StateError(f"{self._where}: the session's record is broken ({exc})") from exc

    def _load(self) -> list[Any]:
        if self._snapshot is None:
            keys = [self._keys.records, self._keys.order, self._keys.session]
            self._snapshot = list(self._scripts["snapshot"](keys=keys))
            self._seq = str(self._snapshot[0])
        return self._snapshot

    def insert(self, record: Variable) -> None:
        raw = self._written[record.id] = dumps(record.to_dict())
        self._ops += ["n", record.name, "w", record.id, record.name, str(record.version), raw]

    def update(self, pairs: Sequence[tuple[Variable, Variable]]) -> None:
        for old, new in pairs:
            raw = self._written[new.id] = dumps(new.to_dict())
            self._ops += ["v", old.id, str(old.version), "w", new.id, new.name]
            self._ops += [str(new.version), raw]

    def delete(self, record: Variable) -> None:
        self._ops += ["v", record.id, str(record.version), "d", record.id, record.name]

    def replace(self, records: Sequence[Variable], metadata: Mapping[str, Any]) -> None:
        self._load()  # the commit checks that nothing changed since this snapshot
        self._ops.append("c")
        for record in records:
            raw = self._written[record.id] = dumps(record.to_dict())
            self._ops += ["w", record.id, record.name, str(record.version), raw]
        self._ops += ["m", dumps(dict(metadata))]

    @property
    def staged(self) -> bool:
        """Whether anything is staged (an empty batch commits nothing)."""
        return bool(self._ops)

    def commit(self, changes: Sequence[VariableChange], origin: str, write: int) -> int:
        """Run ``COMMIT`` with the staged operations, publishing ``changes`` as the write
        ``write`` (0: none) of the store ``origin``."""
        entries = []
        for change in changes:
            old = "null" if change.kind == "registered" else self._read[change.id]
            new = "null" if change.kind == "deleted" else self._written[change.id]
            entries.append(f'["{change.kind}",{old},{new}]')
        head = f'{{"origin":"{origin}","write":{write},"changes":[{",".join(entries)}],"seq":'
        seq = self._scripts["commit"](keys=self._keys.commit, args=[head, self._seq, *self._ops])
        return int(seq)
