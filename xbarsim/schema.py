"""One schema: the YAML sections are generated from the engine's parameter dataclasses.

Every parameter is declared once, on the engine object that uses it, as a dataclass field whose
``metadata`` carries its schema (the keys of :func:`algorithms.base.param`):

* ``description``, ``unit`` — documentation (``xbarsim`` prints them in errors and docs);
* ``ge``/``gt``/``le``/``lt`` — bounds (for a list: bounds of every element), ``choices``,
  ``nullable`` (``None``/YAML ``null`` allowed), ``min_items`` (lists), ``scalar_ok`` (a scalar is
  read as a one-element list);
* ``yaml`` — the YAML key when it differs from the engine's name (``ADC.range_mode`` is
  ``crossbar.adc.range``), ``section`` — the YAML section when it is not the object's own
  (``CrossbarSpec.scheme`` lives in ``mapping:``, ``DAC.mode`` is ``crossbar.input_mode``),
  ``internal`` — set by the engine, not by YAML.

The field's type annotation gives the value type, validated strictly: a boolean is not a number,
``int`` fields take integers (an integral float such as ``1e3`` is read as 1000; ``12.7`` is
refused), ``float`` fields take finite numbers only (``.inf``/``.nan`` are refused), ``str`` and
``bool`` fields take exactly those. Cross-field rules stay in the engine's ``__post_init__`` and
run on the validated values (:func:`engine_error_key` maps the engine's message to the YAML key).

:func:`section_model` turns such a dataclass into a pydantic model (extra keys forbidden), so the
``crossbar:`` (``CrossbarSpec`` + ``DAC`` + ``ADC``), ``mapping:`` and ``algorithm:`` sections
*are* the engine's parameters: adding a field to ``ADC`` adds ``crossbar.adc.<field>`` to the
YAML, with its bound, unit and description. Device parameters (``device:``) are checked against
the device model's dataclass fields in the same strict way (:func:`check_device_section`), then
by the model's own range checks.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import types
import typing
from typing import Any, ClassVar, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from circuits import ADC, DAC, CrossbarSpec
from device_models import Device, DeviceParameterError, make_device

__all__ = [
    "Section",
    "EngineSection",
    "ValueChecker",
    "section_model",
    "algorithm_model",
    "describe_fields",
    "CrossbarSection",
    "MappingSection",
    "DACSection",
    "ADCSection",
    "build_device",
    "device_class",
    "check_device_section",
    "engine_error_key",
    "crossbar_objects",
]


class Section(BaseModel):
    """A YAML section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EngineSection(Section):
    """A section generated from an engine dataclass (``__engine__``); ``__keys__`` maps YAML key → field."""

    __engine__: ClassVar[type | None] = None
    __keys__: ClassVar[dict[str, str]] = {}

    def engine_kwargs(self) -> dict:
        """The section's values under the engine's field names (nested sections excluded)."""
        return {eng: getattr(self, key) for key, eng in self.__keys__.items()}


# ------------------------------------------------------------------------------------------------
# strict value checks from a type annotation + field metadata
_NUMBER = (int, float)


def _is_optional(tp) -> tuple[Any, bool]:
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) < len(get_args(tp)):
            return (args[0] if len(args) == 1 else Union[tuple(args)]), True  # noqa: UP007
    return tp, False


def _fmt_num(v) -> str:
    return repr(v) if not isinstance(v, float) else f"{v:g}"


class ValueChecker:
    """Validates one value against a type annotation and schema metadata, with a readable message.

    Raises ``ValueError("must be …")``; the caller prefixes ``<dotted key>: got <value>; ``.
    """

    def __init__(self, annotation, meta: dict | None = None):
        meta = dict(meta or {})
        tp, nullable = _is_optional(annotation)
        self.nullable = nullable or bool(meta.get("nullable"))
        self.tp = tp
        self.meta = meta
        self.choices = tuple(meta["choices"]) if meta.get("choices") is not None else None
        if get_origin(tp) is Literal:
            self.choices = tuple(get_args(tp))
            self.tp = type(self.choices[0]) if self.choices else Any
        self.list_of = None
        if get_origin(self.tp) in (list, tuple) or self.tp in (list, tuple):
            args = [a for a in get_args(self.tp) if a is not Ellipsis]
            self.list_of = ValueChecker(args[0] if args else Any, {k: meta[k] for k in ("ge", "gt", "le", "lt", "choices") if k in meta})
            self.container = tuple if (get_origin(self.tp) or self.tp) is tuple else list

    # -- description -------------------------------------------------------------------------
    def expected(self) -> str:
        if self.list_of is not None:
            n = self.meta.get("min_items")
            s = f"a list of {self.list_of.expected_plural()}" + (f" (at least {n})" if n else "")
        elif self.choices is not None:
            s = "one of " + ", ".join(map(repr, self.choices))
        else:
            s = self._kind() + self._bounds()
        unit = self.meta.get("unit")
        if unit and self.list_of is None and self.choices is None and self.tp in _NUMBER:
            s += f" [{unit}]"
        return s + (", or null" if self.nullable else "")

    def expected_plural(self) -> str:
        kind = {int: "integers", float: "finite numbers", bool: "booleans", str: "strings"}.get(self.tp, "values")
        if self.choices is not None:
            return "values from " + ", ".join(map(repr, self.choices))
        return kind + self._bounds()

    def _kind(self) -> str:
        return {int: "an integer", float: "a finite number", bool: "a boolean (true/false)", str: "a string"}.get(
            self.tp, "a value"
        )

    def _bounds(self) -> str:
        parts = []
        for k, sym in (("gt", ">"), ("ge", "≥"), ("lt", "<"), ("le", "≤")):
            if self.meta.get(k) is not None:
                parts.append(f"{sym} {_fmt_num(self.meta[k])}")
        return (" " + " and ".join(parts)) if parts else ""

    # -- check --------------------------------------------------------------------------------
    def __call__(self, v):
        if v is None:
            if self.nullable:
                return None
            raise ValueError(f"must be {self.expected()}")
        if self.list_of is not None:
            if self.meta.get("scalar_ok") and not isinstance(v, (list, tuple, dict)):
                v = [v]
            if not isinstance(v, (list, tuple)):
                raise ValueError(f"must be {self.expected()}")
            n = self.meta.get("min_items")
            if n and len(v) < n:
                raise ValueError(f"must be {self.expected()}")
            out = []
            for k, item in enumerate(v):
                try:
                    out.append(self.list_of(item))
                except ValueError as exc:
                    raise ValueError(f"item {k} ({item!r}) {exc}") from None
            return self.container(out)
        v = self._scalar(v)
        if self.choices is not None and not any(v == c and type(v) is type(c) for c in self.choices):
            raise ValueError(f"must be {self.expected()}")
        return v

    def _scalar(self, v):
        tp = self.tp
        fail = ValueError(f"must be {self.expected()}")
        if tp is bool:
            if not isinstance(v, bool):
                raise fail
            return v
        if tp is int:
            if isinstance(v, bool) or not isinstance(v, _NUMBER):
                raise fail
            if isinstance(v, float):
                if not (math.isfinite(v) and v == int(v)):
                    raise fail
                v = int(v)
        elif tp is float:
            if isinstance(v, bool) or not isinstance(v, _NUMBER):
                raise fail
            v = float(v)
            if not math.isfinite(v):
                raise fail
        elif tp is str:
            if not isinstance(v, str):
                raise fail
            return v
        elif tp in (dict,) or get_origin(tp) is dict:
            if not isinstance(v, dict):
                raise ValueError("must be a mapping of keys to values")
            return v
        else:
            return v
        m = self.meta
        if (
            (m.get("ge") is not None and not v >= m["ge"])
            or (m.get("gt") is not None and not v > m["gt"])
            or (m.get("le") is not None and not v <= m["le"])
            or (m.get("lt") is not None and not v < m["lt"])
        ):
            raise fail
        return v


def _hints(cls) -> dict:
    try:
        return typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - fall back to the raw annotations
        return {f.name: f.type for f in dataclasses.fields(cls)}


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return {"default": f.default}
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return {"default_factory": f.default_factory}
    return {}


def _pyd_field(name: str, annotation, f: dataclasses.Field) -> tuple:
    meta = dict(f.metadata)
    checker = ValueChecker(annotation, meta)
    desc = meta.get("description", "")
    if meta.get("unit"):
        desc = f"{desc} [{meta['unit']}]".strip()
    extra = {k: v for k, v in meta.items() if k in ("unit", "ge", "gt", "le", "lt", "choices", "nullable")}
    if isinstance(extra.get("choices"), tuple):
        extra["choices"] = list(extra["choices"])
    return (
        typing.Annotated[Any, BeforeValidator(checker)],
        Field(description=desc or None, validate_default=False, json_schema_extra={"expected": checker.expected(), **extra},
              **_default(f)),
    )


def yaml_fields(cls, section: str | None = None) -> list[tuple[str, str, dataclasses.Field, Any]]:
    """``[(yaml key, engine name, field, annotation)]`` of the dataclass fields of ``cls`` in YAML section
    ``section`` (``None``: the object's own section, i.e. fields without a ``section`` entry)."""
    hints = _hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init or f.name.startswith("_") or f.metadata.get("internal"):
            continue
        if f.metadata.get("section") != section:
            continue
        out.append((f.metadata.get("yaml", f.name), f.name, f, hints.get(f.name, Any)))
    return out


def section_model(cls, name: str, section: str | None = None, extra: dict | None = None, doc: str | None = None) -> type[EngineSection]:
    """A pydantic model of the YAML section made of ``cls``'s dataclass fields (see module docstring).

    ``extra`` adds further fields (``{name: (annotation, FieldInfo)}``, e.g. nested sections).
    """
    fields, keys = {}, {}
    for key, eng, f, ann in yaml_fields(cls, section):
        fields[key] = _pyd_field(key, ann, f)
        keys[key] = eng
    fields.update(extra or {})
    model = create_model(name, __base__=EngineSection, __doc__=doc or f"YAML section generated from {cls.__name__}.", **fields)
    model.__engine__ = cls
    model.__keys__ = keys
    model.__module__ = __name__
    qual, k = name, 1
    while globals().get(qual, model) is not model:  # a unique module attribute, so that instances pickle
        qual, k = f"{name}_{k}", k + 1
    model.__qualname__ = model.__name__ = qual
    globals()[qual] = model
    return model


def describe_fields(cls, section: str | None = None) -> list[dict]:
    """``[{key, default, unit, expected, description}]`` of a dataclass's YAML fields (for docs)."""
    rows = []
    for key, _eng, f, ann in yaml_fields(cls, section):
        d = _default(f)
        default = d["default"] if "default" in d else (d["default_factory"]() if "default_factory" in d else None)
        rows.append({"key": key, "default": default, "unit": f.metadata.get("unit", ""),
                     "expected": ValueChecker(ann, f.metadata).expected(), "description": f.metadata.get("description", "")})
    return rows


# ------------------------------------------------------------------------------------------------
# the crossbar: and mapping: sections, generated from the engine
DACSection = section_model(DAC, "DACSection", doc="crossbar.dac: the input DAC (circuits.DAC).")
ADCSection = section_model(ADC, "ADCSection", doc="crossbar.adc: the column ADC (circuits.ADC).")
MappingSection = section_model(CrossbarSpec, "MappingSection", section="mapping", doc="mapping: the weight coding (circuits.CrossbarSpec).")


def _lifted(cls, section: str) -> dict:
    """Fields of ``cls`` that live in another section (``DAC.mode`` → ``crossbar.input_mode``)."""
    return {key: _pyd_field(key, ann, f) for key, _eng, f, ann in yaml_fields(cls, section)}


CrossbarSection = section_model(
    CrossbarSpec,
    "CrossbarSection",
    extra={
        **_lifted(DAC, "crossbar"),
        **_lifted(ADC, "crossbar"),
        "dac": (DACSection, Field(default_factory=DACSection)),
        "adc": (ADCSection, Field(default_factory=ADCSection)),
    },
    doc="crossbar: array, wires, read pulse, solver (circuits.CrossbarSpec) and converters.",
)


def _lifted_kwargs(cls, xb: BaseModel) -> dict:
    return {eng: getattr(xb, key) for key, eng, _f, _a in yaml_fields(cls, "crossbar")}


def engine_error_key(msg: str, prefixes: dict[str, str]) -> str:
    """Rewrite an engine error ``"adc.range_mode: got …"`` to the YAML key ``"crossbar.adc.range: got …"``.

    ``prefixes`` maps the engine's prefix (``"adc."``) to the YAML prefix (``"crossbar.adc."``).
    Engine field names are renamed to their YAML keys (``range_mode`` → ``range``, ``mode`` →
    ``input_mode``).
    """
    renames = {}
    for cls, pre in ((ADC, "adc."), (DAC, "dac."), (CrossbarSpec, "crossbar.")):
        for f in dataclasses.fields(cls):
            if "yaml" in f.metadata:
                renames[pre + f.name] = pre + f.metadata["yaml"]
    renames["dac.input_mode"] = "crossbar.input_mode"
    for old, new in renames.items():
        if msg.startswith(old + ":") or msg.startswith(old + " "):
            msg = new + msg[len(old):]
            break
    if msg.startswith("dac.input_mode"):
        msg = "crossbar.input_mode" + msg[len("dac.input_mode"):]
    for old, new in sorted(prefixes.items(), key=lambda kv: -len(kv[0])):
        if msg.startswith(old):
            return new + msg[len(old):]
    return msg


def crossbar_objects(crossbar: BaseModel, mapping: BaseModel, prefix: str = "") -> tuple[CrossbarSpec, DAC, ADC]:
    """``(CrossbarSpec, DAC, ADC)`` from validated ``crossbar``/``mapping`` sections; engine errors
    (cross-field rules) are raised as ``ValueError`` naming the YAML key (with ``prefix``)."""
    prefixes = {"adc.": f"{prefix}crossbar.adc.", "dac.": f"{prefix}crossbar.dac.", "crossbar.": f"{prefix}crossbar.",
                "mapping.": f"{prefix}mapping."}
    try:
        spec = CrossbarSpec(**crossbar.engine_kwargs(), **mapping.engine_kwargs())
        dac = DAC(**crossbar.dac.engine_kwargs(), **_lifted_kwargs(DAC, crossbar))
        adc = ADC(**crossbar.adc.engine_kwargs(), **_lifted_kwargs(ADC, crossbar))
    except ValueError as exc:
        raise ValueError(engine_error_key(str(exc), prefixes)) from None
    return spec, dac, adc


# ------------------------------------------------------------------------------------------------
# algorithms: one section per registered algorithm, a union tagged by ``name``
def algorithm_model(cls) -> type[EngineSection]:
    """The ``algorithm:`` section of algorithm class ``cls``: ``name`` plus its ``Params`` fields."""
    extra = {"name": (Literal[cls.name], Field(cls.name, description="the algorithm (algorithms.registry)"))}
    model = section_model(cls.Params, f"Algorithm_{cls.name}", extra=extra, doc=(cls.__doc__ or "").split("\n")[0])
    return model


# ------------------------------------------------------------------------------------------------
# devices
_DEVICE_META_KEYS = ("label", "preset", "model")


def device_class(section: dict) -> tuple[type[Device], str]:
    """``(class, model name)`` of a ``device:`` section (``model:`` or ``preset:``)."""
    import device_models
    from device_models.presets_loader import preset_params

    if section.get("preset") is not None:
        model, _ = preset_params(section["preset"])
    else:
        model = section.get("model", "ideal")
    if not isinstance(model, str) or model not in device_models.DEVICE_MODELS:
        raise DeviceParameterError(f"model: got {model!r}; allowed: {', '.join(sorted(device_models.DEVICE_MODELS))}")
    return device_models.DEVICE_MODELS[model], model


def check_device_section(section: Any, key: str = "device") -> dict:
    """Strict types of a ``device:`` section (a copy with integral floats made ints); raises ``ValueError``
    naming ``<key>.<param>``. Ranges are then checked by the device model itself (:func:`build_device`)."""
    if not isinstance(section, dict):
        raise ValueError(f"{key}: got {section!r}; a device is a mapping such as {{model: rram, g_max: 1.0e-5}} or {{preset: pcm_ibm}}")
    out = copy.deepcopy(section)
    for meta_key in _DEVICE_META_KEYS:
        if meta_key in out and out[meta_key] is not None and not isinstance(out[meta_key], str):
            raise ValueError(f"{key}.{meta_key}: got {out[meta_key]!r}; must be a string")
    if "preset" in out and "model" in out and out["preset"] is not None:
        raise ValueError(f"{key}: give either model or preset, not both (got model {out['model']!r}, preset {out['preset']!r})")
    try:
        cls, model = device_class(out)
    except DeviceParameterError as exc:
        raise ValueError(f"{key}.{exc}") from None
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")}
    for name, value in list(out.items()):
        if name in _DEVICE_META_KEYS:
            continue
        if name not in fields:
            raise ValueError(f"{key}.{name}: unknown parameter for device model {model!r}; allowed: {', '.join(fields)}")
        try:
            out[name] = ValueChecker(hints.get(name, Any), fields[name].metadata)(value)
        except ValueError as exc:
            raise ValueError(f"{key}.{name}: got {value!r}; {exc}") from None
    return out


def build_device(section: dict, key: str = "device") -> Device:
    """A device from its config section: ``{model: rram, ...}`` or ``{preset: name, ...overrides}``.

    Errors (type or range) are ``ValueError`` naming ``<key>.<param>``."""
    import device_models

    params = check_device_section(section, key)
    params.pop("label", None)
    preset = params.pop("preset", None)
    try:
        if preset is not None:
            params.pop("model", None)
            return device_models.load_preset(preset, **params)
        return make_device(params.pop("model", "ideal"), **params)
    except (DeviceParameterError, ValueError, TypeError, KeyError) as exc:
        msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        raise ValueError(msg if msg.startswith(key) else f"{key}.{msg}") from None
    except OSError as exc:  # e.g. a lookup device's CSV file
        where = f"{key}.csv" if "csv" in params else key
        if isinstance(exc, FileNotFoundError):
            raise ValueError(f"{where}: {exc.filename} does not exist (relative paths are resolved against the YAML file)") from None
        raise ValueError(f"{where}: cannot read {exc.filename or ''} ({exc.strerror or exc})") from None
