"""The life of a switched connection after its watch window: cheap facts to its end."""
