"""TensorFlow Serving's JSON mapping of tensors (REST ``:predict`` requests and answers).

Implements the rules of TF Serving's ``api_rest.md`` ("Predict API", "JSON mapping",
"Encoding binary values") as ``util/json_tensor.cc`` applies them:

- a request holds ``signature_name`` (optional, default ``serving_default``) and either
  ``instances`` (row format: a non-empty list, one item per batch element, an object per
  item when the signature has several inputs) or ``inputs`` (columnar: the value of the
  single input, or an object of all named inputs, each with its own shape);
- a row request is answered with ``predictions`` (a list over the batch; objects when
  the signature has several outputs), a columnar one with ``outputs`` (the value, or an
  object of named outputs); a single output is answered without its name;
- ``DT_STRING`` values are JSON strings, binary ones ``{"b64": "<base64>"}``; outputs whose
  name ends in ``_bytes`` are written that way; ``NaN``/``Infinity`` are accepted and written.

Values are checked against the signature's dtypes (an integer input takes JSON integers
only, never ``true`` or ``1.5``) and nesting (a ragged list is an error).

Before any array is built, a request is held to two limits so that no request can make
the server fail (500) or work for long on something it will refuse: JSON nested deeper
than :data:`MAX_JSON_DEPTH` is refused (Python's parser would raise ``RecursionError``
near 1,000 levels), and :func:`check_batch_sizes` compares the number of ``instances``
rows, or the batch dimension of each ``inputs`` tensor, with ``--max_batch_size`` (a
12.8 MB body of 20,000 latent rows is refused in well under a second instead of being
converted to a tensor first).
"""
from __future__ import annotations

import base64
import binascii
import json
import math

import numpy as np

from keras_mammo.serving.errors import invalid

ROW, COLUMNAR = "row", "columnar"

#: Deepest JSON nesting a request may have (the request object counts as level 1; a batch
#: of images ``{"instances": [[[[0.0]]]]}`` is 5 levels).
MAX_JSON_DEPTH = 32


def _short(val, limit: int = 80) -> str:
    text = json.dumps(val)
    return text if len(text) <= limit else text[:limit] + "…"


def _is_b64(val) -> bool:
    return isinstance(val, dict) and len(val) == 1 and isinstance(val.get("b64"), str)


def _dense_shape(val) -> list[int]:
    shape = []
    while isinstance(val, list):
        shape.append(len(val))
        if not val:
            break
        val = val[0]
    return shape


def _leaf(val, dtype):
    """One JSON value → a Python value of ``dtype`` (a ``tf.DType``)."""
    if dtype.name == "string":
        if isinstance(val, str):
            return val.encode("utf-8")
        if _is_b64(val):
            try:
                return base64.b64decode(val["b64"], validate=True)
            except (binascii.Error, ValueError):
                raise invalid("Unable to base64 decode") from None
    elif dtype.is_bool:
        if isinstance(val, bool):
            return val
    elif dtype.is_integer:
        if isinstance(val, int) and not isinstance(val, bool):
            if dtype.min <= val <= dtype.max:
                return val
            raise invalid(f"JSON Value: {val} is out of range for {dtype.name} [{dtype.min}, {dtype.max}]")
    elif dtype.is_floating:
        if isinstance(val, (int, float)) and not isinstance(val, bool):
            if math.isfinite(val) and abs(val) > dtype.max:
                raise invalid(f"Cannot convert JSON value: {val} to {dtype.name} without loss of precision.")
            return val
    else:
        raise invalid(f"Conversion of JSON Value: {_short(val)} to type: {dtype.name} is not supported")
    kind = {dict: "Object", list: "Array", str: "String", bool: "Boolean", type(None): "Null"}.get(type(val), "Number")
    raise invalid(f"JSON Value: {_short(val)} Type: {kind} is not of expected type: {dtype.name}")


def json_to_array(val, dtype) -> np.ndarray:
    """A JSON value (scalar, nested list, ``{"b64": …}``) → array of ``dtype``.

    Raises:
        ServingError: ``INVALID_ARGUMENT`` for a wrong type, a value out of range, or a
            list whose nesting or lengths are not those of a dense tensor.
    """
    shape = _dense_shape(val)
    flat = []

    def walk(v, level):
        if not isinstance(v, list):
            if level != len(shape):
                raise invalid(f"JSON Value: {_short(v)} found at incorrect level: {level + 1} in the JSON DOM. "
                              f"Expected at level: {len(shape)}")
            flat.append(_leaf(v, dtype))
            return
        if level >= len(shape):
            raise invalid(f"Encountered list at unexpected level: {level} expected < {len(shape)}")
        if len(v) != shape[level]:
            raise invalid(f"Encountered list at unexpected size: {len(v)} at level: {level} "
                          f"expected size: {shape[level]}")
        for item in v:
            walk(item, level + 1)

    walk(val, 0)
    np_dtype = object if dtype.name == "string" else dtype.as_numpy_dtype
    arr = np.empty(len(flat), dtype=np_dtype)
    arr[:] = flat
    return arr.reshape(shape)


def parse_request(body: bytes) -> dict:
    """Parse a ``:predict`` body into a dict; checks it is an object with a string ``signature_name``.

    Raises:
        ServingError: ``INVALID_ARGUMENT`` (``"JSON Parse error: …"`` and the like).
    """
    if not body or not body.strip():
        raise invalid("JSON Parse error: The document is empty")
    try:
        doc = json.loads(body)
    except RecursionError:
        raise invalid(f"JSON Parse error: nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid(f"JSON Parse error: {exc}") from None
    if not isinstance(doc, dict):
        raise invalid(f"JSON Value: {_short(doc)} Is not object")
    if "signature_name" in doc and not isinstance(doc["signature_name"], str):
        raise invalid(f"JSON Value: {_short(doc)} not formatted correctly. 'signature_name' key must be a string value.")
    return doc


def check_depth(doc, limit: int = MAX_JSON_DEPTH) -> None:
    """Refuse a parsed JSON value nested deeper than ``limit`` (without recursion).

    Raises:
        ServingError: ``INVALID_ARGUMENT``.
    """
    stack = [(doc, 1)]
    while stack:
        val, depth = stack.pop()
        if depth > limit:
            raise invalid(f"JSON Parse error: nested deeper than {limit} levels")
        items = val.values() if isinstance(val, dict) else val
        kinds = set(map(type, items))   # one C-level pass over a row of numbers
        if list in kinds or dict in kinds:
            stack.extend((x, depth + 1) for x in items if isinstance(x, (list, dict)))


def check_batch_sizes(doc: dict, batched: set[str], limit: int) -> None:
    """Refuse a request whose batch exceeds ``limit``, before any of it is converted.

    Args:
        doc: from :func:`parse_request`.
        batched: the signature's inputs whose first dimension is the batch (unknown size).
        limit: ``--max_batch_size``.

    Raises:
        ServingError: ``INVALID_ARGUMENT`` naming the count and the limit.
    """
    rows = doc.get("instances")
    if isinstance(rows, list) and len(rows) > limit:
        raise invalid(f"'instances': batch of {len(rows)} exceeds the server's limit of {limit} (--max_batch_size)")
    val = doc.get("inputs")
    named = val if isinstance(val, dict) and not _is_b64(val) else ({next(iter(batched)): val} if len(batched) == 1
                                                                     else {})
    for key in sorted(batched):
        v = named.get(key)
        if isinstance(v, list) and len(v) > limit:
            raise invalid(f"input {key!r}: batch of {len(v)} exceeds the server's limit of {limit} "
                          f"(--max_batch_size)")


def request_inputs(doc: dict, input_dtypes: dict) -> tuple[dict[str, np.ndarray], str]:
    """The input tensors of a parsed request.

    Args:
        doc: from :func:`parse_request`.
        input_dtypes: ``{input name: tf.DType}`` of the signature.

    Returns:
        ``({name: array}, ROW or COLUMNAR)``.

    Raises:
        ServingError: ``INVALID_ARGUMENT`` as TF Serving words it, or JSON nested deeper
            than :data:`MAX_JSON_DEPTH`.
    """
    check_depth(doc)   # after check_batch_sizes: an over-long batch is refused without walking it
    if not input_dtypes:
        raise invalid(f"Failed to get input map for signature: {doc.get('signature_name') or 'DEFAULT'}")
    names = sorted(input_dtypes)
    has_rows, has_cols = "instances" in doc, "inputs" in doc
    if has_rows and has_cols:
        raise invalid("Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist")
    if has_rows:
        rows = doc["instances"]
        if not isinstance(rows, list):
            raise invalid("Excepting 'instances' to be an list/array")
        if not rows:
            raise invalid("No values in 'instances' array")
        objects = isinstance(rows[0], dict) and not _is_b64(rows[0])
        if not objects and len(names) > 1:
            raise invalid("instances is a plain list, but expecting list of objects as multiple input tensors "
                          f"required as per tensorinfo_map ({', '.join(names)})")
        parts: dict[str, list] = {k: [] for k in names}
        for i, row in enumerate(rows):
            is_obj = isinstance(row, dict) and not _is_b64(row)
            if objects != is_obj:
                raise invalid(f"Expecting {'object' if objects else 'value/list'} but got "
                              f"{'object' if is_obj else 'list'} at item {i} of input list")
            items = row if objects else {names[0]: row}
            if set(items) != set(names):
                raise invalid(f"Failed to process element: {i} of 'instances' list. JSON object keys must be "
                              f"equal to: {','.join(names)}")
            for k in names:
                try:
                    arr = json_to_array(items[k], input_dtypes[k])
                except Exception as exc:
                    raise invalid(f"Failed to process element: {i} key: {k} of 'instances' list. Error: {exc}") from None
                if parts[k] and parts[k][0].shape != arr.shape:
                    raise invalid(f"Failed to process element: {i} key: {k} of 'instances' list. Error: Expecting "
                                  f"shape {list(parts[k][0].shape)} but got: {list(arr.shape)}")
                parts[k].append(arr)
        return {k: np.stack(v) for k, v in parts.items()}, ROW
    if has_cols:
        val = doc["inputs"]
        if not isinstance(val, dict) or _is_b64(val):
            if len(names) > 1:
                raise invalid("inputs is a plain value/list, but expecting an object as multiple input tensors "
                              f"required as per tensorinfo_map ({', '.join(names)})")
            return {names[0]: json_to_array(val, input_dtypes[names[0]])}, COLUMNAR
        out = {}
        for k in names:
            if k not in val:
                raise invalid(f"Missing named input: {k} in 'inputs' object.")
            out[k] = json_to_array(val[k], input_dtypes[k])
        return out, COLUMNAR
    raise invalid("Missing 'inputs' or 'instances' key")


def _jsonable(name: str, arr: np.ndarray):
    arr = np.asarray(arr)
    if arr.dtype.kind in "SO":
        if name.endswith("_bytes"):
            conv = [{"b64": base64.b64encode(bytes(b)).decode("ascii")} for b in arr.reshape(-1)]
        else:
            conv = [b.decode("utf-8", errors="replace") if isinstance(b, bytes) else str(b) for b in arr.reshape(-1)]
        if arr.ndim == 0:
            return conv[0]
        obj = np.empty(len(conv), dtype=object)
        obj[:] = conv
        return obj.reshape(arr.shape).tolist()
    return arr.tolist()


def response_json(outputs: dict[str, np.ndarray], fmt: str) -> dict:
    """TF Serving's answer to a predict request: ``{"predictions": …}`` or ``{"outputs": …}``.

    Raises:
        ServingError: ``INVALID_ARGUMENT`` for a row-format answer whose outputs are
            scalars or disagree in batch size.
    """
    if not outputs:
        raise invalid("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if fmt == COLUMNAR:
        if len(names) == 1:
            return {"outputs": _jsonable(names[0], outputs[names[0]])}
        return {"outputs": {k: _jsonable(k, outputs[k]) for k in names}}
    batch = None
    for k in names:
        a = np.asarray(outputs[k])
        if a.ndim == 0:
            raise invalid(f"Tensor name: {k} has no shape information ")
        if batch is not None and a.shape[0] != batch:
            raise invalid(f"Tensor name: {k} has inconsistent batch size: {a.shape[0]} expecting: {batch}")
        batch = a.shape[0]
    if len(names) == 1:
        return {"predictions": _jsonable(names[0], outputs[names[0]])}
    cols = {k: _jsonable(k, outputs[k]) for k in names}
    return {"predictions": [{k: cols[k][i] for k in names} for i in range(batch)]}
