"""A contact file read as rows: its encoding, its dialect, its header, records with their lines.

* **Encoding** — declared, or detected: a BOM says UTF-8 or UTF-16 (LE/BE); otherwise the
  first `SAMPLE_BYTES` are tried as UTF-8, and a sample whose bytes above 0x7F are mostly not
  UTF-8 is Latin-1. Bytes that do not decode never fail the file: a UTF-8 file is decoded with
  `surrogateescape`, and a record holding an escaped byte is refused with its line.
* **Dialect** — declared, or detected over the first complete records of the sample: each
  candidate delimiter (comma, semicolon, tab, pipe) splits them with the csv module's quoting
  rules, and the one giving the most records of one constant width (> 1) wins. Quotes are
  RFC 4180 (`"` doubled inside a quoted field); quoted fields may hold delimiters and line
  breaks; CRLF and LF both end records.
* **Chunks** — a record boundary is a line break outside quotes: after an even number of
  quote characters from the start of the file. `chunk_bounds` finds such boundaries near
  equal byte offsets with C-speed counts only, so chunks can be parsed in parallel, each
  knowing the line its first record starts on.

Pure: bytes in, rows out; no database, no Ray.
"""
from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

SAMPLE_BYTES = 64 * 1024
DELIMITERS = (",", ";", "\t", "|")
BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
ALIASES = {"utf8": "utf-8", "utf-8": "utf-8", "utf-8-sig": "utf-8-sig", "utf16": "utf-16",
           "utf-16": "utf-16", "latin-1": "latin-1", "latin1": "latin-1", "iso-8859-1": "latin-1",
           "cp1252": "cp1252", "windows-1252": "cp1252", "ascii": "utf-8"}


class FileError(ValueError):
    """The file as a whole cannot be imported (empty, no header, duplicate header names...)."""


@dataclass(frozen=True)
class Dialect:
    delimiter: str = ","
    quotechar: str = '"'

    def reader(self, text: io.TextIOBase | Iterator[str]):
        return csv.reader(text, delimiter=self.delimiter, quotechar=self.quotechar, doublequote=True,
                          skipinitialspace=False, strict=False)


def detect_encoding(head: bytes, declared: str | None = None) -> str:
    """The codec to read the file with (a BOM wins over nothing, a declaration over a BOM)."""
    if declared:
        name = ALIASES.get(declared.strip().lower())
        if name is None:
            try:
                name = codecs.lookup(declared).name
            except LookupError:
                raise FileError(f"unknown encoding {declared!r}") from None
        if name == "utf-8" and head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        return name
    for bom, name in BOMS:
        if head.startswith(bom):
            return name
    sample = head[:SAMPLE_BYTES]
    high = sum(1 for b in sample if b > 0x7F)
    if not high:
        return "utf-8"
    if len(head) > SAMPLE_BYTES:                    # a character cut at the sample's end
        sample = sample[:sample.rfind(b"\n") + 1] or sample
    errors = sample.decode("utf-8", errors="replace").count("\ufffd")
    # a few stray bytes in a UTF-8 file are bad rows; mostly-invalid high bytes are Latin-1
    return "latin-1" if errors * 2 > high else "utf-8"


def decode(data: bytes, encoding: str) -> str:
    """Text of `data`; undecodable bytes stay visible as escapes (`undecodable` finds them)."""
    if encoding in ("utf-8", "utf-8-sig"):
        if encoding == "utf-8-sig" and data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8):]
        return data.decode("utf-8", errors="surrogateescape")
    if encoding == "utf-16":
        return data.decode("utf-16", errors="surrogatepass")
    return data.decode(encoding, errors="surrogateescape")


def detect_dialect(text: str, declared_delimiter: str | None = None) -> Dialect:
    """The dialect of a text sample (see the module's doc)."""
    if declared_delimiter:
        delimiter = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";",
                     "pipe": "|"}.get(declared_delimiter.lower(), declared_delimiter)
        if len(delimiter) != 1 or delimiter in '"\r\n':
            raise FileError(f"a delimiter is one character other than a quote or line break, "
                            f"not {declared_delimiter!r}")
        return Dialect(delimiter)
    cut = _last_boundary(text)
    sample = text[:cut] if cut > 0 else text
    best, best_score = Dialect(","), (0, 0)
    for delimiter in DELIMITERS:
        try:
            widths = [len(r) for r in Dialect(delimiter).reader(io.StringIO(sample)) if r][:200]
        except csv.Error:
            continue
        if not widths:
            continue
        mode = max(set(widths), key=widths.count)
        if mode < 2:
            continue
        score = (widths.count(mode), mode)
        if score > best_score:
            best, best_score = Dialect(delimiter), score
    return best


def _last_boundary(text: str) -> int:
    """The end of the last complete record of a sample (a line break outside quotes)."""
    quotes = 0
    last = -1
    for i, ch in enumerate(text):
        if ch == '"':
            quotes += 1
        elif ch == "\n" and quotes % 2 == 0:
            last = i + 1
    return last


def chunk_bounds(data: bytes | memoryview, target: int, start: int = 0) -> list[tuple[int, int, int]]:
    """(start byte, end byte, line of the first record) of chunks of about `target` bytes each,
    every boundary a line break outside quotes (`data` in a single-byte-safe encoding: UTF-8
    or Latin-1). `start` is where the first chunk begins (after the header)."""
    data = bytes(data) if isinstance(data, memoryview) else data
    bounds = []
    line = 1 + data.count(b"\n", 0, start)
    quotes = data.count(b'"', 0, start)
    pos = start
    size = len(data)
    while pos < size:
        end = min(pos + target, size)
        if end < size:
            quotes_to_end = quotes + data.count(b'"', pos, end)
            nl = data.find(b"\n", end)
            while nl != -1:
                quotes_to_end += data.count(b'"', end, nl)
                end = nl + 1
                if quotes_to_end % 2 == 0:
                    break
                nl = data.find(b"\n", end)
            if nl == -1:
                end = size
        bounds.append((pos, end, line))
        line += data.count(b"\n", pos, end)
        quotes += data.count(b'"', pos, end)
        pos = end
    return bounds


def records(text: str, dialect: Dialect, first_line: int = 1) -> Iterator[tuple[int, list[str] | None, str]]:
    """(line the record starts on, fields, fault) of each record of `text`; a record the csv
    module cannot split gives (line, None, why). Blank lines are skipped."""
    reader = dialect.reader(io.StringIO(text, newline=""))
    line = first_line
    consumed = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line + 0, None, f"cannot be read: {exc}"
            consumed = reader.line_num
            line = first_line + consumed
            continue
        start = line
        consumed = reader.line_num
        line = first_line + consumed
        if row and not (len(row) == 1 and not row[0].strip()):
            yield start, row, ""


def header_end(text: str, dialect: Dialect) -> tuple[list[str], int]:
    """The header record of a text and the number of characters it (and its line break) takes."""
    reader = dialect.reader(io.StringIO(text, newline=""))
    for row in reader:
        if row and any(cell.strip() for cell in row):
            lines = reader.line_num
            pos = 0
            for _ in range(lines):
                nl = text.find("\n", pos)
                pos = len(text) if nl == -1 else nl + 1
            return row, pos
    raise FileError("the file is empty: no header")
