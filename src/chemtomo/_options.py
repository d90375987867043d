"""The one helper of the frozen options dataclasses: keyword overrides, checked by name."""

from __future__ import annotations

from dataclasses import fields, replace


def option_names(cls) -> list[str]:
    """The field names of an options dataclass, in order.

    Parameters
    ----------
    cls : dataclass type or instance

    Returns
    -------
    list of str
    """
    return [f.name for f in fields(cls)]


def with_overrides(options, cls, overrides: dict, what: str = "options"):
    """``options`` (default ``cls()``) with the fields in ``overrides`` replaced, validated once.

    Parameters
    ----------
    options : cls instance or None
        The options to start from (None: the defaults).
    cls : dataclass type
        The options class.
    overrides : dict
        Field name -> value; every name must be a field of ``cls``.
    what : str
        The options' name for error messages.

    Returns
    -------
    cls instance
        A new object (``__post_init__`` validates it) or ``options`` itself when
        there is nothing to override.

    Raises
    ------
    ValueError
        A name that is not a field (the message lists the fields), or a value
        the options' validation refuses.
    TypeError
        ``options`` is not a ``cls``.
    """
    if options is None:
        options = cls()
    elif not isinstance(options, cls):
        raise TypeError(f"{what} must be a {cls.__name__}, got {type(options).__name__}")
    unknown = sorted(set(overrides) - set(option_names(cls)))
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; {cls.__name__} has {option_names(cls)}")
    return replace(options, **overrides) if overrides else options
