# A slotted dataclass value rebuilt from its fields' values, compiled: the loading half of the
# reducers `slotted.register_pickling` gives those classes (`slotted._rebuilt` is the twin,
# and calls this when the module is built). An empty object of the class with its slots
# filled, as `_heads.pxi` makes a head; each class's slot places are read once from its member
# descriptors (inherited slots too), and a class with a field that is not a plain object
# slot is left to the twin (None here).

cdef dict _REBUILD_AT = {}  # class -> tuple of its fields' slot places, or None


cdef object _rebuild_places(object cls):
    import dataclasses
    places = []
    for field in dataclasses.fields(cls):
        owner = next(k for k in cls.__mro__ if field.name in k.__dict__)
        descriptor = owner.__dict__[field.name]
        if not _heads_is_object_slot(descriptor):
            return None
        places.append(_heads_slot_at(descriptor))
    return tuple(places)


def compiled_rebuilt(object cls, tuple values):
    """`slotted._rebuilt`, compiled: None when ``cls`` has a field that is not a plain
    object slot (then the twin builds it)."""
    cdef Py_ssize_t i, n
    cdef tuple places
    found = _REBUILD_AT.get(cls, False)
    if found is False:
        found = _REBUILD_AT[cls] = _rebuild_places(cls)
    if found is None:
        return None
    places = <tuple>found
    n = len(places)
    if len(values) != n:
        raise ValueError(f"{cls.__name__} has {n} fields, not {len(values)}")
    cdef object made = _heads_alloc(cls)
    for i in range(n):
        _heads_put(made, <Py_ssize_t>places[i], values[i])
    return made
