"""The stateful processes of the runtime (registries, job runners); filled in by later work."""

__all__: list[str] = []
