"""Compatibility with legacy pipelines: config migration and step version checks.

::

    result = migrate_pipeline(yaml.safe_load(text))     # pipeline_ex-style -> current
    result.config; print(result.report())               # what changed, what needs you
    check_versions({"claude": "^1.0"}, {"claude": "1.0.0"})   # [] when all are met

The runtime's CompatibilityManager (``rt.compat``) offers both against its registry.
"""

from otpy.compat._migrate import migrate_pipeline
from otpy.compat._report import Change, MigrationResult
from otpy.compat._versions import Incompatibility, check_versions, parse_requirement

__all__ = [
    "Change",
    "Incompatibility",
    "MigrationResult",
    "check_versions",
    "migrate_pipeline",
    "parse_requirement",
]
