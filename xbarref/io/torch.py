"""Export a PyTorch module to an xbarref model file (needs the optional extra ``torch``).

:func:`export` traces the module with ``torch.fx.symbolic_trace``, so any wiring of the
supported modules and functions works (sequential chains, residual blocks, shortcuts);
it maps every traced operation to an xbarref layer, copies the weights and batchnorm
running statistics in float64, checks the exported model's logits against the module's
on ``example_input`` and writes the model file (``docs/model-format.md``).

Supported (anything else raises :class:`XbarrefError` naming the module or function
and the traced node):

=============================================  ===========================================
PyTorch                                        xbarref layer kind
=============================================  ===========================================
``nn.Conv2d`` (groups 1, dilation 1, zero pad) ``conv2d``
``nn.Linear``                                  ``linear``
``nn.BatchNorm1d`` / ``nn.BatchNorm2d``        ``batchnorm1d`` / ``batchnorm2d``
``nn.ReLU``, ``F.relu``, ``torch.relu``,       ``relu``
``x.relu()``
``nn.MaxPool2d``, ``nn.AvgPool2d``             ``maxpool2d``, ``avgpool2d`` (no ceil mode,
                                               no dilation, no divisor override)
``nn.AdaptiveAvgPool2d(1)``                    ``global_avgpool`` (output (N, C); only a
                                               flatten may follow it)
``nn.Flatten()``, ``torch.flatten(x, 1)``,     ``flatten``
``x.flatten(1)``, ``x.view(x.size(0), -1)``,
``x.reshape(x.shape[0], -1)``
``nn.Dropout``                                 ``dropout`` (identity at inference)
``+``, ``torch.add``, ``operator.add``,        ``add``
``x.add(y)``
``nn.Identity``                                no node (wired through)
=============================================  ===========================================

Node names are the module's qualified names (``layer1.0.conv1``), so xbarref parameter
names equal the PyTorch ``state_dict`` keys (``layer1.0.conv1.weight``); a function or
method gets ``<enclosing module>.<op>`` (``layer1.0.add``). A name already taken gets a
suffix (``layer1.0.relu_1``): a module called twice gets a second node with a copy of
its weights.
"""

from __future__ import annotations

import copy
import operator
import re

import numpy as np

from xbarref.errors import XbarrefError

__all__ = ["export", "to_xbarref"]


def _torch():
    try:
        import torch
        import torch.fx  # noqa: F401
    except ImportError:
        raise XbarrefError("module: exporting from PyTorch needs torch "
                           "(pip install 'xbarref[torch]')") from None
    return torch


def _array(tensor):
    return tensor.detach().to(device="cpu").double().numpy().copy()


def _pair(value):
    if isinstance(value, (tuple, list)):
        return [int(v) for v in value]
    return [int(value), int(value)]




def _where(node, module=None):
    what = f"module: traced node {node.name!r} ({node.op} {node.target!r}"
    if module is not None:
        what += f", {type(module).__module__}.{type(module).__name__}"
    return what + ")"


# ----------------------------------------------------------------------------- modules
def _conv2d(mod, node):
    nn = _torch().nn
    if mod.groups != 1:
        raise XbarrefError(f"{_where(node, mod)}: Conv2d with groups={mod.groups} is not supported")
    if tuple(mod.dilation) != (1, 1):
        raise XbarrefError(f"{_where(node, mod)}: Conv2d with dilation={mod.dilation} is not supported")
    if mod.padding_mode != "zeros":
        raise XbarrefError(f"{_where(node, mod)}: Conv2d with padding_mode={mod.padding_mode!r} "
                           "is not supported (only 'zeros')")
    padding = mod.padding
    kernel = _pair(mod.kernel_size)
    if padding == "valid":
        padding = [0, 0]
    elif padding == "same":
        if any(k % 2 == 0 for k in kernel):
            raise XbarrefError(f"{_where(node, mod)}: Conv2d padding='same' with an even kernel "
                               f"{kernel} pads asymmetrically, which is not supported")
        padding = [(k - 1) // 2 for k in kernel]
    config = dict(in_channels=mod.in_channels, out_channels=mod.out_channels,
                  kernel_size=kernel, stride=_pair(mod.stride), padding=_pair(padding),
                  bias=mod.bias is not None)
    params = {"weight": _array(mod.weight)}
    if mod.bias is not None:
        params["bias"] = _array(mod.bias)
    return "conv2d", config, params, {}


def _linear(mod, node):
    config = dict(in_features=mod.in_features, out_features=mod.out_features,
                  bias=mod.bias is not None)
    params = {"weight": _array(mod.weight)}
    if mod.bias is not None:
        params["bias"] = _array(mod.bias)
    return "linear", config, params, {}


def _batchnorm(kind):
    def convert(mod, node):
        if not mod.track_running_stats or mod.running_mean is None:
            raise XbarrefError(f"{_where(node, mod)}: batchnorm without running statistics "
                               "(track_running_stats=False) is not supported")
        n = mod.num_features
        # momentum None (cumulative average) has no xbarref equivalent; it only matters
        # for training, so the PyTorch default 0.1 is stored.
        momentum = 0.1 if mod.momentum is None else float(mod.momentum)
        config = dict(num_features=n, eps=float(mod.eps), momentum=momentum)
        if mod.affine:
            params = {"weight": _array(mod.weight), "bias": _array(mod.bias)}
        else:
            params = {"weight": np.ones(n), "bias": np.zeros(n)}
        buffers = {"running_mean": _array(mod.running_mean),
                   "running_var": _array(mod.running_var)}
        return kind, config, params, buffers
    return convert


def _pool(kind):
    def convert(mod, node):
        name = type(mod).__name__
        if getattr(mod, "ceil_mode", False):
            raise XbarrefError(f"{_where(node, mod)}: {name} with ceil_mode=True is not supported")
        if kind == "maxpool2d":
            if _pair(mod.dilation) != [1, 1]:
                raise XbarrefError(f"{_where(node, mod)}: MaxPool2d with dilation={mod.dilation} "
                                   "is not supported")
            if mod.return_indices:
                raise XbarrefError(f"{_where(node, mod)}: MaxPool2d with return_indices=True "
                                   "is not supported")
        if kind == "avgpool2d" and mod.divisor_override is not None:
            raise XbarrefError(f"{_where(node, mod)}: AvgPool2d with divisor_override is not supported")
        stride = mod.kernel_size if mod.stride is None else mod.stride
        config = dict(kernel_size=_pair(mod.kernel_size), stride=_pair(stride),
                      padding=_pair(mod.padding))
        if kind == "avgpool2d":
            config["count_include_pad"] = bool(mod.count_include_pad)
        return kind, config, {}, {}
    return convert


def _adaptive_avg(mod, node):
    size = mod.output_size
    if size not in (1, (1, 1), [1, 1]):
        raise XbarrefError(f"{_where(node, mod)}: AdaptiveAvgPool2d is supported only with "
                           f"output size 1, got {size!r}")
    return "global_avgpool", {}, {}, {}


def _flatten_module(mod, node):
    if mod.start_dim != 1 or mod.end_dim != -1:
        raise XbarrefError(f"{_where(node, mod)}: Flatten is supported only with start_dim=1, "
                           f"end_dim=-1, got {mod.start_dim}, {mod.end_dim}")
    return "flatten", {}, {}, {}


def _module_table():
    nn = _torch().nn
    return {
        nn.Conv2d: _conv2d,
        nn.Linear: _linear,
        nn.BatchNorm1d: _batchnorm("batchnorm1d"),
        nn.BatchNorm2d: _batchnorm("batchnorm2d"),
        nn.ReLU: lambda mod, node: ("relu", {}, {}, {}),
        nn.MaxPool2d: _pool("maxpool2d"),
        nn.AvgPool2d: _pool("avgpool2d"),
        nn.AdaptiveAvgPool2d: _adaptive_avg,
        nn.Flatten: _flatten_module,
        nn.Dropout: lambda mod, node: ("dropout", {"p": float(mod.p)}, {}, {}),
    }


# ----------------------------------------------------------------------------- tracing
class _Builder:
    """Walks a torch.fx graph and collects xbarref nodes (name, kind, config, arrays, inputs)."""

    def __init__(self, traced):
        self.traced = traced
        self.modules = dict(traced.named_modules())
        self.table = _module_table()
        self.value = {}          # fx node -> xbarref node name ("input" for the placeholder)
        self.size_of = {}        # fx node -> (xbarref name of the tensor, dim or None)
        self.records = []        # [name, kind, config, params, buffers, inputs, fx node]
        self.kind_of = {"input": "input"}
        self.used_names = {"input"}
        self.reserved = {n.target for n in traced.graph.nodes if n.op == "call_module"}

    def unique(self, name, module_target=False):
        """``name``, or ``name_1``, ``name_2`` ... if taken. Module targets are reserved
        for their module's first call so that parameter names equal state_dict keys."""
        base, k = name, 0
        while name in self.used_names or (name in self.reserved and not module_target):
            k += 1
            name = f"{base}_{k}"
            module_target = False
        self.used_names.add(name)
        return name

    @staticmethod
    def function_name(node):
        """``<scope>.<op>`` for a function or method node, e.g. ``layer1.0.add``."""
        base = re.sub(r"_\d+$", "", node.name) or node.name
        stack = node.meta.get("nn_module_stack") or {}
        scopes = [v[0] for v in stack.values()
                  if isinstance(v, tuple) and v and isinstance(v[0], str) and v[0]]
        return f"{scopes[-1]}.{base}" if scopes else base

    def tensor_arg(self, node, arg, what):
        torch = _torch()
        if isinstance(arg, torch.fx.Node) and arg in self.value:
            return self.value[arg]
        raise XbarrefError(f"{_where(node)}: {what} must be a tensor computed by supported "
                           f"operations, got {arg!r}")

    def emit(self, node, name, kind, config, params, buffers, inputs):
        if node.op == "call_module":
            name = self.unique(name, module_target=True)
        else:
            name = self.unique(self.function_name(node))
        for src in inputs:
            if self.kind_of.get(src) == "global_avgpool" and kind != "flatten":
                raise XbarrefError(
                    f"{_where(node)}: reads the output of AdaptiveAvgPool2d(1) node {src!r}; "
                    "xbarref's global average pooling returns (N, C), so only a flatten may "
                    "follow it")
        self.records.append([name, kind, config, params, buffers, list(inputs), node])
        self.kind_of[name] = kind
        self.value[node] = name

    def run(self):
        for node in self.traced.graph.nodes:
            handler = getattr(self, "_" + node.op.replace("_", ""), None)
            if handler is None:
                raise XbarrefError(f"{_where(node)}: torch.fx operation {node.op!r} is not supported")
            handler(node)
        return self.records

    # fx opcodes ------------------------------------------------------------
    def _placeholder(self, node):
        if any(v == "input" for v in self.value.values()):
            raise XbarrefError(f"{_where(node)}: the module takes more than one input; "
                               "xbarref models have one")
        self.value[node] = "input"

    def _getattr(self, node):
        raise XbarrefError(f"{_where(node)}: uses the tensor attribute {node.target!r} directly; "
                           "only parameters of supported modules can be exported")

    def _output(self, node):
        result = node.args[0]
        torch = _torch()
        if not isinstance(result, torch.fx.Node):
            raise XbarrefError(f"{_where(node)}: the module must return one tensor (the logits), "
                               f"got {type(result).__name__}")
        name = self.tensor_arg(node, result, "the output")
        if not self.records or name != self.records[-1][0]:
            raise XbarrefError(f"{_where(node)}: the output must be the last operation computed, "
                               f"got {name!r}")
        self.output = name

    def _callmodule(self, node):
        mod = self.modules[node.target]
        nn = _torch().nn
        if type(mod) is nn.Identity:
            self.value[node] = self.tensor_arg(node, node.args[0], "Identity's input")
            return
        convert = self.table.get(type(mod))
        if convert is None:
            raise XbarrefError(
                f"{_where(node, mod)}: module {type(mod).__name__} at {node.target!r} is not "
                "supported (supported: Conv2d, Linear, BatchNorm1d/2d, ReLU, MaxPool2d, "
                "AvgPool2d, AdaptiveAvgPool2d(1), Flatten, Dropout, Identity)")
        if len(node.args) != 1 or node.kwargs:
            raise XbarrefError(f"{_where(node, mod)}: expected one tensor argument")
        src = self.tensor_arg(node, node.args[0], "the input")
        kind, config, params, buffers = convert(mod, node)
        self.emit(node, node.target, kind, config, params, buffers, [src])

    def _add(self, node, a, b, alpha=1):
        if alpha != 1:
            raise XbarrefError(f"{_where(node)}: add with alpha={alpha} is not supported")
        inputs = [self.tensor_arg(node, a, "the first summand"),
                  self.tensor_arg(node, b, "the second summand")]
        self.emit(node, node.name, "add", {}, {}, {}, inputs)

    def _flatten(self, node, x, start_dim=1, end_dim=-1):
        if start_dim != 1 or end_dim != -1:
            raise XbarrefError(f"{_where(node)}: flatten is supported only from dim 1 to -1, "
                               f"got start_dim={start_dim}, end_dim={end_dim}")
        self.emit(node, node.name, "flatten", {}, {}, {},
                  [self.tensor_arg(node, x, "flatten's input")])

    def _relu(self, node, x, inplace=False):
        self.emit(node, node.name, "relu", {}, {}, {}, [self.tensor_arg(node, x, "relu's input")])

    def _view(self, node, x, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        src = self.tensor_arg(node, x, "the tensor to reshape")
        # Every supported operation keeps the batch axis, so dim 0 of any traced tensor
        # is the batch size.
        if (len(shape) == 2 and shape[1] == -1 and shape[0] in self.size_of
                and self.size_of[shape[0]][1] == 0):
            self.emit(node, node.name, "flatten", {}, {}, {}, [src])
            return
        raise XbarrefError(f"{_where(node)}: {node.target}{tuple(shape)!r} is supported only as "
                           "x.view(x.size(0), -1) / x.reshape(x.shape[0], -1) (a flatten)")

    def _size(self, node, x, dim=None):
        src = self.tensor_arg(node, x, "the tensor whose size is taken")
        self.size_of[node] = (src, dim)

    def _callfunction(self, node):
        torch = _torch()
        F = torch.nn.functional
        fn, args, kwargs = node.target, node.args, dict(node.kwargs)
        if fn in (operator.add, torch.add):
            return self._add(node, *args, **kwargs)
        if fn in (F.relu, torch.relu):
            return self._relu(node, *args, **kwargs)
        if fn is torch.flatten:
            return self._flatten(node, *args, **kwargs)
        if fn is getattr and len(args) == 2 and args[1] == "shape":
            return self._size(node, args[0])
        if (fn is operator.getitem and args and args[0] in self.size_of
                and self.size_of[args[0]][1] is None and isinstance(args[1], int)):
            self.size_of[node] = (self.size_of[args[0]][0], args[1])
            return None
        name = getattr(fn, "__module__", None)
        name = f"{name}.{getattr(fn, '__name__', fn)}" if name else repr(fn)
        raise XbarrefError(f"{_where(node)}: function {name} is not supported (supported: "
                           "F.relu/torch.relu, torch.flatten, torch.add / +, view/reshape as "
                           "flatten)")

    def _callmethod(self, node):
        method, args, kwargs = node.target, node.args, dict(node.kwargs)
        if method == "size":
            return self._size(node, *args, **kwargs)
        if method in ("view", "reshape"):
            return self._view(node, *args, **kwargs)
        if method == "flatten":
            return self._flatten(node, *args, **kwargs)
        if method == "relu":
            return self._relu(node, *args, **kwargs)
        if method == "add":
            return self._add(node, *args, **kwargs)
        raise XbarrefError(f"{_where(node)}: tensor method .{method}() is not supported "
                           "(supported: .relu(), .flatten(1), .add(y), .view/.reshape as flatten)")


def to_xbarref(module, example_input, *, classes=None, normalization=None, name=None,
               rtol=1e-5):
    """Convert a PyTorch module to an :class:`xbarref.nn.graph.Model` (no file written).

    Parameters are as for :func:`export`.

    Returns
    -------
    xbarref.nn.graph.Model
    """
    torch = _torch()
    from xbarref.nn.graph import Model, Node
    from xbarref.nn.layers import Layer

    if not isinstance(module, torch.nn.Module):
        raise XbarrefError(f"module: must be a torch.nn.Module, got {type(module).__name__}")
    if isinstance(example_input, np.ndarray):
        example_input = torch.from_numpy(example_input)
    if not isinstance(example_input, torch.Tensor) or example_input.ndim < 2 \
            or example_input.shape[0] < 1 or not example_input.is_floating_point():
        raise XbarrefError("example_input: must be a float tensor of shape (N, *input_shape) "
                           f"with N >= 1, got {getattr(example_input, 'shape', example_input)!r}")
    if not bool(torch.isfinite(example_input).all()):
        raise XbarrefError("example_input: contains NaN or infinite values")
    if not (isinstance(rtol, (int, float)) and rtol > 0):
        raise XbarrefError(f"rtol: must be a number > 0, got {rtol!r}")

    try:
        traced = torch.fx.symbolic_trace(module)
    except Exception as exc:  # torch.fx raises many types (TraceError, TypeError, ...)
        raise XbarrefError(f"module: torch.fx could not trace {type(module).__name__} "
                           f"({type(exc).__name__}: {exc}); data-dependent control flow "
                           "cannot be exported") from None
    traced.graph.eliminate_dead_code()
    builder = _Builder(traced)
    records = builder.run()
    if not records:
        raise XbarrefError("module: the traced module performs no supported operation")

    nodes = []
    for node_name, kind, config, params, buffers, inputs, fx_node in records:
        layer = Layer.from_config(kind, config)
        for store, arrays in ((layer.params, params), (layer.buffers, buffers)):
            for key, arr in arrays.items():
                if store[key].shape != arr.shape:
                    raise XbarrefError(f"{_where(fx_node)}: {key} has shape {arr.shape}, "
                                       f"xbarref expects {store[key].shape}")
                store[key][...] = arr
        nodes.append(Node(node_name, layer, inputs))

    input_shape = tuple(int(s) for s in example_input.shape[1:])
    model = Model(nodes, input_shape, classes=classes, normalization=normalization,
                  name=type(module).__name__ if name is None else name)

    # Check: the module in float64 (a copy; the caller's module is not touched) on the
    # normalised example input against the exported model on the raw example input.
    x = _array(example_input)
    reference = copy.deepcopy(module).cpu().double().eval()
    try:
        with torch.no_grad():
            expected = reference(torch.from_numpy(model.normalize(x)))
    except Exception as exc:  # whatever the module raises on a wrong input
        raise XbarrefError(f"example_input: PyTorch cannot run {type(module).__name__} on "
                           f"it (shape {tuple(example_input.shape)}): "
                           f"{type(exc).__name__}: {exc}") from None
    if not isinstance(expected, torch.Tensor) or expected.ndim != 2:
        raise XbarrefError(f"module: must return logits of shape (N, K), got "
                           f"{getattr(expected, 'shape', type(expected).__name__)}")
    expected = expected.numpy()
    try:
        got = model(x)
    except XbarrefError as exc:
        raise XbarrefError(f"module: the exported model fails on example_input: {exc}") from None
    if got.shape != expected.shape:
        raise XbarrefError(f"module: exported model gives logits of shape {got.shape}, "
                           f"PyTorch gives {expected.shape}")
    scale = max(float(np.max(np.abs(expected))), np.finfo(np.float64).tiny)
    error = float(np.max(np.abs(got - expected))) / scale
    if not error <= rtol:
        raise XbarrefError(f"module: exported model's logits differ from PyTorch's by "
                           f"{error:.3g} (max abs difference / max abs logit) > rtol={rtol}; "
                           "a common cause is an in-place operation (ReLU(inplace=True), +=) "
                           "on a tensor that is read again later, which torch.fx does not see")
    if classes is not None and len(model.classes) != expected.shape[1]:
        raise XbarrefError(f"classes: {len(model.classes)} labels for {expected.shape[1]} logits")
    return model


def export(module, path, example_input, *, classes=None, normalization=None, name=None,
           rtol=1e-5):
    """Export a PyTorch module to an xbarref model file.

    Parameters
    ----------
    module : torch.nn.Module
        Built from the supported modules and functions (module docstring); evaluated in
        eval mode (batchnorm running statistics, no dropout). It is not modified: the
        check runs on a float64 copy.
    path : str or os.PathLike
        Destination model file (written atomically).
    example_input : torch.Tensor or numpy.ndarray, shape (N, *input_shape)
        Sets the model's per-sample ``input_shape`` and checks the export: the exported
        model's logits on it must match the module's to ``rtol``. Raw inputs: when
        ``normalization`` is given, the module sees ``(x - mean) / std``.
    classes : list of str, optional
        Class labels, one per logit.
    normalization : dict, optional
        ``dict(mean=..., std=...)`` per input channel, applied by the xbarref model to
        raw inputs (for modules trained on normalised data).
    name : str, optional
        Model name (default: the module's class name).
    rtol : float, optional
        Allowed ``max |xbarref - torch| / max |torch|`` over the example logits, both in
        float64 (default 1e-5).

    Returns
    -------
    xbarref.nn.graph.Model
        The exported model (the same one :func:`xbarref.load_model` reads back).

    Raises
    ------
    XbarrefError
        If torch is missing, the module uses an unsupported module, function or method
        (the message names it and the traced node), cannot be traced by torch.fx, or its
        exported logits differ.

    Examples
    --------
    >>> import torch
    >>> from xbarref.io.torch import export
    >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    >>> model = export(net, "net.h5", torch.zeros(1, 1, 8, 8))   # doctest: +SKIP
    """
    from xbarref.io.model import save_model

    model = to_xbarref(module, example_input, classes=classes, normalization=normalization,
                       name=name, rtol=rtol)
    save_model(model, path)
    return model
