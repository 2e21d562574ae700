"""A tiny name -> class registry, so a new method / protocol / partitioner is one file + one line."""
from typing import Callable, Dict, Generic, List, TypeVar

from recbole_unlearn.utils.errors import UnlearnError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps lower-case names to registered objects.

    Args:
        kind: what the registry holds, used in error messages (e.g. ``"unlearning method"``).
        config_key: the config key users set to choose an entry (e.g. ``"unlearn_method"``).
    """

    def __init__(self, kind: str, config_key: str):
        self.kind = kind
        self.config_key = config_key
        self._entries: Dict[str, T] = {}
        self._traits: Dict[str, Dict[str, object]] = {}
        self._subscribers: List[Callable[[str, T], None]] = []

    def subscribe(self, callback: Callable[[str, T], None]) -> None:
        """Call ``callback(name, entry)`` for every entry, now and whenever one is registered
        (e.g. to make every approximate step an unlearning method as well)."""
        self._subscribers.append(callback)
        for key, entry in list(self._entries.items()):
            callback(key, entry)

    def register(self, name: str, **traits) -> Callable[[T], T]:
        """Class decorator: ``@METHODS.register("sisa")``; ``traits`` are what the rest of the
        package asks of the entry (``@PARTITIONERS.register("kmeans", pretrained_vectors=True)``),
        read back with :meth:`traits`."""

        def decorator(obj: T) -> T:
            key = name.lower()
            if key in self._entries:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            alias_of = next((k for k, v in self._entries.items() if v is obj), None)
            # an alias (the same object under a second name) is the same entry: its traits too
            self._traits[key] = dict(self._traits[alias_of], **traits) if alias_of else dict(traits)
            self._entries[key] = obj
            for callback in self._subscribers:
                callback(key, obj)
            return obj

        return decorator

    def get(self, name: str) -> T:
        """Return the entry called ``name`` or raise a one-line :class:`UnlearnError`."""
        key = str(name).lower()
        if key not in self._entries:
            raise UnlearnError(
                f"unknown {self.kind} '{name}' ({self.config_key}); "
                f"choose one of: {', '.join(self.names())}"
            )
        return self._entries[key]

    def canonical(self, name: str) -> str:
        """The first name registered for the entry ``name`` names: names registered for one
        and the same object (aliases) share it."""
        entry = self.get(name)
        return next(key for key, value in self._entries.items() if value is entry)

    def traits(self, name: str) -> Dict[str, object]:
        """The traits ``name`` was registered with (``{}`` for a name not registered)."""
        return dict(self._traits.get(str(name).lower(), {}))

    def names(self) -> List[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return str(name).lower() in self._entries
