"""A portable state for the skorch net: arrays and plain values instead of tensors.

:class:`NetStateMixin` gives :class:`~skmtl.deep._net.MultiTaskNet` a ``__getstate__`` /
``__setstate__`` pair that pickle, joblib and skops all use. skorch's own state pickles the
torch parts into bytes that only ``torch.load`` reads back, which skops refuses (``Cannot
directly construct TensorBase``). The state made here holds:

- ``params``: the net's constructor parameters (but a default that is not a plain value, such
  as skorch's ``dataset`` class, which the constructor puts back). The module
  factory (a :func:`functools.partial` of :func:`~skmtl.deep.modules.build_module`, which
  skops does not trust by default) is kept as its function, arguments and keywords, the
  criterion as its class with its ``kinds`` and ``output_sizes``, a :mod:`torch.optim`
  optimizer by its name. Callbacks and ``train_split`` are not kept: they are training
  machinery (``train_split`` holds the validation rows of the training data).
- ``modules``: the ``state_dict`` of every module and criterion of the net (the network, the
  weighting's learned parameters) as numpy arrays, and the names of its frozen parameters.
- ``attributes``: the other fitted attributes (the weighting, the gradient affinity sums,
  the gradient spaces).
- ``history``: skorch's history as tables (:func:`_pack_history`): its numbers in float64
  arrays, its other values as plain lists and dicts.

In ``params``, ``attributes`` and ``history``, a tensor is replaced by a reference into the
table ``tensors`` (numpy arrays, with dtype, device kind and owner), and an object of a skmtl
class that is not a torch module (a weighting) by a reference into ``objects`` (its class and
its converted attributes). A tensor or object met twice has one entry, so what was shared
is shared again after loading; a tensor owned by one of the modules (a weighting's parameter,
also in ``weighting_params_``) becomes the rebuilt module's own tensor, the one the optimizer
trains.

Loading calls the constructor with ``params``, rebuilds the net with ``initialize()`` (inside
:func:`torch.random.fork_rng`: loading never moves the global random state), loads the arrays
into the rebuilt modules and restores the attributes. Arrays carry no device: a tensor that was
on the CPU comes back on the CPU, any other on the net's ``device``, which becomes ``"cpu"``
(with a warning) when the net was fitted on CUDA and this machine has none.

The optimizer's state (Adam's moments) is not kept, nor are the callbacks: a loaded net
predicts and reports (history, task weights, gradient affinity); to train further, refit the
estimator. ``copy.copy`` and ``copy.deepcopy`` do not go through this state: they copy the
live net, optimizer and callbacks included.
"""

import copy
import functools
import inspect
import warnings

import numpy as np
import torch
from skorch.history import History

from skmtl import __version__

__all__ = ["NetStateMixin"]

# Version of the layout of the state; bumped when it changes incompatibly.
STATE_FORMAT = 2

# Attributes that the constructor and ``initialize()`` rebuild: never saved.
_REBUILT = frozenset({
    "callbacks_", "criterion_", "cuda_dependent_attributes_", "history_", "init_context_",
    "initialized_", "module_", "optimizer_", "prefixes_", "virtual_params_",
})

# Constructor parameters that are training machinery only (see the module docstring).
_TRAINING_ONLY = ("callbacks", "train_split")

_TENSOR, _OBJECT, _DEVICE = "__tensor__", "__object__", "__device__"


def _array(tensor):
    """A numpy copy of a tensor, on no device (bfloat16, which numpy lacks, as float32)."""
    tensor = tensor.detach().to("cpu")
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.to(torch.float32)
    return tensor.numpy().copy()


def _load_device(device):
    """The device to load on: ``device``, or ``"cpu"`` (with a warning) if it is CUDA and this
    machine has none."""
    if device is None or torch.device(device).type != "cuda" or torch.cuda.is_available():
        return device
    warnings.warn(
        f"The model was saved with device={device!r} and CUDA is not available here; "
        "loading it on the CPU (device='cpu').",
        UserWarning,
        stacklevel=4,
    )
    return "cpu"


def _defaults(cls):
    """Default values of the constructor parameters of ``cls`` and of its bases."""
    defaults = {}
    for klass in reversed(cls.__mro__):
        init = vars(klass).get("__init__")
        if init is None or not inspect.isfunction(init):
            continue
        for name, param in inspect.signature(init).parameters.items():
            if param.default is not inspect.Parameter.empty:
                defaults[name] = param.default
    return defaults


def _implicit(key, value, defaults):
    """Whether ``value`` is the default object of a parameter that is not a plain value (the
    skorch ``dataset`` class): left out, the constructor puts it back. Plain values are always
    kept, so that a loaded net does not depend on skorch's defaults of the day."""
    plain = (str, int, float, bool, type(None))
    return key in defaults and value is defaults[key] and not isinstance(value, plain)


class _Encoder:
    """Replaces tensors, devices and skmtl objects by plain references into two tables.

    A tensor becomes ``{"__tensor__": i}``, an object of a skmtl class that is not a torch
    module (a weighting) ``{"__object__": i}``; a tensor or an object met twice gets one
    entry. A tensor that is a parameter or buffer of one of ``modules`` records its owner,
    so that loading can refer to the rebuilt module's own tensor again.
    """

    def __init__(self, modules):
        self.owners = {
            id(tensor): [attribute, name]
            for attribute, module in modules.items()
            for name, tensor in module.state_dict(keep_vars=True).items()
        }
        self.tensors = []
        self.objects = []
        self._seen = {}

    def __call__(self, value):
        if isinstance(value, torch.Tensor):
            return {_TENSOR: self._entry(value, self.tensors, self._tensor)}
        if isinstance(value, torch.device):
            return {_DEVICE: str(value)}
        if isinstance(value, dict):
            return {key: self(item) for key, item in value.items()}
        if type(value) is tuple:
            return tuple(self(item) for item in value)
        if isinstance(value, list):
            return [self(item) for item in value]
        if (
            type(value).__module__.startswith("skmtl.")
            and hasattr(value, "__dict__")
            and not isinstance(value, torch.nn.Module)
        ):
            return {_OBJECT: self._entry(value, self.objects, self._object)}
        return value

    def _entry(self, value, table, encode):
        if id(value) not in self._seen:
            self._seen[id(value)] = len(table)
            table.append(None)  # reserved before encoding: an object may refer to itself
            table[self._seen[id(value)]] = encode(value)
        return self._seen[id(value)]

    def _tensor(self, tensor):
        return {
            "array": _array(tensor),
            "dtype": str(tensor.dtype).removeprefix("torch."),
            "parameter": isinstance(tensor, torch.nn.Parameter),
            "requires_grad": tensor.requires_grad,
            "on_cpu": tensor.device.type == "cpu",
            "owner": self.owners.get(id(tensor)),
        }

    def _object(self, obj):
        return {"class": type(obj), "attributes": self(dict(vars(obj)))}


class _Decoder:
    """Inverse of :class:`_Encoder`.

    A tensor that was not on the CPU goes to ``device``. With ``net``, a tensor owned by one of
    the net's modules is that module's tensor (already loaded), else a new one.
    """

    def __init__(self, state, net=None, device=None):
        self.net = net
        self.device = device
        self.tensors = [self._tensor(entry) for entry in state["tensors"]]
        self.objects = [entry["class"].__new__(entry["class"]) for entry in state["objects"]]
        for obj, entry in zip(self.objects, state["objects"], strict=True):
            vars(obj).update(self(entry["attributes"]))

    def __call__(self, value):
        if isinstance(value, dict):
            if len(value) == 1:
                ((key, item),) = value.items()
                if key == _TENSOR:
                    return self.tensors[item]
                if key == _OBJECT:
                    return self.objects[item]
                if key == _DEVICE:
                    on_cpu = torch.device(item).type == "cpu"
                    return torch.device("cpu" if on_cpu else (self.device or item))
            return {key: self(item) for key, item in value.items()}
        if isinstance(value, tuple):
            return tuple(self(item) for item in value)
        if isinstance(value, list):
            return [self(item) for item in value]
        return value

    def _tensor(self, entry):
        if self.net is not None and entry["owner"] is not None:
            attribute, name = entry["owner"]
            return getattr(self.net, attribute).state_dict(keep_vars=True)[name]
        tensor = torch.tensor(entry["array"]).to(getattr(torch, entry["dtype"]))
        if not entry["on_cpu"] and self.device is not None:
            tensor = tensor.to(self.device)
        if entry["parameter"]:
            return torch.nn.Parameter(tensor, requires_grad=entry["requires_grad"])
        return tensor.requires_grad_(entry["requires_grad"])


def _encode_module_factory(module):
    """A ``functools.partial`` as its function, arguments and keywords (skops does not trust
    ``functools.partial`` by default); anything else as it is."""
    if type(module) is functools.partial:
        return {
            "function": module.func, "args": list(module.args), "keywords": dict(module.keywords)
        }
    return module


def _encode_criterion(criterion):
    """A criterion instance with ``kinds`` and ``output_sizes`` (``TaskLoss``) as its class
    and these two; anything else as it is."""
    if isinstance(criterion, torch.nn.Module) and hasattr(criterion, "output_sizes"):
        return {
            "class": type(criterion),
            "kinds": list(criterion.kinds),
            "output_sizes": [int(size) for size in criterion.output_sizes],
        }
    return criterion


def _encode_optimizer(optimizer):
    """A :mod:`torch.optim` optimizer class by its name; anything else as it is."""
    name = getattr(optimizer, "__name__", None)
    if isinstance(name, str) and getattr(torch.optim, name, None) is optimizer:
        return {"torch_optim": name}
    return optimizer


def _decode_params(params):
    """The constructor parameters from their encoded form."""
    params = dict(params)
    module = params.get("module")
    if isinstance(module, dict) and "function" in module:
        params["module"] = functools.partial(
            module["function"], *module["args"], **module["keywords"]
        )
    criterion = params.get("criterion")
    if isinstance(criterion, dict) and "class" in criterion:
        params["criterion"] = criterion["class"](criterion["kinds"], criterion["output_sizes"])
    optimizer = params.get("optimizer")
    if isinstance(optimizer, dict) and "torch_optim" in optimizer:
        optimizer = getattr(torch.optim, optimizer["torch_optim"])
        if not (isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer)):
            raise TypeError(f"{optimizer!r} is not a torch.optim optimizer.")
        params["optimizer"] = optimizer
    return params


def _numbers(values):
    """Whether every value is a number (not a bool)."""
    return all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
        for v in values
    )


def _pack_rows(rows):
    """A list of dicts as columns: numbers in one float64 table, lists of numbers of one length
    in a table per key, anything else kept as it is.

    skops writes every Python float as an entry of its own; a history of 200 epochs of 2,410
    tasks (their training and validation losses, their weights) has a million. As tables it
    is a few arrays.
    """
    keys = list(dict.fromkeys(key for row in rows for key in row))
    present = np.array([[key in row for key in keys] for row in rows], dtype=bool).reshape(
        len(rows), len(keys))
    scalars, vectors = [], {}
    for j, key in enumerate(keys):
        values = [row[key] for row in rows if key in row]
        if _numbers(values):
            scalars.append(j)
        elif all(isinstance(v, list) and _numbers(v) for v in values) and (
                len({len(v) for v in values}) == 1):
            table = np.full((len(rows), len(values[0])), np.nan)
            table[present[:, j]] = values
            vectors[key] = table
    table = np.full((len(rows), len(scalars)), np.nan)
    for column, j in enumerate(scalars):
        table[present[:, j], column] = [row[keys[j]] for row in rows if keys[j] in row]
    packed = {keys[j] for j in scalars} | set(vectors)
    return {
        "keys": keys,
        "present": present,
        "scalars": [keys[j] for j in scalars],
        "integers": [keys[j] for j in scalars
                     if all(isinstance(row[keys[j]], (int, np.integer))
                            for row in rows if keys[j] in row)],
        "table": table,
        "vectors": vectors,
        # the other values, of the rows that have some: [row number, {key: value}] pairs
        "rest": [[i, rest] for i, rest in enumerate(
            {k: v for k, v in row.items() if k not in packed} for row in rows) if rest],
    }


def _unpack_rows(packed):
    """The list of dicts of :func:`_pack_rows`."""
    keys, present, table = packed["keys"], packed["present"], packed["table"]
    column = {key: j for j, key in enumerate(packed["scalars"])}
    integers = set(packed["integers"])
    others = dict((i, rest) for i, rest in packed["rest"])
    rows = []
    for i in range(present.shape[0]):
        rest, row = others.get(i, {}), {}
        for j, key in enumerate(keys):
            if not present[i, j]:
                continue
            if key in column:
                value = table[i, column[key]]
                row[key] = int(value) if key in integers else float(value)
            elif key in packed["vectors"]:
                row[key] = packed["vectors"][key][i].tolist()
            else:
                row[key] = rest[key]
        rows.append(row)
    return rows


def _pack_history(history):
    """skorch's history (epochs, each with its list of batches) as tables: one for the
    epochs, one for the batches of all epochs (with each epoch's number of batches, -1 for
    an epoch without the key)."""
    epochs = [dict(row) for row in history]
    batches = [row.pop("batches") if "batches" in row else None for row in epochs]
    return {
        "epochs": _pack_rows(epochs),
        "batches": _pack_rows([batch for rows in batches if rows for batch in rows]),
        "n_batches": [-1 if rows is None else len(rows) for rows in batches],
    }


def _unpack_history(packed):
    epochs = _unpack_rows(packed["epochs"])
    batches = iter(_unpack_rows(packed["batches"]))
    for row, n in zip(epochs, packed["n_batches"], strict=True):
        if n >= 0:
            row["batches"] = [next(batches) for _ in range(n)]
    return History(epochs)


class NetStateMixin:
    """``__getstate__`` / ``__setstate__`` of a skorch net as arrays and plain values.

    Put it first among the bases of a :class:`~skorch.net.NeuralNet` subclass whose
    constructor parameters are stored as attributes of the same name (skorch's rule). See
    the module docstring for what the state holds and what loading restores.
    """

    def __getstate__(self):
        initialized = bool(getattr(self, "initialized_", False))
        modules = {}
        if initialized:
            modules = {
                f"{name}_": getattr(self, f"{name}_") for name in self._modules + self._criteria
                if isinstance(getattr(self, f"{name}_", None), torch.nn.Module)
            }
        encode = _Encoder(modules)
        state = {
            "format": STATE_FORMAT,
            "skmtl_version": __version__,
            "torch_version": torch.__version__,
            "initialized": initialized,
            "params": encode(self._portable_params()),
        }
        if initialized:
            attributes = {
                key: value for key, value in vars(self).items()
                if key.endswith("_") and key not in _REBUILT and key not in modules
            }
            state["attributes"] = encode(attributes)
            state["history"] = encode(_pack_history(self.history_))
            state["modules"] = {
                attribute: {name: _array(tensor) for name, tensor in module.state_dict().items()}
                for attribute, module in modules.items()
            }
            state["frozen"] = {  # parameters that stopped training (a frozen trunk)
                attribute: [name for name, p in module.named_parameters() if not p.requires_grad]
                for attribute, module in modules.items()
            }
        state["tensors"] = encode.tensors
        state["objects"] = encode.objects
        return state

    def _portable_params(self):
        """The constructor parameters, the module factory, criterion and optimizer in plain
        form, without the training machinery and the non-plain defaults."""
        defaults = _defaults(type(self))
        params = {
            key: value for key, value in vars(self).items()
            if not (key.endswith("_") or key.startswith("_"))
            and key.split("__")[0] not in _TRAINING_ONLY
            and not _implicit(key, value, defaults)
        }
        if "train_split" in defaults:
            params["train_split"] = None  # no validation split on a later fit
        if "module" in params:
            params["module"] = _encode_module_factory(params["module"])
        if "criterion" in params:
            params["criterion"] = _encode_criterion(params["criterion"])
        if "optimizer" in params:
            params["optimizer"] = _encode_optimizer(params["optimizer"])
        return params

    def __setstate__(self, state):
        if state.get("format") != STATE_FORMAT:
            raise ValueError(
                f"This file holds a network saved in state format {state.get('format')!r}; "
                f"this version of skmtl ({__version__}) reads format {STATE_FORMAT}. "
                "Load it with the skmtl version that saved it "
                f"({state.get('skmtl_version', 'unknown')}), or refit."
            )
        if state["skmtl_version"] != __version__:
            warnings.warn(
                f"Loading a network saved with skmtl {state['skmtl_version']} into skmtl "
                f"{__version__}: this may fail or predict differently; refit the model "
                "with this version if predictions matter.",
                UserWarning,
                stacklevel=2,
            )
        params = _decode_params(_Decoder(state)(state["params"]))
        if "device" in params:
            params["device"] = _load_device(params["device"])
        self.__init__(**params)
        if not state["initialized"]:
            return
        with torch.random.fork_rng(devices=[]):
            self.initialize()  # resets the objects among params (the weighting): put back below
        for attribute, arrays in state["modules"].items():
            tensors = {name: torch.tensor(array) for name, array in arrays.items()}
            module = getattr(self, attribute)
            module.load_state_dict(tensors)
            parameters = dict(module.named_parameters())
            for name in state["frozen"][attribute]:
                parameters[name].requires_grad_(False)
        decode = _Decoder(state, net=self, device=self.device)
        vars(self).update({
            key: decode(value) for key, value in state["params"].items()
            if isinstance(value, dict) and list(value) == [_OBJECT]
        })
        vars(self).update(decode(state["attributes"]))
        self.history_ = _unpack_history(decode(state["history"]))

    def __copy__(self):
        new = type(self).__new__(type(self))
        vars(new).update(vars(self))
        return new

    def __deepcopy__(self, memo):
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        vars(new).update(copy.deepcopy(vars(self), memo))
        return new
