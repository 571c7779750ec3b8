"""State providers: a session's typed, versioned variables that survive.

::

    s = SQLiteState("jobs.db", session_id="job-1")        # or LocalState() in memory,
                                                          # or RedisState("redis://host")
    var_id = s.register_variable("temperature", "float", 0.7,
                                 constraints={"min": 0.0, "max": 2.0})
    s.set_variable("temperature", 0.9).version              # 2
    s.subscribe("temp*", print)                             # VariableChange per commit
    s.update_variables({"temperature": 1.1, var_id: 1.2})   # BatchUpdateError: twice
    exported = s.export_state()                             # JSON data, "otpy.state/1"
    LocalState().import_state(exported)

:class:`StateProvider` is the behaviour a backend implements; the reusable test suite for
a new backend is :mod:`otpy.testing.compliance` (needs pytest and hypothesis).
"""

from otpy.state._export import EXPORT_FORMAT
from otpy.state._local import LocalState
from otpy.state._provider import StateProvider
from otpy.state._redis import RedisState
from otpy.state._sqlite import SQLiteState
from otpy.state._variable import Variable, VariableChange

__all__ = [
    "EXPORT_FORMAT",
    "LocalState",
    "RedisState",
    "SQLiteState",
    "StateProvider",
    "Variable",
    "VariableChange",
]
