"""Lists of numbers as people give them: pasted (one a line, or separated by commas,
semicolons or spaces) or in a CSV file (a spreadsheet's export). What is not a number stays in
the list as it was written: the accept path refuses it, and the page says why."""

import csv
import io
import re
import unicodedata

_SEPARATORS = re.compile(r"[\r\n,;\t]+")
_VISUAL = str.maketrans("", "", " .-()/\u00a0")  # what people put between groups of digits
_WHOLE = 8  # digits a number has at least: shorter groups are parts of one ("06 12 34 56 78")
# Headers of the column that holds the numbers (lower case, without accents).
_HEADERS = {"number", "numbers", "phone", "mobile", "to", "numero", "telephone", "tel", "msisdn"}


def pasted(text: str) -> list[str]:
    """The numbers of a pasted list. Spaces separate numbers, except between groups of digits
    too short to be numbers: "06 12 34 56 78" is one."""
    numbers = []
    for chunk in _SEPARATORS.split(text):
        groups = chunk.split()
        digits = [_cleaned(g).lstrip("+") for g in groups]
        if all(d.isdigit() for d in digits) and any(len(d) < _WHOLE for d in digits):
            numbers.append(_cleaned("".join(groups)))
        else:
            numbers += [_cleaned(g) for g in groups]
    return [n for n in numbers if n]


def _cleaned(number: str) -> str:
    """A number without the dots, dashes, spaces… between its digits; anything else as it is."""
    bare = number.translate(_VISUAL)
    return bare if bare.lstrip("+").isdigit() else number.strip()


def from_csv(data: bytes) -> list[str]:
    """The numbers of a CSV file: the column headed number, phone, to, numéro, téléphone…
    or else the first one; a header line is skipped. UTF-8 (with or without BOM), else
    Windows-1252 (what spreadsheets export in France); commas, semicolons or tabs."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", "replace")
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:  # one column: no delimiter to find
        dialect = csv.excel
    rows = [row for row in csv.reader(io.StringIO(text), dialect) if any(c.strip() for c in row)]
    if not rows:
        return []
    column = 0
    names = [_plain(cell) for cell in rows[0]]
    headed = [i for i, name in enumerate(names) if name in _HEADERS]
    if headed:
        column, rows = headed[0], rows[1:]
    elif not any(ch.isdigit() for ch in rows[0][0]):  # a header of other words
        rows = rows[1:]
    cells = (row[column] for row in rows if len(row) > column)
    return [_cleaned(cell) for cell in cells if cell.strip()]


def _plain(cell: str) -> str:
    """A header cell in lower case without accents: "Téléphone" is "telephone"."""
    decomposed = unicodedata.normalize("NFKD", cell.strip().lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))
