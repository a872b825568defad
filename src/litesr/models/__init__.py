"""Model registry: ``build("edsr", scale=4, ...)`` rebuilds any network from its name and args.

Each architecture module registers its class here and declares, beside it, the released
weights it loads (:mod:`litesr.models.releases`); importing this package imports them all.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

_REGISTRY: dict[str, type[nn.Module]] = {}


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator adding a model class to the registry under ``name``."""

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered to {_REGISTRY[name]}")
        _REGISTRY[name] = cls
        return cls

    return decorator


def available() -> list[str]:
    """Sorted names of the registered architectures."""
    return sorted(_REGISTRY)


def build(arch: str, **kwargs: object) -> nn.Module:
    """Instantiate architecture ``arch`` with keyword arguments ``kwargs``.

    Raises ``ValueError`` for an unknown name or arguments the constructor does not accept.
    Every model exposes an integer ``scale`` attribute (its upscaling factor).
    """
    if arch not in _REGISTRY:
        raise ValueError(f"unknown model arch {arch!r}; available: {', '.join(available())}")
    cls = _REGISTRY[arch]
    signature = inspect.signature(cls)
    try:
        signature.bind(**kwargs)
    except TypeError as err:
        raise ValueError(
            f"bad arguments for model arch {arch!r}: {err}; signature: {arch}{signature}"
        ) from err
    model = cls(**kwargs)
    if not isinstance(getattr(model, "scale", None), int):
        raise TypeError(f"model arch {arch!r} does not expose an integer `scale` attribute")
    model.litesr_arch = (arch, dict(kwargs))
    return model


def arch_of(model: nn.Module) -> tuple[str, dict]:
    """``(arch, args)`` that rebuild ``model`` with :func:`build` (set by ``build``; a method
    that changes a model's shape, e.g. by pruning, sets the new ones)."""
    try:
        return model.litesr_arch
    except AttributeError:
        raise ValueError(f"{type(model).__name__} was not made by litesr.models.build") from None


from litesr.models import edsr, plain, rlfn, span, vdsr  # noqa: E402  (modules register on import)

__all__ = ["arch_of", "available", "build", "edsr", "plain", "register", "rlfn", "span", "vdsr"]
