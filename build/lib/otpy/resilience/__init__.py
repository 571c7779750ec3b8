"""Rate limiting, circuit breakers, retries and fallbacks; filled in by later work."""

__all__: list[str] = []
