"""Step kinds beyond plain sourcing: pulse trains (GITT), EIS, and chamber/jig setpoints."""

from __future__ import annotations

from .builder import Builder
from .program import Direction, EisMode, EisStep, Node, PulseStep, SetStep
from .quantities import Kind, format_duration, format_si
from .stepkinds import EXAMPLES, _common, _current_value
from .strings import current_display
from .yamlsource import YMap

EIS_KEYS = ("mode", "start", "stop", "per_decade", "amplitude", "dc")
WAIT_KEYS = ("within", "for", "timeout")
DEFAULT_TOLERANCE_K = 1.0
DEFAULT_TOLERANCE_PA = 0.1e6


def build_pulse(b: Builder, m: YMap, kind: str) -> Node | None:
    """``pulse``: a train of current pulses with rests between (GITT, pulse tests)."""
    spec = b.ctx.mapping(b.ctx.substitute(m.get(kind) or m), "pulse", EXAMPLES["pulse"])
    if spec is None:
        return None
    b.ctx.check_keys(spec, ("charge", "discharge", "duration", "rest", "count"), "pulse",
                     EXAMPLES["pulse"])
    verbs = [k for k in ("charge", "discharge") if k in spec]
    if len(verbs) != 1:
        b.ctx.report(spec, "pulse needs exactly one of 'charge: <current>' or "
                     "'discharge: <current>'", example=EXAMPLES["pulse"])
        return None
    direction = Direction.CHARGE if verbs[0] == "charge" else Direction.DISCHARGE
    common = _common(b, m, kind, direction)
    current_node = spec.get(verbs[0])
    assert current_node is not None
    pair = _current_value(b, current_node, f"pulse {verbs[0]} current")
    durations: dict[str, float | None] = {}
    for key in ("duration", "rest"):
        node = spec.get(key)
        if node is None:
            b.ctx.report(spec, f"pulse needs '{key}'", example=EXAMPLES["pulse"])
            durations[key] = None
            continue
        durations[key] = b.ctx.quantity(node, Kind.TIME, f"pulse {key}")
        value = durations[key]
        if value is not None and (value < 0 or (key == "duration" and value == 0)):
            b.ctx.report(node, f"pulse {key} must be positive", example=EXAMPLES["pulse"])
    count_node = spec.get("count")
    count = None if count_node is None else b.ctx.integer(count_node, "pulse count",
                                                          EXAMPLES["pulse"], minimum=1)
    if count_node is None and not common.until:
        if not common.broken:
            b.ctx.report(m, "this pulse train can never end: give it a count or 'until'",
                         example=EXAMPLES["pulse"])
        return None
    pulse_s, rest_s = durations["duration"], durations["rest"]
    if pair is None or pulse_s is None or rest_s is None:
        return None
    sign = 1.0 if direction is Direction.CHARGE else -1.0
    label = common.label or (
        f"{count or 'n'} x {verbs[0]} pulse at {current_display(pair[0])} "
        f"[{format_si(pair[1], 'A')}] for {format_duration(pulse_s)}, "
        f"rest {format_duration(rest_s)}"
    )
    return PulseStep(id=b.allocate_id(m), label=label, direction=direction, tag=common.tag,
                     until=tuple(common.until), record=common.record, current_a=sign * pair[1],
                     pulse_s=pulse_s, rest_s=rest_s, count=count)


def build_eis(b: Builder, m: YMap, kind: str) -> Node | None:
    """``eis``: an impedance sweep, potentiostatic or galvanostatic, at OCV or a DC level."""
    common = _common(b, m, kind, Direction.NONE)
    spec = b.ctx.mapping(b.ctx.substitute(m.get(kind) or m), "eis", EXAMPLES["eis"])
    if spec is None:
        return None
    b.ctx.check_keys(spec, EIS_KEYS, "eis", EXAMPLES["eis"])
    mode = EisMode.POTENTIOSTATIC
    mode_node = spec.get("mode")
    if mode_node is not None:
        text = b.ctx.text(mode_node, "mode", "mode: galvanostatic")
        try:
            mode = EisMode(text or "")
        except ValueError:
            b.ctx.report(mode_node, "mode must be 'potentiostatic' or 'galvanostatic'",
                         example="mode: galvanostatic")
    missing = [key for key in ("start", "stop", "amplitude") if key not in spec]
    if missing:
        b.ctx.report(spec, f"eis needs {', '.join(missing)}", example=EXAMPLES["eis"])
        return None
    start_node, stop_node, amp_node = spec.get("start"), spec.get("stop"), spec.get("amplitude")
    assert start_node is not None and stop_node is not None and amp_node is not None
    start = b.ctx.quantity(start_node, Kind.FREQUENCY, "eis start")
    stop = b.ctx.quantity(stop_node, Kind.FREQUENCY, "eis stop")
    per_decade_node = spec.get("per_decade")
    per_decade = 10 if per_decade_node is None else b.ctx.integer(
        per_decade_node, "per_decade", "per_decade: 10", minimum=1)
    amplitude: float | None
    if mode is EisMode.POTENTIOSTATIC:
        amplitude = b.ctx.quantity(amp_node, Kind.VOLTAGE, "eis amplitude")
    else:
        pair = _current_value(b, amp_node, "eis amplitude")
        amplitude = None if pair is None else pair[1]
    for value, node in ((start, start_node), (stop, stop_node), (amplitude, amp_node)):
        if value is not None and value <= 0:
            b.ctx.report(node, "must be positive", example=EXAMPLES["eis"])
    if per_decade is not None and per_decade > 1000:
        b.ctx.report(per_decade_node or spec, "per_decade is at most 1000")
    dc_voltage, dc_current = _dc_level(b, spec.get("dc"))
    if None in (start, stop, amplitude, per_decade):
        return None
    assert start is not None and stop is not None and amplitude is not None
    assert per_decade is not None
    unit = "V" if mode is EisMode.POTENTIOSTATIC else "A"
    label = common.label or (
        f"EIS {format_si(start, 'Hz')} to {format_si(stop, 'Hz')}, "
        f"{format_si(amplitude, unit)}, {per_decade}/decade"
        + (" at open circuit" if dc_voltage is None and dc_current is None else "")
    )
    return EisStep(id=b.allocate_id(m), label=label, tag=common.tag, until=tuple(common.until),
                   record=common.record, mode=mode, start_hz=start, stop_hz=stop,
                   points_per_decade=per_decade, amplitude=amplitude, dc_voltage_v=dc_voltage,
                   dc_current_a=dc_current)


def _dc_level(b: Builder, node: object) -> tuple[float | None, float | None]:
    from .quantities import classify
    from .yamlsource import YScalar

    if node is None:
        return None, None
    assert isinstance(node, YScalar | YMap) or hasattr(node, "loc")
    scalar = b.ctx.scalar(node, "dc", "dc: open_circuit")  # type: ignore[arg-type]
    if scalar is None:
        return None, None
    if scalar.value in ("open_circuit", "ocv", "OCV"):
        return None, None
    if classify(scalar.value) is Kind.VOLTAGE:
        return b.ctx.quantity(scalar, Kind.VOLTAGE, "dc"), None
    from .until import absolute_current

    written = b.ctx.current(scalar, "dc")
    if written is None:
        return None, None
    # signed: a positive DC current charges the cell, a negative one discharges it
    return None, absolute_current(b.ctx, written, b.scale, scalar)


def build_set(b: Builder, m: YMap, kind: str) -> Node | None:
    """``set``: chamber temperature and/or stack pressure, then ``wait`` until stable."""
    common = _common(b, m, kind, Direction.NONE, extra=("wait",))
    spec = b.ctx.mapping(b.ctx.substitute(m.get(kind) or m), "set", EXAMPLES["set"])
    if spec is None:
        return None
    b.ctx.check_keys(spec, ("temperature", "pressure"), "set", EXAMPLES["set"])
    if not spec.entries:
        b.ctx.report(spec, "set needs a temperature and/or a pressure", example=EXAMPLES["set"])
        return None
    temp_node, pressure_node = spec.get("temperature"), spec.get("pressure")
    temperature = None if temp_node is None else b.ctx.quantity(
        temp_node, Kind.TEMPERATURE, "set temperature")
    pressure = None if pressure_node is None else b.ctx.quantity(
        pressure_node, Kind.PRESSURE, "set pressure")
    if pressure is not None and pressure < 0:
        b.ctx.report(pressure_node or spec, "a stack pressure cannot be negative")
    wait_temp: float | None = None
    wait_pressure: float | None = None
    wait_for = 0.0
    wait_timeout: float | None = None
    wait_node = m.get("wait")
    if wait_node is not None:
        wait = b.ctx.mapping(b.ctx.substitute(wait_node), "wait", EXAMPLES["set"])
        if wait is not None:
            b.ctx.check_keys(wait, WAIT_KEYS, "wait", EXAMPLES["set"])
            within_node = wait.get("within")
            within = None if within_node is None else b.ctx.mapping(
                b.ctx.substitute(within_node), "within", EXAMPLES["set"])
            if within is not None:
                b.ctx.check_keys(within, ("temperature", "pressure"), "within", EXAMPLES["set"])
                t_node, p_node = within.get("temperature"), within.get("pressure")
                for node, what, given in ((t_node, "temperature", temperature),
                                          (p_node, "pressure", pressure)):
                    if node is not None and given is None and what not in spec:
                        b.ctx.report(node, f"wait within {what}: this step does not set a {what}",
                                     example=EXAMPLES["set"])
                if t_node is not None:
                    wait_temp = b.ctx.quantity(t_node, Kind.TEMPERATURE_DIFFERENCE,
                                               "within temperature")
                if p_node is not None:
                    wait_pressure = b.ctx.quantity(p_node, Kind.PRESSURE, "within pressure")
            if temperature is not None and wait_temp is None:
                wait_temp = DEFAULT_TOLERANCE_K
            if pressure is not None and wait_pressure is None:
                wait_pressure = DEFAULT_TOLERANCE_PA
            for_node, timeout_node = wait.get("for"), wait.get("timeout")
            if for_node is not None:
                wait_for = b.ctx.quantity(for_node, Kind.TIME, "wait for") or 0.0
            if timeout_node is not None:
                wait_timeout = b.ctx.quantity(timeout_node, Kind.TIME, "wait timeout")
    parts = []
    if temperature is not None:
        parts.append(f"temperature {temperature:g} degC")
    if pressure is not None:
        parts.append(f"pressure {format_si(pressure, 'Pa')}")
    waiting = ""
    if wait_node is not None:
        waiting = (f", wait until stable for {format_duration(wait_for)}" if wait_for
                   else ", wait until stable")
    label = common.label or ("Set " + " and ".join(parts) + waiting)
    return SetStep(id=b.allocate_id(m), label=label, tag=common.tag, until=tuple(common.until),
                   record=common.record, temperature_c=temperature, pressure_pa=pressure,
                   wait_temperature_k=wait_temp, wait_pressure_pa=wait_pressure,
                   wait_for_s=wait_for, wait_timeout_s=wait_timeout)
