"""Device resolution and seeded, isolated torch randomness for the deep estimators.

Device rules (the ``device`` parameter):

- ``"cpu"``: always available.
- ``"cuda"``: the current CUDA device; ``"cuda:N"``: CUDA device ``N``. Refused unless
  ``torch.cuda.is_available()`` and ``N < torch.cuda.device_count()``.
- ``"mps"``: Apple's Metal backend, refused unless ``torch.backends.mps.is_available()``.
- ``"auto"``: CUDA if available, else MPS if available, else the CPU.

An unavailable device raises a ValueError that names it and lists the available ones; it is
checked when fitting, never at construction.
"""

import contextlib
import re

import torch

__all__ = ["available_devices", "resolve_device", "seeded_rng"]

_DEVICE_PATTERN = re.compile(r"^(cpu|cuda|mps|auto)(?::(\d+))?$")


def _mps_available():
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def _cuda_count():
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def available_devices():
    """The devices ``fit`` accepts on this machine.

    Returns
    -------
    devices : list of str
        ``"cpu"``, then ``"cuda:0"`` ... for every CUDA device, then ``"mps"`` if available.

    Examples
    --------
    >>> from skmtl.deep._device import available_devices
    >>> available_devices()[0]
    'cpu'
    """
    devices = ["cpu"] + [f"cuda:{index}" for index in range(_cuda_count())]
    if _mps_available():
        devices.append("mps")
    return devices


def resolve_device(device):
    """Turn the ``device`` parameter into a concrete torch device string, or raise.

    Parameters
    ----------
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``.

    Returns
    -------
    device : str
        ``"cpu"``, ``"cuda:N"`` or ``"mps"``.

    Raises
    ------
    ValueError
        If the string is not one of the accepted forms, or names a device this machine does
        not have; the message lists the available devices.

    Examples
    --------
    >>> from skmtl.deep._device import resolve_device
    >>> resolve_device("cpu")
    'cpu'
    """
    match = _DEVICE_PATTERN.match(device) if isinstance(device, str) else None
    kind, index = (match.group(1), match.group(2)) if match else (None, None)
    if match is None or (index is not None and kind != "cuda"):
        raise ValueError(
            f"device={device!r} is not understood; use 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'."
        )
    if kind == "auto":
        if torch.cuda.is_available():
            return f"cuda:{torch.cuda.current_device()}"
        return "mps" if _mps_available() else "cpu"
    if kind == "cpu":
        return "cpu"
    if kind == "mps":
        if not _mps_available():
            raise ValueError(_unavailable(device, "the MPS backend is not available"))
        return "mps"
    count = _cuda_count()
    if count == 0:
        raise ValueError(_unavailable(device, "CUDA is not available"))
    number = torch.cuda.current_device() if index is None else int(index)
    if number >= count:
        raise ValueError(
            _unavailable(device, f"this machine has {count} CUDA device(s), numbered from 0")
        )
    return f"cuda:{number}"


def _unavailable(device, why):
    return (
        f"device={device!r} is not available: {why}. Available devices: "
        f"{available_devices()}; device='auto' picks the best of them."
    )


@contextlib.contextmanager
def seeded_rng(seed, device):
    """Seed torch's generators for ``device`` (and the CPU) without touching the global state.

    Everything inside the block (weight initialisation, shuffling, dropout) draws from
    generators seeded with ``seed``; on exit, the global generators are restored as they were.

    Parameters
    ----------
    seed : int
        The seed.
    device : str
        A device returned by :func:`resolve_device`.

    Examples
    --------
    >>> import torch
    >>> from skmtl.deep._device import seeded_rng
    >>> before = torch.random.get_rng_state()
    >>> with seeded_rng(0, "cpu"):
    ...     a = torch.rand(2)
    >>> with seeded_rng(0, "cpu"):
    ...     b = torch.rand(2)
    >>> bool(torch.equal(a, b)), bool(torch.equal(before, torch.random.get_rng_state()))
    (True, True)
    """
    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        fork = torch.random.fork_rng(devices=[index], device_type="cuda")
    elif device.type == "mps":
        fork = torch.random.fork_rng(device_type="mps")
    else:
        fork = torch.random.fork_rng(devices=[])
    with fork:
        torch.random.default_generator.manual_seed(seed)
        if device.type == "cuda":
            torch.cuda.default_generators[index].manual_seed(seed)
        elif device.type == "mps":
            torch.mps.manual_seed(seed)
        yield
