"""What a checkpoint's name says: epoch, step, metrics and role.

Trainers put what they know in the name. The DS01 guide's ``checkpoint-030.pt``
numbers epochs; Lightning writes ``epoch=3-step=400-val_loss=0.41.ckpt``; Keras
users write ``model-{epoch:02d}-{val_loss:.2f}.h5``, which leaves ``model-03-0.41.h5``
with no names at all: a *template* names those numbers again. Role files
(``best-model.pt``, ``model_best.pth``, ``last.ckpt``) say what they are by name,
not by number, and must never be taken for "the newest" because they were written
last.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

BEST, LATEST = "best", "latest"

#: Templates tried on every name, after Lightning's key=value and the DS01 guide's numbers. Keras'
#: documentation names checkpoints ``weights.{epoch:02d}-{val_loss:.2f}.hdf5``; a folder's manifest
#: (``"name_templates"`` in .ds01-checkpoints.json, see :func:`ds01_jupyter.checkpoints.name_template`)
#: adds the project's own.
DEFAULT_TEMPLATES = ("{epoch:02d}-{val_loss:.2f}",)

#: An epoch or step beyond this is a typo or a timestamp, not a count: reported on the entry, not used.
MAX_COUNT = 10**9

_NUMBER = r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?"
_KEY_VALUE = re.compile(rf"(?:^|[-_ ])([A-Za-z][\w/]*?)=({_NUMBER})(?=$|[-_ ])")
_EPOCH = re.compile(r"(?:^|[^a-z])(?:epoch|ep)[_-]?(\d+)", re.I)
_STEP = re.compile(r"(?:^|[^a-z])(?:step|iter|it|global_step)[_-]?(\d+)", re.I)
_BARE = re.compile(r"(?:^|[-_.])(\d+)$")
_LATEST_NAME = re.compile(r"(?:^|[-_.])(?:last|latest)(?:[-_.]v?\d+)?$|^(?:last|latest)(?:[-_.]|$)", re.I)
_VERSION_SUFFIX = re.compile(r"-v\d+$")  # Lightning's last-v1.ckpt when last.ckpt exists


@dataclass
class NameInfo:
    epoch: int | float | None = None
    step: int | None = None
    metrics: dict = field(default_factory=dict)
    role: str | None = None
    problem: str = ""


def stem_of(name: str, folder: bool) -> str:
    """The name without its extension (``model.safetensors`` -> ``model``; a folder keeps dots)."""
    if folder:
        return name
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    return stem[: -len(".weights")] if stem.lower().endswith(".weights") else stem  # Keras' x.weights.h5


def role_of(stem: str) -> str | None:
    """``best`` for best-model.pt, model_best.pth, best.ckpt; ``latest`` for last.ckpt, latest.pt."""
    low = stem.lower()
    if "best" in low:
        return BEST
    if _LATEST_NAME.search(low):
        return LATEST
    return None


def _count(text: str, what: str, info: NameInfo) -> int | None:
    if len(text) > 12 or int(text) > MAX_COUNT:
        info.problem = f"the {what} {text[:20]}{'…' if len(text) > 20 else ''} in the name is out of range: ignored"
        return None
    return int(text)


def _metric(text: str) -> float | None:
    if len(text) > 40:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value and abs(value) != float("inf") else None


def compile_template(template: str) -> tuple[re.Pattern, list[tuple[str, bool]]] | None:
    """A regular expression for a name template (``{epoch:02d}-{val_loss:.2f}``), matched at the name's end;
    None when the template names no field."""
    parts, fields = [], []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError:
        return None
    for literal, name, spec, _ in parsed:
        parts.append(re.escape(literal))
        if name is None:
            continue
        if not re.fullmatch(r"[A-Za-z_][\w/]*", name):
            return None
        integer = (spec or "").endswith("d") or name in ("epoch", "step")
        decimal = (spec or "")[-1:] in ("f", "e", "g", "%")
        parts.append(r"(\d+)" if integer else (r"([-+]?\d+\.\d+(?:[eE][-+]?\d+)?)" if decimal else f"({_NUMBER})"))
        fields.append((name, integer))
    if not fields:
        return None
    return re.compile(r"(?:^|(?<=[-_.=]))" + "".join(parts) + "$"), fields


def parse_name(name: str, folder: bool = False, templates: tuple[str, ...] = DEFAULT_TEMPLATES) -> NameInfo:
    """Epoch, step, metrics and role from a checkpoint's file or folder name."""
    info = NameInfo()
    stem = stem_of(name, folder)
    info.role = role_of(_VERSION_SUFFIX.sub("", stem))
    pairs = _KEY_VALUE.findall(stem)
    if pairs:  # Lightning: epoch=3-step=400-val_loss=0.41
        for key, value in pairs:
            if key.lower() in ("epoch", "step", "global_step"):
                if re.fullmatch(r"\d+", value):
                    count = _count(value, "epoch" if key.lower() == "epoch" else "step", info)
                    setattr(info, "epoch" if key.lower() == "epoch" else "step", count)
            else:
                metric = _metric(value)
                if metric is not None:
                    info.metrics[key] = metric
        if info.epoch is not None or info.step is not None or info.metrics:
            return info
    for template in templates:
        compiled = compile_template(template)
        match = compiled[0].search(stem) if compiled else None
        if compiled and match:
            for (key, _integer), value in zip(compiled[1], match.groups()):
                if key in ("epoch", "step"):
                    setattr(info, key, _count(value, key, info))
                else:
                    metric = _metric(value)
                    if metric is not None:
                        info.metrics[key] = metric
            return info
    epoch, step = _EPOCH.search(stem), _STEP.search(stem)
    if epoch:
        info.epoch = _count(epoch.group(1), "epoch", info)
    if step:
        info.step = _count(step.group(1), "step", info)
    if epoch or step or info.role:
        return info
    bare = _BARE.search(stem)
    if bare:
        # The DS01 guide's checkpoint-030.pt counts epochs; a Hugging Face checkpoint-500/ folder counts steps.
        if folder:
            info.step = _count(bare.group(1), "step", info)
        else:
            info.epoch = _count(bare.group(1), "epoch", info)
    return info
