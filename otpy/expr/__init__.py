"""A small expression language for pipeline conditions and templates (pipeline_ex's).

Parsed by a grammar into a tree, evaluated against a look-up function: no Python
``eval``, no attribute access, a fixed table of functions::

    node = compile_expression("length(steps.scan.files) > 10 and inputs.mode == 'full'")
    evaluate(node, resolve)                       # resolve(("steps", "scan", "files"))
    condition = compile_condition({"and": ["a.ok", {"not": "b.failed"}]}, step="deploy")
    condition.holds(resolve)

See :mod:`otpy.expr._parse` for the grammar and :mod:`otpy.expr._eval` for the operators.
"""

from otpy.expr._condition import Condition, compile_condition
from otpy.expr._eval import FUNCTIONS, Resolver, compile_expression, evaluate
from otpy.expr._nodes import Node, Path, paths
from otpy.expr._values import MISSING, as_number, dig, equal, json_in, size, text_of, truthy

__all__ = [
    "FUNCTIONS",
    "MISSING",
    "Condition",
    "Node",
    "Path",
    "Resolver",
    "as_number",
    "compile_condition",
    "compile_expression",
    "dig",
    "equal",
    "evaluate",
    "json_in",
    "paths",
    "size",
    "text_of",
    "truthy",
]
