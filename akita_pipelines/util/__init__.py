"""Performance helpers more than one room uses (fast JSON, GC pauses): no domain knowledge,
no I/O of their own, importable from providers/, processing/, db/ and sync/ alike."""
