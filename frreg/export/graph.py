"""One member as an ONNX graph: build it from stored layers, export it, check it, run it.

The graph is the fork's tiny-AI contract (:mod:`frreg.schema`, "Export"):
two float32 inputs ``features [batch, 6]`` and ``codec_onehot [batch, 14]``,
one output ``score [batch]``, opset 17, only operators on libvmaf's
allowlist, every weight inside the one ``.onnx`` file (so the registry's
sha256 covers the weights too). Scaling is not in the graph: the caller
standardises ``features`` with the sidecar's ``feature_mean``/``feature_std``.

``onnx``, ``onnxscript`` and ``onnxruntime`` come with the ``frreg[export]``
extra and are imported only here, inside functions.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, Final

import numpy as np

from frreg.errors import InputError
from frreg.schema import (
    CANONICAL_6,
    LIBVMAF_OP_ALLOWLIST,
    NUM_CODECS,
    ONNX_INPUT_NAMES,
    ONNX_OPSET,
    ONNX_OUTPUT_NAMES,
)
from frreg.training.network import MLPConfig

#: What ``pip`` installs for this module.
EXPORT_EXTRA: Final = "pip install 'frreg[export]'"
#: Rows per onnxruntime call when scoring a whole corpus.
_RUN_ROWS: Final = 65536
#: The batch size of the example inputs the exporter traces with (not 1: a
#: size-1 example lets the exporter specialise the batch axis away).
_EXAMPLE_BATCH: Final = 2


#: What exporting imports (torch's exporter needs onnxscript) and what checking a
#: shipped set imports (no exporter, no torch).
EXPORT_MODULES: Final = ("onnx", "onnxscript", "onnxruntime")
CHECK_MODULES: Final = ("onnx", "onnxruntime")


def require_export_extra(*, check: bool = False) -> None:
    """Raise a one-line :class:`InputError` unless :data:`EXPORT_MODULES` (``check``:
    :data:`CHECK_MODULES`) import."""
    missing = []
    for module in CHECK_MODULES if check else EXPORT_MODULES:
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise InputError(
            f"{'checking a set' if check else 'exporting'} needs {', '.join(missing)}, "
            f"which the export extra provides: {EXPORT_EXTRA}"
        )


def member_module(layers: Sequence[np.ndarray], config: MLPConfig) -> Any:
    """The eval-mode ``nn.Module`` ``(features, codec_onehot) -> score`` of one member:
    ``FrRegressorMLP(config)`` holding ``layers``.

    ``layers`` are the stored ``(fan_in + 1, fan_out)`` matrices (bias last),
    as :class:`~frreg.training.settings.Fit` holds them; their shapes must be
    ``config.layer_shapes``.
    """
    import torch
    from torch import nn

    from frreg.training.model import FrRegressorMLP

    found = [tuple(np.shape(layer)) for layer in layers]
    if found != list(config.layer_shapes):
        raise ValueError(
            f"stored layers {found} do not fit {config}: expected {list(config.layer_shapes)}"
        )

    class Member(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mlp = FrRegressorMLP(config)

        def forward(self, features: torch.Tensor, codec_onehot: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.mlp(torch.cat([features, codec_onehot], dim=1))
            return out

    module = Member()
    with torch.no_grad():
        for linear, layer in zip(module.mlp.linears(), layers, strict=True):
            matrix = torch.from_numpy(np.ascontiguousarray(layer, dtype=np.float32))
            linear.weight.copy_(matrix[:-1].T)
            linear.bias.copy_(matrix[-1])
    return module.eval()


def torch_scores(module: Any, features: np.ndarray, codec: np.ndarray) -> np.ndarray:
    """The module's float32 scores for scaled ``features`` and ``codec`` rows."""
    import torch

    with torch.inference_mode():
        out = module(torch.from_numpy(_f32(features)), torch.from_numpy(_f32(codec)))
    result: np.ndarray = out.numpy()
    return result


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's notices (torchvision absent, version-converter fallback)."""
    names = ("torch.onnx", "torch.export", "onnxscript", "onnx_ir", "torch._dynamo")
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


#: The first member of each network shape exported in this process, as ONNX bytes: the
#: graph torch's exporter makes depends on the shape only, the weights are its
#: initializers named by the module's ``state_dict`` keys, so the next member of that
#: shape is this graph with its own tensors (:func:`_with_weights`) instead of another
#: ~1 s run of the exporter. tests/test_export.py holds the result to a direct export,
#: byte for byte; every member is also checked against the contract and scored by
#: onnxruntime against torch before anything is written (``frreg.export.ship``).
_TEMPLATES: dict[MLPConfig, bytes] = {}
_TEMPLATES_LOCK = threading.Lock()


def export_member(module: Any) -> bytes:
    """The member (a :func:`member_module`) as ONNX bytes, weights embedded, batch axis
    dynamic: what torch's exporter (``dynamo=True``, which needs onnxscript) makes of it,
    run once per network shape and process (:data:`_TEMPLATES`)."""
    config = module.mlp.config
    with _TEMPLATES_LOCK:
        template = _TEMPLATES.get(config)
    if template is not None:
        data = _with_weights(template, module)
        if data is not None:
            return data
    data = export_member_with_torch(module)
    with _TEMPLATES_LOCK:
        _TEMPLATES.setdefault(config, data)
    return data


def _with_weights(template: bytes, module: Any) -> bytes | None:
    """``template`` with each initializer named by a ``state_dict`` key replaced by the
    module's tensor of that name; ``None`` when they do not pair up one to one with the
    same shapes (then the caller runs the exporter)."""
    import onnx
    from onnx import numpy_helper

    state = {name: t.detach().cpu().numpy() for name, t in module.state_dict().items()}
    model = onnx.load_from_string(template)
    replaced: set[str] = set()
    for init in model.graph.initializer:
        value = state.get(init.name)
        if value is None:
            continue
        if (
            init.data_type != onnx.TensorProto.FLOAT
            or list(init.dims) != list(value.shape)
            or init.name in replaced
        ):
            return None
        init.CopyFrom(numpy_helper.from_array(_f32(value), init.name))
        replaced.add(init.name)
    if replaced != set(state):
        return None
    data: bytes = model.SerializeToString()
    return data


def export_member_with_torch(module: Any) -> bytes:
    """:func:`export_member` without the per-shape template: torch's exporter, every time."""
    import torch

    batch = torch.export.Dim("batch")
    config = module.mlp.config  # the inputs' widths are the network's own
    example = (
        torch.zeros(_EXAMPLE_BATCH, config.n_features),
        torch.zeros(_EXAMPLE_BATCH, config.num_codecs),
    )
    with _quiet_exporter():
        program = torch.onnx.export(
            module,
            example,
            None,
            input_names=list(ONNX_INPUT_NAMES),
            output_names=list(ONNX_OUTPUT_NAMES),
            dynamic_shapes={name: {0: batch} for name in ONNX_INPUT_NAMES},
            opset_version=ONNX_OPSET,
            dynamo=True,
            optimize=True,
            verbose=False,
        )
    if program is None:  # pragma: no cover - the dynamo exporter always returns one
        raise RuntimeError("torch.onnx.export returned no program")
    data: bytes = program.model_proto.SerializeToString()
    return data


# --------------------------------------------------------------------------
# The contract, checked on the bytes
# --------------------------------------------------------------------------


def graph_ops(model: Any) -> list[str]:
    """Every operator of ``model``'s graph, subgraphs (If/Loop bodies) included, in order."""
    import onnx

    ops: list[str] = []

    def walk(graph: Any) -> None:
        for node in graph.node:
            ops.append(node.op_type if not node.domain else f"{node.domain}.{node.op_type}")
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g)
                for sub in attr.graphs:
                    walk(sub)

    walk(model.graph)
    return ops


def _io(value: Any) -> tuple[str, int, list[str | int]]:
    t = value.type.tensor_type
    dims: list[str | int] = [d.dim_param or d.dim_value for d in t.shape.dim]
    return value.name, t.elem_type, dims


def contract_problems(data: bytes) -> list[str]:
    """Everything about ``data`` that breaks the member contract (empty: it holds).

    onnx's full checker, opset, operator allowlist, input/output names, dtypes
    and shapes with one symbolic batch axis, and no external data files.
    """
    import onnx

    try:
        model = onnx.load_from_string(data)
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # onnx raises several unrelated types
        return [f"onnx checker: {type(exc).__name__}: {exc}".splitlines()[0]]
    problems = []
    opsets = {(o.domain or ""): o.version for o in model.opset_import}
    if opsets != {"": ONNX_OPSET}:
        problems.append(f"opset imports {opsets}, expected only the default domain at {ONNX_OPSET}")
    refused = sorted({op for op in graph_ops(model) if op not in LIBVMAF_OP_ALLOWLIST})
    if refused:
        problems.append(f"operators not on libvmaf's allowlist: {', '.join(refused)}")
    external = [
        t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:
        problems.append(f"weights stored outside the file: {', '.join(external)}")
    float32 = onnx.TensorProto.FLOAT
    inputs = [_io(v) for v in model.graph.input]
    outputs = [_io(v) for v in model.graph.output]
    batch = inputs[0][2][0] if inputs and inputs[0][2] else None
    if not isinstance(batch, str) or not batch:
        problems.append(f"the batch axis is not symbolic ({batch!r})")
    expected_in = [
        (ONNX_INPUT_NAMES[0], float32, [batch, len(CANONICAL_6)]),
        (ONNX_INPUT_NAMES[1], float32, [batch, NUM_CODECS]),
    ]
    expected_out = [(ONNX_OUTPUT_NAMES[0], float32, [batch])]
    if inputs != expected_in:
        problems.append(f"inputs {inputs}, expected {expected_in} (float32 is {float32})")
    if outputs != expected_out:
        problems.append(f"outputs {outputs}, expected {expected_out} (float32 is {float32})")
    return problems


def session(data: bytes) -> Any:
    """An onnxruntime CPU session over ``data`` (one thread: small graphs, reproducible)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def ort_scores(sess: Any, features: np.ndarray, codec: np.ndarray) -> np.ndarray:
    """onnxruntime's float32 scores for scaled ``features`` and ``codec`` rows, in chunks."""
    out = [
        sess.run(
            list(ONNX_OUTPUT_NAMES),
            {
                ONNX_INPUT_NAMES[0]: _f32(features[start : start + _RUN_ROWS]),
                ONNX_INPUT_NAMES[1]: _f32(codec[start : start + _RUN_ROWS]),
            },
        )[0]
        for start in range(0, len(features), _RUN_ROWS)
    ]
    return np.concatenate(out) if out else np.empty(0, dtype=np.float32)


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)
