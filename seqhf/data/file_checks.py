"""Why a data file could not be read, in one line that names the file and the line: datasets itself often
says only "An error occurred while generating the dataset". Used after a load has failed, so a file that
reads well costs nothing."""

import json
from pathlib import Path

TEXT_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".txt")
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _json_line_problem(name: str, number: int, line: str) -> str | None:
    try:
        json.loads(line.strip())
    except ValueError as err:
        return (f"Line {number} of {name!r} is not valid JSON ({err.msg} at column {err.colno}): "
                f"{line.strip()[:60]!r}")
    return None


def _whole_json_problem(path: Path) -> str | None:
    """A .json file holds one JSON document, or JSON Lines; the first line that breaks it, if any."""
    text = path.read_text(encoding="utf-8")
    try:
        json.loads(text)
        return None
    except ValueError as err:
        whole = err
    lines = [(i, line) for i, line in enumerate(text.splitlines(), 1) if line.strip()]
    if lines and _json_line_problem(path.name, *lines[0]) is None:  # JSON Lines: find the bad line
        return next((p for p in (_json_line_problem(path.name, i, line) for i, line in lines) if p), None)
    return f"{path.name!r} is not valid JSON (line {whole.lineno}, column {whole.colno}: {whole.msg})"


def utf16_problem(path) -> str | None:
    """The conversion a UTF-16 file (one that starts with its byte-order mark) needs; None for any other file."""
    with open(path, "rb") as f:
        if f.read(2) not in UTF16_BOMS:
            return None
    name = Path(path).name
    return (f"{name!r} is UTF-16 text, and seqhf reads UTF-8: convert it, e.g. "
            f"`iconv -f UTF-16 -t UTF-8 {name} > utf8-{name}`")


def not_utf8(path, reason: str) -> str:
    """The message for a text file that does not decode as UTF-8 (`reason`: the decoder's, with where it failed):
    the conversion a UTF-16 file needs, else the usual latin-1 one."""
    return utf16_problem(path) or (f"{str(path)!r} is not UTF-8 text ({reason}): convert it first, e.g. "
                                   "`iconv -f latin1 -t utf-8`.")


def file_problem(path) -> str | None:
    """What makes the data file `path` unreadable (empty, UTF-16 or otherwise not UTF-8, a CSV header without
    rows or with tabs, a JSON line that does not parse), naming the line; None when none of these is found."""
    path = Path(path)
    name, suffix = path.name, path.suffix.lower()
    if not path.is_file():
        return None
    if path.stat().st_size == 0:
        return f"{name!r} is empty (0 bytes)"
    if suffix not in TEXT_SUFFIXES:
        return None
    utf16 = utf16_problem(path)
    if utf16:
        return utf16
    rows, header = 0, None
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return (f"{name!r} is not UTF-8 text (line {number}: {err.reason} at byte {err.start} of the line): "
                        "convert it, e.g. `iconv -f latin1 -t UTF-8`")
            if not line.strip():
                continue
            rows += 1
            header = line if header is None else header
            if suffix == ".jsonl":
                problem = _json_line_problem(name, number, line)
                if problem:
                    return problem
    if rows == 0:
        return f"{name!r} holds only blank lines"
    if suffix in (".csv", ".tsv") and rows == 1:
        return f"{name!r} has a header line and no rows"
    if suffix == ".csv" and "\t" in header and "," not in header:
        return f"{name!r} is tab-separated (its header line holds tabs and no commas): name it .tsv"
    if suffix == ".json":
        return _whole_json_problem(path)
    return None


def root_cause(err: BaseException) -> str:
    """The innermost error of `err`'s chain that says something, as one line."""
    said, seen = str(err), set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if str(err).strip():
            said = f"{str(err).strip()}" if isinstance(err, (ValueError, OSError)) else f"{type(err).__name__}: {err}"
        err = err.__cause__ or err.__context__
    return " ".join(said.split())


def unreadable(paths, what: str, err: BaseException) -> str:
    """The message for data files that datasets could not read (`what` names them for the last resort): the
    first file's problem found, else datasets' deepest error."""
    for path in paths:
        problem = file_problem(path)
        if problem:
            return f"{problem}."
    return f"datasets could not read {what}: {root_cause(err)}"
