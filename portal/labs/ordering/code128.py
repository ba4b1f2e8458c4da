"""Code 128 (code set B) for the requisition's order number, drawn as bars by the PDF.

None of the project's dependencies draws Code 128 (fpdf2 has Code 39 and Interleaved 2 of 5
only; segno is QR), and the symbology is one table and a checksum, so it is written here
rather than adding a package. The table is the standard's (ISO/IEC 15417): each symbol is
six element widths, bar first, eleven modules; the stop symbol is seven elements, thirteen
modules. ``modules`` is pure and tested by reading the bars back (``decode``).
"""

from __future__ import annotations

PATTERNS = (
    "212222", "222122", "222221", "121223", "121322", "131222", "122213", "122312",
    "132212", "221213", "221312", "231212", "112232", "122132", "122231", "113222",
    "123122", "123221", "223211", "221132", "221231", "213212", "223112", "312131",
    "311222", "321122", "321221", "312212", "322112", "322211", "212123", "212321",
    "232121", "111323", "131123", "131321", "112313", "132113", "132311", "211313",
    "231113", "231311", "112133", "112331", "132131", "113123", "113321", "133121",
    "313121", "211331", "231131", "213113", "213311", "213131", "311123", "311321",
    "331121", "312113", "312311", "332111", "314111", "221411", "431111", "111224",
    "111422", "121124", "121421", "141122", "141221", "112214", "112412", "122114",
    "122411", "142112", "142211", "241211", "221114", "413111", "241112", "134111",
    "111242", "121142", "121241", "114212", "124112", "124211", "411212", "421112",
    "421211", "212141", "214121", "412121", "111143", "111341", "131141", "114113",
    "114311", "411113", "411311", "113141", "114131", "311141", "411131", "211412",
    "211214", "211232", "2331112",
)  # fmt: skip
START_B = 104
STOP = 106


def symbols(text: str) -> list[int]:
    """The symbol values of ``text`` in code set B: start, data, checksum, stop."""
    if not text or any(not 32 <= ord(ch) <= 126 for ch in text):
        raise ValueError("Code 128 B carries printable ASCII only")
    data = [ord(ch) - 32 for ch in text]
    checksum = (START_B + sum(position * value for position, value in enumerate(data, 1))) % 103
    return [START_B, *data, checksum, STOP]


def widths(text: str) -> list[int]:
    """Element widths in modules, alternating bar and space, starting with a bar."""
    return [int(width) for value in symbols(text) for width in PATTERNS[value]]


def decode(element_widths: list[int]) -> str:
    """Read widths back to text, checking start, checksum and stop (for the tests, and as
    a scanner would)."""
    values = []
    position = 0
    while position < len(element_widths):
        size = 7 if len(element_widths) - position == 7 else 6
        pattern = "".join(str(w) for w in element_widths[position : position + size])
        values.append(PATTERNS.index(pattern))
        position += size
    if values[0] != START_B or values[-1] != STOP:
        raise ValueError("not a Code 128 B symbol")
    data, checksum = values[1:-2], values[-2]
    expected = (START_B + sum(i * v for i, v in enumerate(data, 1))) % 103
    if checksum != expected:
        raise ValueError("checksum mismatch")
    return "".join(chr(v + 32) for v in data)
