"""One way to look a pluggable part up by name: :class:`Registry`.

Every kind of part (encoders, decoders, quantizers, discriminators, loss presets, teachers, codec
families, checkpoint formats) has one ``Registry``. A part is named in a config by a *spec*::

    {"type": "seanet", "dimension": 64, ...}                     # a registered name and its fields
    {"class_path": "my_pkg.my_module.MyEncoder",                 # your own class, no library edit
     "init_args": {"dimension": 64}}

Fields are typed: the known fields of a part come from its ``config`` dataclass or, without one,
from the signature of what is registered (a class or a factory function). :meth:`Registry.parse`
rejects an unknown field (naming the known ones), a missing required one, and a value of the wrong
simple type (``int``/``float``/``bool``/``str``/sequence/dict, optional or not); the checked
:class:`PartSpec` round-trips (``parse(spec.to_dict()) == spec``).

This module is a leaf: it imports nothing from ``audiotok``.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import importlib
import inspect
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any


class RegistryError(ValueError):
    """A spec that names no registered part, or fields the part does not take."""


class UnknownNameError(RegistryError, KeyError):
    """A name that is not registered (also a ``KeyError``, like the dicts registries replaced)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class SpecError(RegistryError, TypeError):
    """Unknown, missing or wrongly typed fields (also a ``TypeError``, like a bad keyword argument)."""


@dataclasses.dataclass(frozen=True)
class PartSpec:
    """A checked spec: a registered ``name`` or a ``class_path``, and the fields given for it."""

    kind: str
    name: str | None
    class_path: str | None
    fields: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The spec as a config dict (``{"type": ..., **fields}`` or ``{"class_path", "init_args"}``)."""
        if self.class_path is not None:
            return {"class_path": self.class_path, "init_args": dict(self.fields)}
        return {"type": self.name, **self.fields}


@dataclasses.dataclass
class _Entry:
    target: Any  # a callable or value, or a dotted path imported on first use
    config: type | None = None
    forwards: tuple = ()  # where the target's **kwargs go: their fields are the target's too


def import_path(path: str) -> Any:
    """The object at a dotted path ``pkg.module.Name`` (or ``pkg.module:Name``)."""
    module_name, sep, attr = path.replace(":", ".").rpartition(".")
    if not sep or not module_name:
        raise RegistryError(f"{path!r} is not an import path like 'my_pkg.my_module.MyClass'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise RegistryError(f"cannot import {module_name!r} for {path!r}: {err}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise RegistryError(f"module {module_name!r} has no {attr!r} (from {path!r})") from None


class Registry:
    """Named parts of one ``kind``: ``register``, ``get``, ``names``, ``parse`` and ``build`` specs.

    ``plugins``: modules imported on the first lookup, which register the built-in entries (so a
    lower layer can list parts that an upper layer defines without importing it; the entry-point
    pattern). ``class_path``: whether a spec may name a class by import path instead of a name.
    """

    def __init__(self, kind: str, *, plugins: tuple[str, ...] = (), class_path: bool = True):
        self.kind = kind
        self._entries: dict[str, _Entry] = {}
        self._plugins = tuple(plugins)
        self._discovered = not plugins
        self._class_path = class_path

    # ---- registering ------------------------------------------------------------------------------
    def register(self, name: str, target: Any = None, *, config: type | None = None,
                 forwards: tuple = (), replace: bool = False):
        """Register ``target`` under ``name``; without ``target``, a decorator.

        ``target``: a class, a factory, a value (presets), or a dotted import path resolved on first
        use (keeps imports light). ``config``: a dataclass whose fields are the part's typed fields
        (default: the target's signature). ``forwards``: the callables the target passes its
        ``**kwargs`` on to (their fields count as the target's; without it, a target taking
        ``**kwargs`` accepts any field). A second registration of a name raises unless ``replace``.
        """
        if target is None:
            def decorator(obj):
                self.register(name, obj, config=config, forwards=forwards, replace=replace)
                return obj
            return decorator
        if name in self._entries and not replace:
            raise RegistryError(f"{self.kind} {name!r} is already registered; pass replace=True to "
                                "override it")
        self._entries[name] = _Entry(target, config, tuple(forwards))
        return target

    def unregister(self, name: str) -> None:
        """Remove ``name`` (no error if absent): for tests and for plugins that replace a part."""
        self._entries.pop(name, None)

    # ---- looking up -------------------------------------------------------------------------------
    def _discover(self) -> None:
        if not self._discovered:
            self._discovered = True  # first, so that a plugin's own lookups do not recurse
            try:
                for module in self._plugins:
                    importlib.import_module(module)
            except BaseException:
                self._discovered = False
                raise

    def _entry(self, name: str) -> _Entry:
        self._discover()
        if not isinstance(name, str) or name not in self._entries:
            how = f"register it with `@<registry>.register('my-name')` (this is the {self.kind} registry)"
            if self._class_path:
                how += (", or name it by import path: {'class_path': 'my_pkg.my_module.MyClass', "
                        "'init_args': {...}}")
            raise UnknownNameError(f"unknown {self.kind} {name!r}; available: "
                                   f"{', '.join(self.names()) or '(none)'}. To plug in your own, {how}")
        entry = self._entries[name]
        if isinstance(entry.target, str):
            entry.target = import_path(entry.target)
        return entry

    def get(self, name: str) -> Any:
        """What is registered under ``name``; :class:`UnknownNameError` listing the names if none."""
        return self._entry(name).target

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._discover()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, Any]]:
        """``(name, target)`` in registration order."""
        self._discover()
        for name in list(self._entries):
            yield name, self.get(name)

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self._discover()
        return iter(list(self._entries))

    def __len__(self) -> int:
        self._discover()
        return len(self._entries)

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"

    # ---- specs ------------------------------------------------------------------------------------
    def parse(self, spec: str | Mapping[str, Any] | PartSpec) -> PartSpec:
        """A checked :class:`PartSpec` from a name, ``{"type": name, **fields}`` or
        ``{"class_path": ..., "init_args": {...}}``; :class:`RegistryError` naming what is wrong."""
        if isinstance(spec, PartSpec):
            return spec
        if isinstance(spec, str):
            spec = {"type": spec}
        if not isinstance(spec, Mapping):
            raise SpecError(f"a {self.kind} spec is a name or a dict, got a {type(spec).__name__}")
        spec = dict(spec)
        if "class_path" in spec:
            if not self._class_path:
                raise SpecError(f"a {self.kind} is named by a registered name ({', '.join(self.names())}), "
                                "not by class_path")
            extra = sorted(set(spec) - {"class_path", "init_args"})
            if extra:
                raise SpecError(f"a class_path {self.kind} spec holds 'class_path' and 'init_args' only, "
                                f"got also {extra}")
            path, fields = spec["class_path"], dict(spec.get("init_args") or {})
            check_fields(import_path(path), None, fields, f"{self.kind} {path!r}")
            return PartSpec(self.kind, None, path, fields)
        if "type" not in spec:
            raise SpecError(f"a {self.kind} spec needs a 'type' (one of {', '.join(self.names())}) "
                            "or a 'class_path'")
        name = spec.pop("type")
        entry = self._entry(name)
        check_fields(entry.target, entry.config, spec, f"{self.kind} {name!r}", entry.forwards)
        return PartSpec(self.kind, name, None, spec)

    def build(self, spec: str | Mapping[str, Any] | PartSpec, **context) -> Any:
        """Parse ``spec`` and call its target with the fields (and ``context``: arguments the caller
        supplies, such as a sample rate)."""
        part = self.parse(spec)
        target = import_path(part.class_path) if part.class_path else self.get(part.name)
        return target(**part.fields, **context)


# ---- typed fields -----------------------------------------------------------------------------------
def known_fields(target: Any, config: type | None = None) -> tuple[dict[str, Any], set[str], bool]:
    """(field -> type hint or None, required fields, accepts any keyword) of a part."""
    source = config if config is not None else target
    if dataclasses.is_dataclass(source):
        hints = _hints(source)
        required = {f.name for f in dataclasses.fields(source) if f.init
                    and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        return {f.name: hints.get(f.name) for f in dataclasses.fields(source) if f.init}, required, False
    try:
        signature = inspect.signature(source)
    except (TypeError, ValueError):
        return {}, set(), True
    hints = _hints(source.__init__ if inspect.isclass(source) else source)
    fields, required, any_keyword = {}, set(), False
    for param in signature.parameters.values():
        if param.kind is param.VAR_KEYWORD:
            any_keyword = True
        elif param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            fields[param.name] = hints.get(param.name)
            if param.default is param.empty:
                required.add(param.name)
    return fields, required, any_keyword


def check_fields(target: Any, config: type | None, given: Mapping[str, Any], what: str,
                 forwards: tuple = ()) -> None:
    """Raise :class:`SpecError` for unknown or wrongly typed fields of ``what``, and for missing
    required ones when the part has a dataclass ``config`` (a factory's required arguments may come
    from the caller's ``context`` at build time)."""
    if not callable(target) and config is None:
        if given:
            raise SpecError(f"{what} is a preset and takes no fields, got {sorted(given)}")
        return
    fields, required, any_keyword = known_fields(target, config)
    for inner in forwards:  # **kwargs passed on: the inner part's fields, checked the same way
        inner_fields, _, inner_any = known_fields(inner)
        fields = {**inner_fields, **fields}
        any_keyword = inner_any
    unknown = sorted(set(given) - set(fields))
    if unknown and not any_keyword:
        raise SpecError(f"{what} got unknown field(s) {unknown}; accepted: {sorted(fields)}")
    if config is not None:
        missing = sorted(required - set(given))
        if missing:
            raise SpecError(f"{what} lacks the required field(s) {missing}")
    for name, value in given.items():
        hint = fields.get(name)
        if hint is not None and not _matches(value, hint):
            raise SpecError(f"{what}: field {name!r} must be {_describe(hint)}, got {value!r} "
                            f"({type(value).__name__})")


def _hints(obj: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(obj)
    except Exception:  # an annotation that does not evaluate: skip type checks for this part
        return {}


def _matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` fits a simple type hint; hints it does not understand accept anything."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if hint is type(None):
        return value is None
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    base = origin or hint
    if base in (list, tuple, collections.abc.Sequence):
        return isinstance(value, (list, tuple))
    if base in (dict, collections.abc.Mapping):
        return isinstance(value, Mapping)
    return True


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return "null"
    base = typing.get_origin(hint) or hint
    if base in (list, tuple, collections.abc.Sequence):
        return "a list"
    return getattr(base, "__name__", str(hint))

