"""SQL split the way psql splits it: on `;` outside quotes, dollar quotes and comments; a
backslash outside quotes starts a meta-command that runs to the end of the line; psql variables
take their `\\set` value or a NULL placeholder."""

from __future__ import annotations

import re

from opsdrill.doctest.shell_words import SHELL_MARK, matching_paren, unquote
from opsdrill.doctest.statement import Context, Statement

__all__ = ["split_sql", "statements_in"]


# -- SQL ---------------------------------------------------------------------------------------
DOLLAR_TAG = re.compile(r"\$([A-Za-z_]\w*)?\$")


STATEMENT_ENDING_META = ("g", "gx", "gset", "gexec", "watch", "crosstabview", "gdesc")


def split_sql(text: str, first_line: int = 1, variables: dict[str, str] | None = None) -> list:
    """`(sql, line, notes, skip_reason)` for each statement of a psql script."""
    return _Splitter(text, first_line, dict(variables or {})).run()


def statements_in(
    text: str, first_line: int, ctx: Context, variables: dict[str, str] | None
) -> list[Statement]:
    out = []
    for sql, line, notes, skip, source in _Splitter(text, first_line, variables).run_full():
        out.append(
            Statement(
                sql=sql,
                section=ctx.section,
                procedure=ctx.procedure,
                line=line,
                source=source or ctx.source,
                block=ctx.block,
                skip_reason=skip,
                notes=notes,
            )
        )
    return out


class _Splitter:
    """psql's lexer, reduced to what splitting and substitution need."""

    def __init__(self, text: str, first_line: int, variables: dict[str, str] | None) -> None:
        self.interpolate = variables is not None
        variables = variables or {}
        self.text = text
        self.line0 = first_line
        self.vars = variables
        self.out: list[tuple[str, int, list[str], str | None, str | None]] = []
        self._reset()

    def _reset(self) -> None:
        self.buf: list[str] = []
        self.start: int | None = None
        self.notes: list[str] = []
        self.skip: str | None = None

    def _line_at(self, pos: int) -> int:
        return self.line0 + self.text.count("\n", 0, pos)

    def _mark(self, pos: int) -> None:
        if self.start is None:
            self.start = self._line_at(pos)

    def _emit(self, source: str | None = None) -> None:
        sql = "".join(self.buf).strip()
        if _has_code(sql) and self.start is not None:
            self.out.append((sql, self.start, self.notes, self.skip, source))
        self._reset()

    def run(self) -> list:
        return [(s, ln, notes, skip) for s, ln, notes, skip, _ in self.run_full()]

    def run_full(self) -> list:
        t, k, n = self.text, 0, len(self.text)
        while k < n:
            ch = t[k]
            two = t[k : k + 2]
            if two == "--":
                end = t.find("\n", k)
                end = n if end < 0 else end
                self.buf.append(t[k:end])
                k = end
            elif two == "/*":
                end = _block_comment_end(t, k)
                self.buf.append(t[k:end])
                k = end
            elif ch == "'" or (ch in "eE" and t[k + 1 : k + 2] == "'" and not _ident_before(t, k)):
                self._mark(k)
                k = self._quoted(k, escapes=ch in "eE")
            elif ch == '"':
                self._mark(k)
                end = t.find('"', k + 1)
                end = n if end < 0 else end + 1
                self.buf.append(t[k:end])
                k = end
            elif ch == "$" and (m := DOLLAR_TAG.match(t, k)) and not _ident_before(t, k):
                self._mark(k)
                close = t.find(m.group(0), m.end())
                end = n if close < 0 else close + len(m.group(0))
                self._append_filled(t[k:end], inside_quotes=True)
                k = end
            elif ch == ";":
                self.buf.append(";")
                self._emit()
                k += 1
            elif ch == "\\":
                k = self._meta(k)
            elif (
                ch == ":"
                and self.interpolate
                and t[k + 1 : k + 2] != ":"
                and (k == 0 or t[k - 1] != ":")
            ):
                k = self._variable(k)
            elif ch == "\x01":
                self._mark(k)
                end = t.find("\x02", k)
                self._shell(t[k + 1 : end], inside_quotes=False)
                k = end + 1
            else:
                if not ch.isspace():
                    self._mark(k)
                self.buf.append(ch)
                k += 1
        self._emit()
        return self.out

    def _quoted(self, k: int, *, escapes: bool) -> int:
        t, n = self.text, len(self.text)
        j = k + (2 if escapes else 1)
        while j < n:
            if escapes and t[j] == "\\":
                j += 2
                continue
            if t[j] == "'":
                if t[j + 1 : j + 2] == "'":
                    j += 2
                    continue
                break
            j += 1
        end = min(j + 1, n)
        self._append_filled(t[k:end], inside_quotes=True)
        return end

    def _append_filled(self, chunk: str, *, inside_quotes: bool) -> None:
        pos = 0
        for m in SHELL_MARK.finditer(chunk):
            self.buf.append(chunk[pos : m.start()])
            self._shell(m.group(1), inside_quotes=inside_quotes)
            pos = m.end()
        self.buf.append(chunk[pos:])

    def _shell(self, expansion: str, *, inside_quotes: bool) -> None:
        """A shell expansion with no known value: a value that fits where it stands."""
        self.notes.append(f"shell {expansion} replaced by a placeholder")
        self.buf.append("0" if inside_quotes else "NULL")

    def _variable(self, k: int) -> int:
        t = self.text
        m = re.match(r":(?:'([A-Za-z_]\w*)'|\"([A-Za-z_]\w*)\"|([A-Za-z_]\w*))", t[k:])
        if not m:
            self.buf.append(":")
            return k + 1
        self._mark(k)
        literal, ident, plain = m.groups()
        name = literal or ident or plain
        value = self.vars.get(name)
        if literal:
            if value is None:
                self.notes.append(f"psql variable :'{name}' unset: NULL used")
            self.buf.append("NULL" if value is None else "'" + value.replace("'", "''") + "'")
        elif ident:
            if value is None:
                self.skip = f'uses psql variable :"{name}" (an identifier) with no value'
                self.buf.append(f'"{name}"')
            else:
                self.buf.append('"' + value.replace('"', '""') + '"')
        elif value is not None:
            self.buf.append(value)
        else:
            self.notes.append(f"psql variable :{name} unset: NULL used")
            self.buf.append("NULL")
        return k + len(m.group(0))

    def _meta(self, k: int) -> int:
        """A psql meta-command: up to the end of the line."""
        t = self.text
        end = t.find("\n", k)
        end = len(t) if end < 0 else end
        meta = t[k + 1 : end].strip()
        name, _, rest = meta.partition(" ")
        if name in STATEMENT_ENDING_META or (name.startswith("g") and name[1:2] in ("", "x")):
            self._emit()
        elif not _has_code("".join(self.buf)):
            if name == "set":
                var, _, value = rest.strip().partition(" ")
                if var:
                    self.vars[var] = unquote(value.strip())
            elif name == "copy":
                self._copy(rest, k)
        return end

    def _copy(self, rest: str, k: int) -> None:
        """`\\copy (query) TO ...`: the query is SQL the server will run."""
        rest = rest.strip()
        if not rest.startswith("("):
            return
        end = matching_paren(rest, 0)
        saved = self.out
        self.out = []
        inner = _Splitter(rest[1:end], self._line_at(k), self.vars).run_full()
        self.out = saved
        for sql, _, notes, skip, _src in inner:
            self.out.append((sql, self._line_at(k), notes, skip, "psql \\copy"))


def _ident_before(text: str, k: int) -> bool:
    return k > 0 and (text[k - 1].isalnum() or text[k - 1] == "_")


def _block_comment_end(text: str, k: int) -> int:
    depth, j = 0, k
    while j < len(text):
        if text.startswith("/*", j):
            depth, j = depth + 1, j + 2
        elif text.startswith("*/", j):
            depth, j = depth - 1, j + 2
            if depth == 0:
                return j
        else:
            j += 1
    return len(text)


def _has_code(sql: str) -> bool:
    """True when the text holds more than comments, whitespace and semicolons."""
    stripped = re.sub(r"--[^\n]*|/\*.*?\*/", "", sql, flags=re.S)
    return bool(stripped.replace(";", "").strip())
