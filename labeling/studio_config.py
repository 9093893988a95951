"""The labeling view a triager works in: Label Studio XML built from the model's classes and its input size.

What a person needs to answer fast and right: the input large enough to read, without
smoothing that blurs small inputs, a contrast-stretched copy beside it, brightness and
contrast controls, one key per class that matches the class, and in words why the sample is
there (``task_view.py`` writes that text into each task).
"""

from __future__ import annotations

import string
from xml.sax.saxutils import quoteattr

from shiftwatch.labeling.stretch import ImageSize

FROM_NAME, TO_NAME = "label", "image"
STRETCHED_NAME, WHY_NAME = "stretched", "why"
# Inputs whose longer side is at most this are "small": enlarged by a whole factor, no smoothing.
SMALL_SIDE = 160
# About how wide a small input is shown (CSS pixels), so a 32x32 digit reads at 8x.
SMALL_SHOWN_PX = 256
# Keys Label Studio itself uses in this view (u: unselect region, h: pan tool), never given to a class.
RESERVED_KEYS = frozenset("uh")
KEYS = string.digits + string.ascii_lowercase


def hotkeys(class_names: list[str]) -> list[str | None]:
    """One key per class, no two alike: a one-digit class gets its own digit; others their first free letter or
    digit of the name, then the first free key. None when the 36 keys run out."""
    taken: set[str] = set(RESERVED_KEYS)
    keys: list[str | None] = [None] * len(class_names)
    for i, name in enumerate(class_names):
        if len(name) == 1 and name in string.digits:
            keys[i] = name
            taken.add(name)
    for i, name in enumerate(class_names):
        if keys[i] is not None:
            continue
        candidates = [c for c in name.lower() if c in KEYS] + list(KEYS)
        keys[i] = next((c for c in candidates if c not in taken), None)
        if keys[i] is not None:
            taken.add(keys[i])  # type: ignore[arg-type]  # checked one line up
    return keys


def key_legend(class_names: list[str], keys: list[str | None]) -> str:
    """The question's heading: which key answers which class (short when every class is its own key)."""
    if all(key == name for name, key in zip(class_names, keys, strict=True)):
        return "Your answer: press the class's own key, then Submit (Ctrl+Enter)"
    pairs = ", ".join(f"{name} [{key}]" for name, key in zip(class_names, keys, strict=True) if key)
    return f"Your answer, by key: {pairs}; then Submit (Ctrl+Enter)"


def image_attributes(size: ImageSize | None) -> str:
    """Image tag attributes: small inputs enlarged by a whole factor without smoothing; large ones fit the width."""
    if size is not None and max(size.width, size.height) <= SMALL_SIDE:
        factor = max(1, SMALL_SHOWN_PX // max(size.width, size.height))
        width = f"{size.width * factor}px"
        return f'width="{width}" maxWidth="{width}" smoothing="false"'
    return 'width="100%" maxWidth="750px"'


def _image(name: str, value: str, size: ImageSize | None) -> str:
    return (f'<Image name="{name}" value="{value}" {image_attributes(size)} zoom="true" zoomControl="true" '
            'brightnessControl="true" contrastControl="true"/>')


def labeling_config(class_names: list[str], size: ImageSize | None = None) -> str:
    """Label Studio XML: why the sample is here, the input and its stretched copy, one single-choice question."""
    keys = hotkeys(class_names)
    choices = "".join(
        f"<Choice value={quoteattr(name)}" + (f' hotkey="{key}"' if key else "") + "/>"
        for name, key in zip(class_names, keys, strict=True)
    )
    column = 'style="flex: 0 0 auto"'
    return (
        "<View>"
        '<Header value="$headline" size="4"/>'
        '<View style="display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start">'
        f'<View {column}><Header value="As the model saw it" size="6"/>{_image(TO_NAME, "$image", size)}</View>'
        f'<View {column}><Header value="Contrast stretched (to read it; label what the model saw)" size="6"/>'
        f'{_image(STRETCHED_NAME, "$stretched", size)}</View>'
        "</View>"
        f"<Header value={quoteattr(key_legend(class_names, keys))} size=\"5\"/>"
        f'<Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="single-radio" showInLine="true">{choices}</Choices>'
        f'<HyperText name="{WHY_NAME}" value="$why" inline="true" clickableLinks="true" selectionEnabled="false"/>'
        "</View>"
    )
