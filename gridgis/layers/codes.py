"""The code scheme of admin units and grids (GB/T 2260 style, nested by prefix).

* district: 6 digits (e.g. 440115 南沙区)
* street: district + 3 digits, 001-099 for 街道, 100-199 for 镇
* community: street + 3 digits, 001-199 for 社区, 200-399 for 村
* grid: community + 3-digit sequence from 001 (15 digits)
"""

import re

CODE_PATTERNS: dict[str, str] = {
    "district": r"^\d{6}$",
    "street": r"^\d{6}(?!000)[01]\d{2}$",
    "community": r"^\d{9}(?!000)[0-3]\d{2}$",
    "grid": r"^\d{12}(?!000)\d{3}$",
}
COMPILED = {level: re.compile(pattern) for level, pattern in CODE_PATTERNS.items()}
_PARENT_LENGTH = {6: None, 9: 6, 12: 9, 15: 12}


def parent_code_of(code: str) -> str | None:
    """Return the parent code of an admin-unit or grid code (None for a district)."""
    if not code.isdigit() or len(code) not in _PARENT_LENGTH:
        raise ValueError(f"not a territory code: {code!r}")
    length = _PARENT_LENGTH[len(code)]
    return None if length is None else code[:length]
