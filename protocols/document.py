"""A protocol file as loaded: its header checked, its steps kept as located YAML to resolve.

Loading reads what does not depend on the cell or on submitted parameters: the format version,
the name, the parameters and their defaults. Everything else is checked by ``resolve``, which
runs for every check and every submission, so a file's errors are all found in one pass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cellrig.errors import Diagnostic, ProtocolError, SourceLocation

from .context import Context, describe
from .quantities import Kind, classify
from .suggest import did_you_mean
from .yamlsource import SourceText, YMap, YNode, YScalar, YSeq, load_yaml

FORMAT_VERSION = 1
TOP_KEYS = ("cellrig", "name", "description", "cell", "parameters", "limits", "record", "steps",
            "metadata")
MINIMAL_EXAMPLE = "cellrig: 1\nname: formation\nsteps:\n  - Charge at 0.1C until 4.25 V"
PARAMETER_EXAMPLE = "parameters:\n  upper: 4.25 V\n  cycles: {default: 1000, description: cycles}"
MAX_FILE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Parameter:
    """A protocol parameter: its default, the type the default implies, a description."""

    name: str
    default: YNode
    type_name: str
    description: str
    loc: SourceLocation


@dataclass(frozen=True, slots=True)
class Protocol:
    """A loaded protocol file, ready to be resolved for a cell."""

    source: SourceText
    root: YMap
    name: str
    description: str
    parameters: dict[str, Parameter]
    sha256: str

    def section(self, key: str) -> YNode | None:
        """A top-level section (``cell``, ``limits``, ``record``, ``steps``) or None."""
        return self.root.get(key)


def value_type(node: YNode) -> str:
    """The type of a parameter value in words: a quantity kind, number, text or list."""
    if isinstance(node, YSeq):
        return "list"
    if isinstance(node, YMap):
        return "mapping"
    value = node.value
    if isinstance(value, bool):
        return "yes/no"
    if isinstance(value, int):
        return "whole number"
    if isinstance(value, float):
        return "number"
    kind = classify(value)
    if kind is Kind.FRACTION:
        return Kind.CHARGE.value
    return "text" if kind is None else kind.value


def compatible(expected: str, given: str) -> bool:
    """Whether a value of type ``given`` may replace a parameter of type ``expected``."""
    return expected == given or (expected == "number" and given == "whole number")


def _parameters(ctx: Context, node: YNode | None) -> dict[str, Parameter]:
    if node is None:
        return {}
    mapping = ctx.mapping(node, "parameters", PARAMETER_EXAMPLE)
    if mapping is None:
        return {}
    found: dict[str, Parameter] = {}
    for key, value in mapping.entries:
        name = str(key.value)
        if not name.isidentifier():
            ctx.report(key, f"{name!r} is not a parameter name (letters, digits, _)",
                       example=PARAMETER_EXAMPLE)
            continue
        description = ""
        default: YNode | None = value
        if isinstance(value, YMap):
            ctx.check_keys(value, ("default", "description"), f"parameter {name!r}",
                           PARAMETER_EXAMPLE)
            default = value.get("default")
            text = value.get("description")
            description = (ctx.text(text, "description", "description: upper cut-off") or ""
                           ) if text is not None else ""
            if default is None:
                ctx.report(value, f"parameter {name!r} needs a default", example=PARAMETER_EXAMPLE)
                continue
        assert default is not None
        if isinstance(default, YScalar) and default.value is None:
            ctx.report(value, f"parameter {name!r} needs a default value",
                       example=PARAMETER_EXAMPLE)
            continue
        if isinstance(default, YScalar) and "${" in default.text:
            ctx.report(default, "a parameter's default cannot refer to another parameter")
            continue
        found[name] = Parameter(name, default, value_type(default), description, key.loc)
    return found


def read_root_mapping(ctx: Context, what: str, example: str, *, empty: str,
                      max_bytes: int = MAX_FILE_BYTES) -> YMap | None:
    """The top-level mapping of the located YAML file in ``ctx`` (a protocol file, a bench
    file, …), or None with the reason in ``ctx``'s diagnostics: larger than ``max_bytes``,
    not YAML, empty (``empty`` says so), or not a mapping."""
    source = ctx.source
    if len(source.text.encode("utf-8", "replace")) > max_bytes:
        ctx.report(source.loc(0, 0), f"the file is larger than {max_bytes} bytes")
        return None
    root = load_yaml(source, ctx.diagnostics)
    if root is None and not ctx.diagnostics:
        ctx.report(source.loc(0, 0), empty, example=example)
    if root is None or ctx.has_errors:
        return None
    if not isinstance(root, YMap):
        ctx.report(root, f"a {what} is a mapping, not {describe(root)}", example=example)
        return None
    return root


def load_protocol_text(text: str, filename: str = "<protocol>") -> Protocol:
    """Load a protocol from text; raises ProtocolError listing every header error."""
    source = SourceText(filename, text)
    ctx = Context(source)
    root = read_root_mapping(ctx, "protocol file", MINIMAL_EXAMPLE, empty="the file is empty")
    if root is None:
        raise ProtocolError(ctx.diagnostics)
    ctx.check_keys(root, TOP_KEYS, "the protocol", MINIMAL_EXAMPLE)
    version = root.get("cellrig")
    if version is None:
        ctx.report(root, "the file must start with the format version 'cellrig: 1'",
                   example=MINIMAL_EXAMPLE)
    elif not (isinstance(version, YScalar) and version.value == FORMAT_VERSION):
        ctx.report(version, f"unsupported format version {describe(version)}; this cellrig "
                   f"reads version {FORMAT_VERSION}", example="cellrig: 1")
    if root.get("steps") is None:
        ctx.report(root, "the protocol has no 'steps:'", example=MINIMAL_EXAMPLE)
    name_node = root.get("name")
    name = Path(filename).stem
    if name_node is not None:
        name = ctx.text(name_node, "name", "name: formation") or name
    description_node = root.get("description")
    description = ""
    if description_node is not None:
        description = ctx.text(description_node, "description", "description: text") or ""
    parameters = _parameters(ctx, root.get("parameters"))
    if ctx.has_errors:
        raise ProtocolError(ctx.diagnostics)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return Protocol(source, root, name, description, parameters, digest)


def load_protocol(path: str | Path) -> Protocol:
    """Load a protocol file; raises ProtocolError (also for an unreadable file)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        loc = SourceLocation(str(path), 1, 1)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ProtocolError([Diagnostic(loc, f"cannot read the protocol file: {reason}")]) from None
    return load_protocol_text(text, str(path))


def override_nodes(
    protocol: Protocol, overrides: Mapping[str, object], ctx: Context
) -> dict[str, YNode]:
    """The parameter scope: defaults replaced by checked submission overrides."""
    scope: dict[str, YNode] = {name: p.default for name, p in protocol.parameters.items()}
    for position, (name, raw) in enumerate(overrides.items(), start=1):
        loc = SourceLocation(f"parameter {name}", 1, 1)
        parameter = protocol.parameters.get(name)
        if parameter is None:
            hint = did_you_mean(name, list(protocol.parameters))
            known = ", ".join(protocol.parameters) or "it has none"
            ctx.report(SourceLocation("-p", 1, position),
                       f"the protocol has no parameter {name!r}{hint}",
                       expected=f"a parameter of the protocol ({known})")
            continue
        node = _override_node(raw, loc, ctx)
        if node is None:
            continue
        given = value_type(node)
        if not compatible(parameter.type_name, given):
            ctx.report(loc, f"parameter {name!r} is a {parameter.type_name} "
                       f"(default {_show(parameter.default)}), but {_show(node)} is a {given}",
                       example=f"-p {name}={_show(parameter.default)}")
            continue
        scope[name] = node
    return scope


def _override_node(raw: object, loc: SourceLocation, ctx: Context) -> YNode | None:
    if isinstance(raw, str):
        diagnostics: list[Diagnostic] = []
        node = load_yaml(SourceText(loc.file, raw), diagnostics)
        if diagnostics or node is None:
            ctx.report(loc, f"{raw!r} is not a usable value")
            return None
        return node
    if isinstance(raw, list | tuple):
        return YSeq(tuple(YScalar(item, str(item), loc) for item in raw), loc)
    if isinstance(raw, int | float | bool):
        return YScalar(raw, str(raw), loc)
    ctx.report(loc, f"{raw!r} is not a usable value")
    return None


def _show(node: YNode) -> str:
    if isinstance(node, YScalar):
        return node.text
    if isinstance(node, YSeq):
        return "[" + ", ".join(_show(item) for item in node.items) + "]"
    return "{...}"
