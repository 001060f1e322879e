"""HDF5 model files (``docs/model-format.md``): :func:`save_model` and :func:`load_model`.

A model file holds an :class:`xbarref.nn.graph.Model`: the ordered nodes (name, layer
kind, inputs, hyper-parameters), every parameter and buffer array under a path that
maps one to one onto its dotted name (``layer1.0.conv1.weight`` is
``/parameters/layer1.0.conv1/weight``), the per-sample input shape, the class labels
and the input normalisation. Arrays are stored as float64, so a round trip is bit-exact.
"""

from __future__ import annotations

import importlib.resources
import json
import os

import numpy as np

from xbarref.errors import SizeLimitError, XbarrefError
from xbarref.io.h5 import (atomic_h5, check_format, fail, max_array_bytes, open_h5, read_array,
                            read_attr,
                            read_strings, require_group, write_array, write_str_array_attr,
                            write_str_attr, write_strings)

__all__ = ["save_model", "load_model", "bundled_model_path", "BUNDLED_MODEL", "FORMAT",
           "FORMAT_VERSION"]

FORMAT = "xbarref.model"
FORMAT_VERSION = 1
INPUT_NAME = "input"

#: File name of the bundled digits CNN, under ``xbarref/data/``.
BUNDLED_MODEL = "digits_cnn.h5"


def bundled_model_path():
    """Path of the bundled digits CNN (``xbarref/data/digits_cnn.h5``, made by
    ``validation/train_digits.py --seed 0``), the default of :func:`load_model`.

    Returns
    -------
    str
    """
    return os.fspath(importlib.resources.files("xbarref") / "data" / BUNDLED_MODEL)


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _node_name_problem(name):
    """Why ``name`` cannot be a node name in a model file, or None if it can."""
    if not isinstance(name, str) or not name:
        return f"node name must be a non-empty string, got {name!r}"
    if "/" in name or name in (".", "..", INPUT_NAME):
        return f"node name {name!r} is not allowed (no '/', not '.', '..' or {INPUT_NAME!r})"
    return None


def _check_array_name(name, where):
    if not isinstance(name, str) or not name or "/" in name or "." in name:
        raise XbarrefError(f"{where}: array name {name!r} must be non-empty without '/' or '.'")


def save_model(model, path, *, overwrite=True):
    """Write a model to an HDF5 file (atomically).

    Parameters
    ----------
    model : xbarref.nn.graph.Model
    path : str or os.PathLike
        Destination. The file is written to a temporary file in the same folder and
        renamed; the file the model was loaded from is never overwritten.
    overwrite : bool, optional
        Replace an existing regular file (default True; see :mod:`xbarref.io.atomic`).

    Raises
    ------
    XbarrefError
        If a node name contains ``/`` or is ``"input"``, a hyper-parameter is not JSON
        serialisable, an array is not floating point, or ``path`` is the file the
        model was loaded from.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> import xbarref
    >>> from xbarref.io.model import save_model
    >>> from xbarref.nn import mlp
    >>> model = mlp((4,), (3,), num_classes=2, rng=np.random.default_rng(0))
    >>> path = os.path.join(tempfile.mkdtemp(), "mlp.h5")
    >>> save_model(model, path)
    >>> x = np.ones((5, 4))
    >>> bool((xbarref.load_model(path)(x) == model(x)).all())
    True
    """
    from xbarref.nn.graph import Model

    if not isinstance(model, Model):
        raise XbarrefError(f"model: must be an xbarref.nn.graph.Model, got "
                           f"{type(model).__name__}")
    input_shape = [int(s) for s in model.input_shape]
    seen = set()
    records = []
    for i, node in enumerate(model.nodes):
        where = f"model.nodes[{i}]"
        problem = _node_name_problem(node.name)
        if problem:
            raise XbarrefError(f"{where}: {problem}")
        if node.name in seen:
            raise XbarrefError(f"{where}: duplicate node name {node.name!r}")
        seen.add(node.name)
        layer = node.layer
        try:
            config = json.dumps(layer.config(), sort_keys=True, allow_nan=False,
                                default=_json_default)
        except (TypeError, ValueError) as exc:
            raise XbarrefError(f"{where} ({node.name!r}): layer config cannot be stored "
                               f"as JSON: {exc}") from None
        inputs = [str(s) for s in node.inputs]
        if not inputs:
            raise XbarrefError(f"{where} ({node.name!r}): a node needs at least one input")
        arrays = {}
        for group, store in (("parameters", layer.params), ("buffers", layer.buffers)):
            for key, value in store.items():
                _check_array_name(key, f"{where} ({node.name!r}) {group}")
                arr = np.asarray(value)
                if arr.dtype.kind != "f":
                    raise XbarrefError(f"{where} ({node.name!r}): {group} {key!r} must be "
                                       f"floating point, got {arr.dtype}")
                arrays[f"/{group}/{node.name}/{key}"] = arr.astype(np.float64, copy=False)
        records.append((node.name, layer.kind, inputs, config, arrays))
    classes = None if model.classes is None else [str(c) for c in model.classes]
    norm = model.normalization
    source = getattr(model, "source_path", None)

    with atomic_h5(path, inputs=[source] if source else (), overwrite=overwrite) as handle:
        from xbarref import __version__

        write_str_attr(handle, "format", FORMAT)
        handle.attrs["format_version"] = FORMAT_VERSION
        write_str_attr(handle, "name", str(model.name or ""))
        handle.attrs["input_shape"] = np.asarray(input_shape, dtype=np.int64)
        write_str_attr(handle, "created_by", f"xbarref {__version__}")
        nodes = handle.create_group("nodes")
        nodes.attrs["count"] = len(records)
        handle.create_group("parameters")
        handle.create_group("buffers")
        for i, (name, kind, inputs, config, arrays) in enumerate(records):
            group = nodes.create_group(str(i))
            write_str_attr(group, "name", name)
            write_str_attr(group, "kind", kind)
            write_str_array_attr(group, "inputs", inputs)
            write_str_attr(group, "config", config)
            for h5path, arr in arrays.items():
                write_array(handle, h5path, arr)
        if classes is not None:
            write_strings(handle, "classes", classes)
        if norm is not None:
            group = handle.create_group("normalization")
            for key in ("mean", "std"):
                write_array(group, key, np.asarray(norm[key], dtype=np.float64))


def _read_config(group, filename):
    text = read_attr(group, "config", filename, "str")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(filename, f"{group.name} attribute 'config'",
                   f"is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise fail(filename, f"{group.name} attribute 'config'",
                   f"must be a JSON object, got {text!r}")
    return config


def _read_arrays(handle, filename, section, node_name, wanted):
    """Copy /<section>/<node>/<key> into the zero-initialised arrays of ``wanted``."""
    base = f"/{section}/{node_name}"
    present = set()
    if node_name in handle[section]:
        group = require_group(handle, base, filename)
        present = set(group.keys())
    for key, target in wanted.items():
        arr = read_array(handle, f"{base}/{key}", filename, kind="f", shape=target.shape)
        dotted = f"{node_name}.{key}"
        if not np.all(np.isfinite(arr)):
            bad = tuple(int(k) for k in np.argwhere(~np.isfinite(arr))[0]) if arr.ndim else ()
            raise fail(filename, f"{base}/{key}",
                       f"{section[:-1]} {dotted} must be finite, found {arr[bad]} at index {bad}")
        if key == "running_var" and np.any(arr < 0):
            bad = tuple(int(k) for k in np.argwhere(arr < 0)[0]) if arr.ndim else ()
            raise fail(filename, f"{base}/{key}",
                       f"{section[:-1]} {dotted} is a variance and must be >= 0, found "
                       f"{arr[bad]} at index {bad}")
        target[...] = arr
    extra = sorted(present - set(wanted))
    if extra:
        raise fail(filename, f"{base}/{extra[0]}",
                   f"unexpected array (layer has {sorted(wanted) or 'no ' + section})")


def _check_shapes(model, filename):
    """Run one zero sample through the nodes: every layer must fit its input's shape."""
    values = {INPUT_NAME: np.zeros((1,) + model.input_shape)}
    for i, node in enumerate(model.nodes):
        try:
            with np.errstate(all="ignore"):  # only shapes matter here
                values[node.name] = node.layer.forward(*(values[s] for s in node.inputs),
                                                       training=False)
        except XbarrefError as exc:
            raise fail(filename, f"/nodes/{i}",
                       f"node {node.name!r} does not fit the shape of its input(s) "
                       f"{[values[s].shape[1:] for s in node.inputs]} (per sample; from "
                       f"input_shape {model.input_shape}): {exc}") from None
        finally:
            node.layer.release()
    logits = values[model.nodes[-1].name]
    where = f"/nodes/{len(model.nodes) - 1}"
    if logits.ndim != 2:
        raise fail(filename, where, f"the last node must output logits of shape (N, K), "
                                    f"got per-sample shape {logits.shape[1:]}")
    if model.classes is not None and len(model.classes) != logits.shape[1]:
        raise fail(filename, "/classes",
                   f"{len(model.classes)} class labels for {logits.shape[1]} logits")


def load_model(path=None):
    """Read a model file.

    Parameters
    ----------
    path : str or os.PathLike, optional
        An HDF5 file in the layout of ``docs/model-format.md``. Default: the bundled
        digits CNN (:func:`bundled_model_path`, also ``xbarref.data.path("digits_cnn.h5")``).

    Returns
    -------
    xbarref.nn.graph.Model
        Ready for inference: ``model(x)`` on an (N, *input_shape) float array returns
        the logits. Its ``source_path`` attribute is ``path``.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    FileFormatError
        If the file is not HDF5, is damaged or truncated, has another ``format`` or an
        unknown ``format_version``, lacks a required path, has an array of the wrong
        dtype or shape, an unknown layer kind or bad hyper-parameters, or wiring that
        refers to an unknown node. The message names the file and the HDF5 path.

    Examples
    --------
    >>> import xbarref
    >>> model = xbarref.load_model()          # the bundled digits CNN
    >>> model.input_shape, len(model.classes)
    ((1, 8, 8), 10)
    """
    from xbarref.nn.graph import Model, Node
    from xbarref.nn.layers import LAYER_KINDS, Layer

    if path is None:
        path = bundled_model_path()
    filename = os.fspath(path)
    with open_h5(filename) as handle:
        check_format(handle, filename, FORMAT, {FORMAT_VERSION})
        name = read_attr(handle, "name", filename, "str", required=False, default="")
        input_shape = read_attr(handle, "input_shape", filename, "int_array")
        if input_shape.size == 0 or np.any(input_shape <= 0):
            raise fail(filename, "/ attribute 'input_shape'",
                       f"must be a non-empty list of positive sizes, got {input_shape.tolist()}")
        input_shape = tuple(int(s) for s in input_shape)
        nodes_group = require_group(handle, "/nodes", filename)
        count = read_attr(nodes_group, "count", filename, "int")
        if count < 1:
            raise fail(filename, "/nodes attribute 'count'", f"must be >= 1, got {count}")
        elements = int(np.prod(input_shape, dtype=object))
        if elements * 8 > max_array_bytes():
            raise SizeLimitError(f"{filename}: / attribute 'input_shape': {input_shape} is "
                                 f"{elements:,} values per sample, above the array size limit "
                                 "(XBARREF_MAX_ARRAY_BYTES)")
        members = list(nodes_group.keys())
        stray = sorted(k for k in members if not (k.isdigit() and str(int(k)) == k and int(k) < count))
        if stray:
            raise fail(filename, f"/nodes/{stray[0]}",
                       f"unexpected node group (count is {count}: /nodes/0 .. /nodes/{count - 1})")
        if count > len(members):  # checked before anything sized by count is made
            first = next(i for i in range(len(members) + 1) if str(i) not in nodes_group)
            raise fail(filename, f"/nodes/{first}",
                       f"missing (count is {count}, the file has {len(members)} node groups)")
        for section in ("parameters", "buffers"):
            require_group(handle, f"/{section}", filename)
        known = {INPUT_NAME}
        nodes = []
        for i in range(count):
            group = require_group(handle, f"/nodes/{i}", filename)
            node_name = read_attr(group, "name", filename, "str")
            problem = _node_name_problem(node_name)
            if problem:
                raise fail(filename, f"{group.name} attribute 'name'", problem)
            if node_name in known:
                raise fail(filename, f"{group.name} attribute 'name'",
                           f"duplicate node name {node_name!r}")
            kind = read_attr(group, "kind", filename, "str")
            if kind not in LAYER_KINDS:
                raise fail(filename, f"{group.name} attribute 'kind'",
                           f"unknown layer kind {kind!r} (known: {', '.join(sorted(LAYER_KINDS))})")
            inputs = read_attr(group, "inputs", filename, "str_array")
            missing = [s for s in inputs if s not in known]
            if not inputs or missing:
                raise fail(filename, f"{group.name} attribute 'inputs'",
                           f"must name 'input' or earlier nodes, got {inputs}")
            config = _read_config(group, filename)
            try:
                layer = Layer.from_config(kind, config)
            except (XbarrefError, TypeError, ValueError, KeyError, OverflowError) as exc:
                raise fail(filename, f"{group.name} attribute 'config'",
                           f"bad {kind} hyper-parameters {config}: {exc}") from None
            except MemoryError:
                raise SizeLimitError(f"{filename}: {group.name} attribute 'config': {kind} "
                                     f"hyper-parameters {config} declare arrays larger than "
                                     "this machine can hold") from None
            declared = sum(a.size * 8 for a in (*layer.params.values(), *layer.buffers.values()))
            if declared > max_array_bytes():
                raise SizeLimitError(f"{filename}: {group.name} attribute 'config': {kind} "
                                     f"hyper-parameters {config} declare {declared / 2**30:.3g} GiB "
                                     "of arrays, above the limit (XBARREF_MAX_ARRAY_BYTES)")
            if len(inputs) != layer.n_inputs:
                raise fail(filename, f"{group.name} attribute 'inputs'",
                           f"a {kind!r} layer takes {layer.n_inputs} input(s), got {inputs}")
            _read_arrays(handle, filename, "parameters", node_name, layer.params)
            _read_arrays(handle, filename, "buffers", node_name, layer.buffers)
            nodes.append(Node(node_name, layer, list(inputs)))
            known.add(node_name)
        for section in ("parameters", "buffers"):
            stray = sorted(set(handle[section].keys()) - known)
            if stray:
                raise fail(filename, f"/{section}/{stray[0]}", "arrays of an unknown node")
        classes = None
        if "classes" in handle:
            classes = read_strings(handle, "/classes", filename)
        normalization = None
        if "normalization" in handle:
            require_group(handle, "/normalization", filename)
            normalization = {}
            for key in ("mean", "std"):
                arr = read_array(handle, f"/normalization/{key}", filename, kind="f",
                                 finite=True, dtype=np.float64)
                if arr.shape not in ((), (input_shape[0],)):
                    raise fail(filename, f"/normalization/{key}",
                               f"expected shape () or ({input_shape[0]},) (one value per "
                               f"input channel), got {arr.shape}")
                normalization[key] = arr
            if np.any(normalization["std"] <= 0):
                raise fail(filename, "/normalization/std", "must be > 0")
    try:
        model = Model(nodes, input_shape, classes=classes, normalization=normalization,
                      name=name)
    except (XbarrefError, TypeError, ValueError) as exc:
        raise fail(filename, "/nodes", f"does not describe a valid model: {exc}") from None
    _check_shapes(model, filename)
    try:
        model.source_path = filename
    except AttributeError:
        pass
    return model
