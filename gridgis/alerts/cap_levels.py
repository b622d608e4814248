"""CAP levels: from a level parameter (``LEVEL_PARAMETERS``), else from ``<severity>``."""

import re
from typing import Final

from gridgis.errors import InvalidInput

SEVERITY_LEVEL: Final[dict[str, str]] = {
    "Extreme": "red", "Severe": "orange", "Moderate": "yellow", "Minor": "blue",
}
"""The level of an info block without a level parameter; ``Unknown`` severity gives none."""

LEVEL_PARAMETERS: Final = frozenset({
    "level", "warninglevel", "warning_level", "colour", "color", "颜色", "顏色", "预警颜色",
    "预警级别", "signal", "typhoonsignal", "风球", "風球",
})
"""Parameter valueNames (case-insensitive) that carry the level; the first one present wins."""

SIGNAL_PARAMETERS: Final = frozenset({"signal", "typhoonsignal", "风球", "風球"})
SIGNAL_LEVEL: Final[dict[int, str]] = {1: "blue", 3: "yellow", 8: "orange", 9: "red", 10: "red"}
"""Hong Kong / Macau tropical cyclone signals onto China's colours (8NE, T8, No. 8 -> 8)."""

COLOUR_LEVEL: Final[dict[str, str]] = {
    "red": "red", "orange": "orange", "yellow": "yellow", "blue": "blue",
    "vermelho": "red", "laranja": "orange", "amarelo": "yellow", "azul": "blue",
    "红": "red", "紅": "red", "橙": "orange", "黄": "yellow", "黃": "yellow", "蓝": "blue",
    "藍": "blue", "i": "red", "ii": "orange", "iii": "yellow", "iv": "blue",
    "ⅰ": "red", "ⅱ": "orange", "ⅲ": "yellow", "ⅳ": "blue",
}
"""Colour words (en, pt, zh) and China's grades I-IV (I is the highest) onto levels."""


def level_of(parameters: tuple[tuple[str, str], ...], severity: str,
           where: str) -> tuple[str | None, str | None]:
    """Return (level, where it came from): the first level parameter, else the severity."""
    for name, value in parameters:
        key = name.strip().casefold()
        if key not in LEVEL_PARAMETERS:
            continue
        if (level := level_in(key, value)) is None:
            raise InvalidInput(
                f"{where}: parameter {name} = '{value}' is not a level gridgis knows (blue, "
                "yellow, orange, red in English, Portuguese or Chinese; grades I-IV; signals "
                f"{', '.join(map(str, SIGNAL_LEVEL))})")
        return level, f"parameter {name}"
    level = SEVERITY_LEVEL.get(severity)
    return level, ("severity" if level else None)


def level_in(key: str, value: str) -> str | None:
    text = value.strip().casefold()
    if key in SIGNAL_PARAMETERS:
        number = re.search(r"\d+", text)
        return SIGNAL_LEVEL.get(int(number.group())) if number else None
    for word in re.findall(r"[a-zⅰⅱⅲⅳ]+", text):
        if word in COLOUR_LEVEL:
            return COLOUR_LEVEL[word]
    return next((COLOUR_LEVEL[char] for char in text if char in COLOUR_LEVEL), None)


