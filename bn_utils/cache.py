"""Results of long computations, kept and found again only where recomputing would give the same bits.

Training on the CPU is deterministic for a given program, input and arithmetic: the same code, on
the same data, with the same PyTorch and NumPy, the same CPU kernels (``ATEN_CPU_CAPABILITY``), the
same number of threads and the same processor returns the same numbers to the last bit. A
:class:`CacheKey` names all of these; :func:`cached` returns a stored result only under an equal key,
and otherwise computes it (and stores it where a cache folder is set). Any other machine, thread
count or arithmetic path, and any change to the source of the modules the computation imports,
gives another key: the result is computed afresh, so a cached result is never a stale one.

Where results are looked for, in order:

- the folder named by the environment variable ``BN_CACHE_DIR`` (read and written), e.g. one CI run
  sharing what the notebooks computed with the claim tests;
- the entries stored with the package (``bn_utils/experiments/stored/cache``, read only), written by
  ``python scripts/cache_results.py ci`` on the course's machine (every remembered computation of
  CI's runs); ``python scripts/cache_results.py status`` says which of them this process finds.

``BN_CACHE=off`` in the environment turns both off: every computation is computed afresh, and kept
only in a folder its caller names (``store_in``). This is a learner's fresh run, as
``scripts/execute_notebooks.py`` times it and as a profile of one should see it.

A computation computed afresh leaves Python's, NumPy's and torch's global random generators as it
found them, as one read back does, so what runs next cannot tell the two apart.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import inspect
import json
import os
import pickle
import platform
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields, is_dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from .data import Dataset
from .devices import get_device

__all__ = [
    "CacheKey",
    "cache_key",
    "cached",
    "enabled",
    "remembered",
    "source_modules",
    "source_digest",
    "stored_entries",
    "STORED",
]

T = TypeVar("T")
PACKAGE = Path(__file__).resolve().parent
STORED = PACKAGE / "experiments" / "stored" / "cache"  # entries stored with the package (read only)
ENVIRONMENT = "BN_CACHE_DIR"
SWITCH = "BN_CACHE"  # "off": compute everything afresh, keep nothing


@dataclass(frozen=True)
class CacheKey:
    """Everything that decides a computation's result bit for bit."""

    computation: str  # what is computed, e.g. "bn_utils.experiments.residual.chapter_grids"
    arguments: str  # its arguments, as canonical JSON (a data set by the digest of its tensors)
    data: str  # digest of the data set's tensors ("" when the data sets are among the arguments)
    source: str  # digest of the source of the modules the computation imports
    torch: str
    numpy: str
    libraries: str  # the other libraries whose code can change a result (scikit-learn, mnist1d)
    cpu_capability: str  # the CPU kernels PyTorch uses (ATEN_CPU_CAPABILITY)
    threads: int
    processor: str  # the CPU model
    device: str

    @property
    def digest(self) -> str:
        """The file name of the entry: a digest of every field."""
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:32]


def _module_file(module: str) -> Path | None:
    """The source file of bn_utils module ``module`` (dotted, without the package), if it exists."""
    base = PACKAGE.joinpath(*module.split(".")) if module else PACKAGE
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    """The bn_utils modules that the file ``path`` (module ``module``) imports, anywhere in it."""
    parts = module.split(".") if module else []
    package = parts if path.name == "__init__.py" else parts[:-1]
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [
                alias.name.removeprefix("bn_utils").lstrip(".")
                for alias in node.names
                if alias.name.startswith("bn_utils")
            ]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == "bn_utils":
                base = node.module.removeprefix("bn_utils").lstrip(".")
            else:
                continue
            submodules = [".".join(filter(None, [base, alias.name])) for alias in node.names]
            names += [name for name in submodules if _module_file(name) is not None]
            if any(_module_file(name) is None for name in submodules):
                names.append(base)  # "from .models import make_mlp": the module itself
    return {name for name in names if _module_file(name) is not None}


@functools.cache
def source_modules(module: str) -> frozenset[str]:
    """bn_utils module ``module`` (e.g. ``"experiments.residual"``) and every bn_utils module it
    imports, directly or not."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is None:
            raise ValueError(f"bn_utils has no module {name!r}")
        todo.extend(_imports(path, name) - seen)
    return frozenset(seen)


@functools.cache
def source_digest(module: str) -> str:
    """A digest of the source of ``module`` and of every bn_utils module it imports
    (:func:`source_modules`): any edit to any of them changes it."""
    digest = hashlib.sha256()
    for name in sorted(source_modules(module)):
        path = _module_file(name)
        assert path is not None
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _processor() -> str:
    """The CPU model (Linux: /proc/cpuinfo's model name), or what the platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _data_digest(data: Dataset) -> str:
    """A digest of everything in the data set: its name, class count and every split's tensors
    (the validation split too, when there is one)."""
    digest = hashlib.sha256(f"{data.name}\0{data.num_classes}".encode())
    for tensor in (data.x_train, data.y_train, data.x_test, data.y_test, data.x_val, data.y_val):
        if tensor is None:
            digest.update(b"none")
            continue
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(str((array.dtype, array.shape)).encode() + array.tobytes())
    return digest.hexdigest()


def _libraries() -> str:
    found = []
    for name in ("scikit-learn", "mnist1d"):
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} absent")
    return ", ".join(found)


def cache_key(
    computation: str, module: str, data: Dataset | None, arguments: Mapping[str, Any], *, device: str | None = None
) -> CacheKey:
    """The key of ``computation`` (defined in bn_utils module ``module``) on ``data`` with
    ``arguments`` (JSON-serialisable values), in this process: its PyTorch, NumPy, CPU kernels,
    threads, processor and device (``data``'s, else ``device``, else the CPU)."""
    on = data.x_train.device if data is not None else torch.device(device or "cpu")
    return CacheKey(
        computation=computation,
        arguments=json.dumps(dict(arguments), sort_keys=True, default=list),
        data=_data_digest(data) if data is not None else "",
        source=source_digest(module),
        torch=torch.__version__,
        numpy=np.__version__,
        libraries=_libraries(),
        cpu_capability=torch.backends.cpu.get_cpu_capability(),
        threads=torch.get_num_threads(),
        processor=_processor(),
        device=torch.cuda.get_device_name(on) if on.type == "cuda" else on.type,
    )


def enabled() -> bool:
    """Whether results are looked for and kept: not when ``BN_CACHE`` is ``off``."""
    switch = os.environ.get(SWITCH, "on").strip().lower()
    if switch not in ("on", "off"):
        raise ValueError(f"the environment variable {SWITCH} must be 'on' or 'off', got {switch!r}")
    return switch == "on"


def _folders() -> list[tuple[Path, bool]]:
    """(folder, writable) in the order results are looked for; none when the cache is off."""
    if not enabled():
        return []
    folders = []
    if os.environ.get(ENVIRONMENT):
        folders.append((Path(os.environ[ENVIRONMENT]), True))
    stored = resources.files("bn_utils.experiments").joinpath("stored", "cache")
    folders.append((Path(str(stored)), False))
    return folders


def cached(key: CacheKey, compute: Callable[[], T], *, store_in: Path | None = None) -> T:
    """The result stored under ``key``, or ``compute()``'s, then kept in the ``BN_CACHE_DIR`` folder
    (and in ``store_in`` when given). An entry whose recorded key differs from ``key`` (a collision,
    or a file copied by hand) is never returned."""
    for folder, writable in _folders():
        path = folder / f"{key.digest}.pkl"
        if path.is_file():
            with path.open("rb") as file:
                entry = pickle.load(file)
            if entry.get("key") == asdict(key):
                if writable:
                    os.utime(path)  # read: still in use (scripts/cache_results.py drops the others)
                return entry["result"]
    with _random_state_kept():
        result = compute()
    targets = [folder for folder, writable in _folders() if writable]
    targets += [store_in] if store_in is not None else []
    for folder in targets:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f"{key.digest}.pkl.{os.getpid()}"
        with partial.open("wb") as file:
            pickle.dump({"key": asdict(key), "result": result}, file, protocol=pickle.HIGHEST_PROTOCOL)
        partial.replace(folder / f"{key.digest}.pkl")  # whole or not at all, even with parallel writers
    return result


@contextlib.contextmanager
def _random_state_kept() -> Iterator[None]:
    """Leave Python's, NumPy's and torch's global random generators as they were: a computation
    read back from the cache draws nothing, so one computed afresh must leave no trace in them
    either, or what a notebook draws next would depend on whether the cache was hit."""
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def stored_entries() -> list[dict[str, Any]]:
    """The keys of the entries stored with the package."""
    keys = []
    for path in sorted(STORED.glob("*.pkl")):
        with path.open("rb") as file:
            keys.append(pickle.load(file)["key"])
    return keys


class _NotCanonical(Exception):
    """An argument that has no canonical form: the call is computed, not cached."""


def _canonical(value: Any) -> Any:
    """A JSON-ready form of an argument that decides the result: data sets by the digest of their
    tensors, bn_utils functions by name and source, dataclasses field by field."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, np.generic):
        return _canonical(value.item())
    if isinstance(value, Dataset):
        return {"dataset": _data_digest(value), "device": str(value.x_train.device)}
    if isinstance(value, torch.device):
        return {"device": str(value)}
    if isinstance(value, functools.partial):  # e.g. functools.partial(bu.make_mlp, 64, 10, depth=3)
        return {
            "partial": _canonical(value.func),
            "args": _canonical(value.args),
            "keywords": _canonical(value.keywords),
        }
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if is_dataclass(value) and not isinstance(value, type):
        return {type(value).__qualname__: {f.name: _canonical(getattr(value, f.name)) for f in fields(value)}}
    if (  # a module-level function of bn_utils, by name and source; a closure or a method is not canonical
        callable(value)
        and getattr(value, "__module__", "").startswith("bn_utils.")
        and "<locals>" not in getattr(value, "__qualname__", "<locals>")
        and getattr(value, "__closure__", None) is None
    ):
        module = value.__module__.removeprefix("bn_utils.")
        return {"callable": f"{value.__module__}.{value.__qualname__}", "source": source_digest(module)}
    raise _NotCanonical(type(value).__name__)


F = TypeVar("F", bound=Callable[..., Any])


def remembered(module: str) -> Callable[[F], F]:
    """Decorate a slow function of bn_utils module ``module`` so that its result is kept and read
    back (:func:`cached`) under the key of the call: its arguments (defaults included), the source
    of ``module`` and of what it imports, and this process's arithmetic. A call with an argument
    that has no canonical form (an arbitrary object) is simply computed."""

    def decorate(function: F) -> F:
        signature = inspect.signature(function)
        computation = f"{function.__module__}.{function.__qualname__}"

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return function(*args, **kwargs)  # let the function report its own usage error
            bound.apply_defaults()
            try:
                arguments = {name: _canonical(value) for name, value in bound.arguments.items()}
            except _NotCanonical:
                return function(*args, **kwargs)
            # the device the computation runs on: the data's, when it is on a GPU, else the course's
            devices = [value.x_train.device for value in bound.arguments.values() if isinstance(value, Dataset)]
            on = next((device for device in devices if device.type != "cpu"), get_device())
            key = cache_key(computation, module, None, arguments, device=str(on))
            return cached(key, lambda: function(*args, **kwargs))

        return wrapper  # type: ignore[return-value]

    return decorate
