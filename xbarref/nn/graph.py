"""The model graph: named layers in execution order, wired by name.

A :class:`Model` is a list of :class:`Node` (name, layer, input names) in execution
order. The model input is called ``"input"``; the last node's output is the logits;
``"add"`` nodes take two inputs. Parameter names are ``"<node name>.<array name>"``
(e.g. ``"layer1.0.conv1.weight"``), the same dotted paths as PyTorch state dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from xbarref.errors import XbarrefError
from xbarref.nn.layers import Layer

__all__ = ["Node", "Model", "INPUT"]

INPUT = "input"
"""Name of the model input in :attr:`Node.inputs`."""


@dataclass
class Node:
    """One layer of a :class:`Model`.

    Attributes
    ----------
    name : str
        Unique within the model, not ``"input"``; may contain dots.
    layer : Layer
    inputs : list of str
        Names of earlier nodes or ``"input"``; two for an ``"add"`` layer, else one.
    """

    name: str
    layer: Layer
    inputs: list = field(default_factory=lambda: [INPUT])


class Model:
    """A feed-forward network of named layers (sequential chains and residual blocks).

    Parameters
    ----------
    nodes : list of Node
        In execution order; every input must be ``"input"`` or an earlier node.
    input_shape : tuple of int
        Shape of one sample, e.g. ``(1, 8, 8)`` or ``(64,)``.
    classes : list of str or None
        Class labels, one per logit.
    normalization : dict or None
        ``dict(mean=array, std=array)``, one value per channel (axis 1), applied to raw
        inputs as ``(x - mean) / std`` inside :meth:`forward` and :meth:`__call__`.
    name : str

    Examples
    --------
    >>> import numpy as np
    >>> from xbarref.nn import Model, Node, Linear, ReLU
    >>> model = Model([Node("fc1", Linear(4, 3)), Node("relu", ReLU(), ["fc1"]),
    ...                Node("fc2", Linear(3, 2), ["relu"])], input_shape=(4,))
    >>> model(np.ones((5, 4))).shape
    (5, 2)
    """

    def __init__(self, nodes, input_shape, classes=None, normalization=None, name=""):
        self.nodes = list(nodes)
        self.input_shape = self._check_shape(input_shape)
        self.name = str(name)
        self._check_nodes()
        self.classes = None if classes is None else [str(c) for c in classes]
        self.normalization = self._check_normalization(normalization)
        self._last_use = self._liveness()

    # ------------------------------------------------------------------ validation
    @staticmethod
    def _check_shape(input_shape):
        try:
            shape = tuple(input_shape)
        except TypeError:
            raise XbarrefError(f"input_shape must be a tuple of positive integers, got {input_shape!r}") from None
        if not shape or not all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
                                for s in shape):
            raise XbarrefError(f"input_shape must be a tuple of positive integers, got {input_shape!r}")
        return tuple(int(s) for s in shape)

    def _check_nodes(self):
        if not self.nodes:
            raise XbarrefError("nodes: a model needs at least one node")
        seen = {INPUT}
        layers = set()
        for i, node in enumerate(self.nodes):
            where = f"nodes[{i}]"
            if not isinstance(node, Node):
                raise XbarrefError(f"{where}: expected a Node, got {type(node).__name__}")
            if not isinstance(node.name, str) or not node.name:
                raise XbarrefError(f"{where}: node name must be a non-empty string, got {node.name!r}")
            if node.name in seen:
                raise XbarrefError(f"{where}: duplicate node name {node.name!r}")
            if not isinstance(node.layer, Layer):
                raise XbarrefError(f"{where} ({node.name}): layer must be a Layer, got {type(node.layer).__name__}")
            if id(node.layer) in layers:
                raise XbarrefError(f"{where} ({node.name}): the same layer object is used by two nodes")
            node.inputs = list(node.inputs)
            if len(node.inputs) != node.layer.n_inputs:
                raise XbarrefError(f"{where} ({node.name}): a {node.layer.kind!r} layer takes "
                                   f"{node.layer.n_inputs} input(s), got {node.inputs}")
            for inp in node.inputs:
                if inp not in seen:
                    raise XbarrefError(f"{where} ({node.name}): input {inp!r} is not 'input' or an earlier node")
            seen.add(node.name)
            layers.add(id(node.layer))
        used = {inp for node in self.nodes for inp in node.inputs}
        for node in self.nodes[:-1]:
            if node.name not in used:
                raise XbarrefError(f"nodes: the output of node {node.name!r} is never used "
                                   "(only the last node may be an output)")

    def _check_normalization(self, normalization):
        if normalization is None:
            return None
        if not isinstance(normalization, dict) or set(normalization) != {"mean", "std"}:
            raise XbarrefError("normalization must be None or dict(mean=..., std=...)")
        channels = self.input_shape[0]
        out = {}
        for key in ("mean", "std"):
            arr = np.array(normalization[key], dtype=np.float64).reshape(-1)
            if arr.size == 1:
                arr = np.repeat(arr, channels)
            if arr.shape != (channels,) or not np.all(np.isfinite(arr)):
                raise XbarrefError(f"normalization['{key}'] must hold {channels} finite values "
                                   f"(one per channel), got {normalization[key]!r}")
            out[key] = arr
        if np.any(out["std"] <= 0):
            raise XbarrefError(f"normalization['std'] must be > 0, got {out['std']}")
        return out

    def _liveness(self):
        """Index of the last node that reads each value (to free activations early)."""
        last = {}
        for i, node in enumerate(self.nodes):
            for inp in node.inputs:
                last[inp] = i
        return last

    # ------------------------------------------------------------------ running
    def check_input(self, x):
        """``x`` as a float64 array of shape (N, *input_shape), finite."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != len(self.input_shape) + 1 or x.shape[1:] != self.input_shape:
            raise XbarrefError(f"x: expected shape (N, {', '.join(map(str, self.input_shape))}), got {x.shape}")
        if not np.all(np.isfinite(x)):
            raise XbarrefError("x: contains NaN or infinite values")
        return x

    def normalize(self, x):
        """Apply the input normalization (if any) to raw inputs ``x``."""
        if self.normalization is None:
            return x
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return (x - self.normalization["mean"].reshape(shape)) / self.normalization["std"].reshape(shape)

    def forward(self, x, training=False):
        """Logits for raw inputs ``x`` of shape (N, *input_shape).

        Keeps what :meth:`backward` needs. ``training=True`` uses batch statistics in
        batchnorm (and updates the running statistics) and enables dropout; a tuple of
        layer kinds (e.g. ``("batchnorm2d",)``) puts only layers of those kinds in
        training mode and every other layer in eval mode.
        """
        return self._run(x, training, fuse=False)

    def _run(self, x, training, fuse):
        values = {INPUT: self.normalize(self.check_input(x))}
        kinds = tuple(training) if isinstance(training, (tuple, list, set, frozenset)) else None
        fused = self._bn_relu_pairs() if fuse else {}
        skip = set()
        for i, node in enumerate(self.nodes):
            if i in skip:
                continue
            args = [values[name] for name in node.inputs]
            if i in fused:
                # batchnorm and the ReLU that alone reads it, in one pass (eval mode)
                j = fused[i]
                values[self.nodes[j].name] = node.layer.eval_relu(*args, self.nodes[j].layer)
                skip.add(j)
            else:
                mode = (node.layer.kind in kinds) if kinds is not None else bool(training)
                values[node.name] = node.layer.forward(*args, training=mode)
            for name in set(node.inputs):
                if self._last_use[name] == i:
                    del values[name]
        return values[self.nodes[-1].name]

    def _bn_relu_pairs(self):
        """``{i: j}``: node ``i`` is a batchnorm whose output only node ``j``, a ReLU, reads."""
        pairs = {}
        readers = {}
        for j, node in enumerate(self.nodes):
            for name in node.inputs:
                readers.setdefault(name, []).append(j)
        for i, node in enumerate(self.nodes):
            r = readers.get(node.name, [])
            if (callable(getattr(node.layer, "eval_relu", None)) and len(r) == 1
                    and self.nodes[r[0]].layer.kind == "relu"):
                pairs[i] = r[0]
        return pairs

    def __call__(self, x):
        """Logits in eval mode; frees what backward would need (use :meth:`forward` for that).

        Runs each batchnorm whose output only a ReLU reads together with that ReLU, in
        one pass (:meth:`~xbarref.nn.layers._BatchNorm.eval_relu`: the same bits as the
        two layers one after the other)."""
        try:
            return self._run(x, False, fuse=True)
        finally:
            self.release()

    def backward(self, grad_logits, keys=None):
        """Back-propagate ``grad_logits`` (d loss / d logits) through the last forward.

        Parameters
        ----------
        grad_logits : numpy.ndarray, shape of the logits
        keys : set of str, optional
            Names of the parameters (as in :meth:`named_parameters`) whose gradients are
            needed; None (default): all of them and the input gradient.

        Returns
        -------
        numpy.ndarray or None
            The gradient with respect to the normalised input; None when ``keys`` is
            given (it is not computed then).

        Raises
        ------
        XbarrefError
            A name in ``keys`` that is not a parameter of the model.

        Notes
        -----
        Without ``keys`` every layer's :meth:`~xbarref.nn.layers.Layer.backward` runs
        and fills its ``grads``. With ``keys`` the backward pass is pruned to what those
        gradients need: only the nodes holding one of the keys and the nodes downstream
        of them (in the order of :attr:`nodes`, every node from the first holding a key
        on, less any branch that no such node feeds) are visited; a visited layer
        holding a key runs :meth:`~xbarref.nn.layers.Layer.backward`, the others only
        :meth:`~xbarref.nn.layers.Layer.backward_input` (Conv2d and Linear then compute
        no weight gradient). The pruning is exact: the gradients of the layers holding
        a key are the same bits as after a full backward (the visited nodes run the same
        statements on the same gradients, summed in the same order). Every other
        layer's ``grads`` is emptied, so :meth:`named_grads` holds no stale gradient of
        an earlier call: only the gradients of the layers holding a key (all their
        parameters', also those not in ``keys``).
        """
        grads = {self.nodes[-1].name: np.asarray(grad_logits, dtype=np.float64)}
        if keys is None:
            for node in reversed(self.nodes):
                g = grads.pop(node.name)
                g_in = node.layer.backward(g)
                if node.layer.n_inputs == 1:
                    g_in = (g_in,)
                for name, gi in zip(node.inputs, g_in):
                    grads[name] = gi if name not in grads else grads[name] + gi
            return grads[INPUT]
        holders, active = self._gradient_nodes(keys)
        for node in reversed(self.nodes):
            layer = node.layer
            if node.name not in active:
                layer.grads.clear()
                continue
            g = grads.pop(node.name)
            if node.name in holders:
                g_in = layer.backward(g)
            else:
                g_in = layer.backward_input(g)
                layer.grads.clear()
            if layer.n_inputs == 1:
                g_in = (g_in,)
            for name, gi in zip(node.inputs, g_in):
                if name in active:
                    grads[name] = gi if name not in grads else grads[name] + gi
        return None

    def _gradient_nodes(self, keys):
        """``(holders, active)`` for :meth:`backward` with ``keys``: the names of the nodes
        holding a parameter in ``keys`` and of the nodes whose output gradient those
        parameters' gradients need (the holders and every node downstream of one)."""
        keys = set(keys)
        unknown = keys - set(self.named_parameters())
        if unknown:
            raise XbarrefError(f"keys: not parameters of the model: {sorted(unknown)}")
        holders, active = set(), set()
        for node in self.nodes:
            if any(f"{node.name}.{k}" in keys for k in node.layer.params):
                holders.add(node.name)
            if node.name in holders or any(inp in active for inp in node.inputs):
                active.add(node.name)
        return holders, active

    def release(self):
        """Free what every layer kept for backward."""
        for node in self.nodes:
            node.layer.release()

    # ------------------------------------------------------------------ introspection
    def _named(self, attr):
        return {f"{node.name}.{key}": arr
                for node in self.nodes for key, arr in getattr(node.layer, attr).items()}

    def named_parameters(self):
        """``{"<node>.<name>": array}`` of trainable arrays (the arrays themselves, not copies)."""
        return self._named("params")

    def named_buffers(self):
        """``{"<node>.<name>": array}`` of non-trainable state (batchnorm running statistics)."""
        return self._named("buffers")

    def named_grads(self):
        """``{"<node>.<name>": array}`` of the gradients filled by the last :meth:`backward`
        (after a backward with ``keys``, those of the layers holding a key only)."""
        return self._named("grads")

    def layers_of_kind(self, *kinds):
        """``[(node name, layer)]`` of the layers whose ``kind`` is one of ``kinds``."""
        return [(node.name, node.layer) for node in self.nodes if node.layer.kind in kinds]

    def num_parameters(self):
        """Total number of trainable scalars."""
        return int(sum(arr.size for arr in self.named_parameters().values()))

    def __repr__(self):
        lines = [f"Model(name={self.name!r}, input_shape={self.input_shape}, "
                 f"parameters={self.num_parameters()})"]
        for node in self.nodes:
            wiring = "" if node.inputs == [INPUT] and node is self.nodes[0] else f" <- {', '.join(node.inputs)}"
            lines.append(f"  {node.name}: {node.layer!r}{wiring}")
        return "\n".join(lines)

