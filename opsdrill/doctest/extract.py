"""Markdown runbook → the SQL statements a human would run, with where each one came from.

Three sources are read, because a runbook hands SQL to psql in three ways:

- a fenced block whose info string is ``sql`` (also ``postgresql``, ``psql``, ``pgsql``);
- ``psql ... -c "..."`` / ``-c '...'`` / ``--command=...`` in a ``sh``/``bash``/``shell`` fence;
- ``psql ... <<EOF`` here-documents in such a fence (``<<'EOF'``, ``<<"EOF"``, ``<<-EOF``).

Statements are split the way psql splits them: on ``;`` outside quotes, dollar quotes and
comments; a backslash outside quotes starts a psql meta-command that runs to the end of the
line (``\\set`` defines a variable, ``\\copy (query) TO ...`` contributes its query, ``\\gx``
ends a statement). psql variables (``:'v'``, ``:v``) take their ``\\set``/``-v`` value or a
NULL placeholder; shell expansions (``$VAR``, ``$(cmd)``) in double-quoted strings and
unquoted here-documents take the block's own ``VAR=value`` assignment or a placeholder, as
the shell would expand them before psql ever sees the text. A fence preceded by the comment
``<!-- doctest: skip -->`` is not read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Statement", "extract", "extract_file", "split_sql"]

SQL_LANGS = {"sql", "postgresql", "postgres", "psql", "pgsql", "plpgsql"}
SHELL_LANGS = {"sh", "bash", "shell", "console", "zsh"}
SKIP_MARK = re.compile(r"<!--\s*doctest:\s*skip\s*-->")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
PROCEDURE = re.compile(r"^§?\s*(\d+(?:\.\d+)*)\.?(?:\s|$)")
#: `\x01NAME\x02` marks a shell expansion; the SQL splitter fills it in by context.
SHELL_MARK = re.compile(r"\x01([^\x02]*)\x02")
SHELL_PID = "12345"  # what an unquoted here-document turns `$$` into: some process id


@dataclass
class Statement:
    """One SQL statement and where a reader finds it in the runbook."""

    sql: str
    section: str  # heading path, "3. Routine operations > 3.2.1 Weekly maintenance"
    procedure: str | None  # the innermost numbered heading, "3.2.1"
    line: int  # 1-based line of the statement's first token in the Markdown file
    source: str  # "sql fence", "psql -c", "psql here-doc", "psql \\copy"
    block: int  # statements of one block share a transaction when validated
    skip_reason: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def first_line(self) -> str:
        """The statement on one line, leading comments dropped: for tables and messages."""
        code = re.sub(r"^(\s*(--[^\n]*|/\*.*?\*/))+", "", self.sql, flags=re.S)
        return " ".join(code.split())[:100]


@dataclass
class _Context:
    section: str
    procedure: str | None
    source: str
    block: int


def extract_file(path: Path) -> list[Statement]:
    """The statements of a Markdown file (see `extract`)."""
    return extract(path.read_text(encoding="utf-8"))


def extract(markdown: str) -> list[Statement]:
    """Every SQL statement in the runbook's fences, psql -c arguments and here-documents."""
    lines = markdown.splitlines()
    headings: list[tuple[int, str]] = []
    statements: list[Statement] = []
    block = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        if m := HEADING.match(line):
            level = len(m.group(1))
            headings = [h for h in headings if h[0] < level] + [(level, m.group(2).strip())]
            i += 1
            continue
        fence = FENCE.match(line)
        if not fence:
            i += 1
            continue
        indent, marker, lang = fence.group(1), fence.group(2), fence.group(3).lower()
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(marker):
            end += 1
        body = [ln[len(indent) :] if ln.startswith(indent) else ln for ln in lines[i + 1 : end]]
        skipped = _preceded_by_skip(lines, i)
        section, procedure = _section(headings)
        if not skipped and lang in SQL_LANGS:
            block += 1
            ctx = _Context(section, procedure, "sql fence", block)
            statements += _statements("\n".join(body), i + 2, ctx, {})
        elif not skipped and lang in SHELL_LANGS:
            found, block = _shell_block(body, i + 2, section, procedure, block)
            statements += found
        i = end + 1
    return statements


def _preceded_by_skip(lines: list[str], fence_index: int) -> bool:
    j = fence_index - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    return j >= 0 and bool(SKIP_MARK.search(lines[j]))


def _section(headings: list[tuple[int, str]]) -> tuple[str, str | None]:
    procedure = None
    for _, text in headings:
        if m := PROCEDURE.match(text):
            procedure = m.group(1)
    return " > ".join(text for _, text in headings) or "(no heading)", procedure


# -- shell -------------------------------------------------------------------------------------
ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_]\w*)=(\S*)\s*$")
HEREDOC = re.compile(r"<<(-?)\s*(['\"]?)([A-Za-z_]\w*)\2")


def _shell_block(
    body: list[str], first_line: int, section: str, procedure: str | None, block: int
) -> tuple[list[Statement], int]:
    """Statements from psql invocations in one shell fence."""
    env: dict[str, str] = {}
    out: list[Statement] = []
    i = 0
    while i < len(body):
        start = i
        logical = body[i]
        while logical.endswith("\\") and i + 1 < len(body):
            i += 1
            logical = logical[:-1] + " " + body[i]
        i += 1
        if m := ASSIGNMENT.match(logical):
            env[m.group(1)] = _unquote(m.group(2))
        if not re.search(r"(^|[\s|;&(/`])psql(\s|$)", logical):
            continue
        words = _shell_words(_strip_comment(logical), env)
        for invocation in _psql_invocations(words):
            variables = invocation["vars"]
            for command in invocation["commands"]:
                block += 1
                ctx = _Context(section, procedure, "psql -c", block)
                # psql sends a -c string as it is: no :variable interpolation there
                out += _statements(command, first_line + start, ctx, None)
        if h := HEREDOC.search(logical):
            strip_tabs, quoted, delimiter = h.group(1) == "-", bool(h.group(2)), h.group(3)
            doc_start = i
            while i < len(body):
                candidate = body[i].lstrip("\t") if strip_tabs else body[i]
                if candidate.strip() == delimiter:
                    break
                i += 1
            text = "\n".join(body[doc_start:i])
            i += 1
            if not quoted:
                text = _expand(text, env, heredoc=True)
            block += 1
            ctx = _Context(section, procedure, "psql here-doc", block)
            variables = next(iter(_psql_invocations(words)), {"vars": {}})["vars"]
            out += _statements(text, first_line + doc_start, ctx, dict(variables))
    return out, block


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _strip_comment(line: str) -> str:
    """Drop a trailing `# comment` that is not inside quotes."""
    quote = None
    for k, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (k == 0 or line[k - 1].isspace()):
            return line[:k]
    return line


def _expand(text: str, env: dict[str, str], *, heredoc: bool = False) -> str:
    """The shell's expansions in double-quoted text: known values, else a context placeholder."""
    out: list[str] = []
    k = 0
    while k < len(text):
        ch = text[k]
        if ch == "\\" and k + 1 < len(text) and text[k + 1] in '$`"\\':
            if heredoc and text[k + 1] == '"':
                out.append("\\")
            out.append(text[k + 1])
            k += 2
            continue
        if ch == "$" and k + 1 < len(text):
            nxt = text[k + 1]
            if nxt == "$":
                out.append(SHELL_PID)
                k += 2
                continue
            if nxt == "{":
                end = text.find("}", k)
                name = text[k + 2 : end if end > 0 else len(text)]
                out.append(_shell_value(name.split(":")[0], env))
                k = end + 1 if end > 0 else len(text)
                continue
            if nxt == "(":
                end = _matching_paren(text, k + 1)
                out.append(f"\x01$({text[k + 2 : end]})\x02")
                k = end + 1
                continue
            if m := re.match(r"[A-Za-z_]\w*|[0-9#?@*!-]", text[k + 1 :]):
                out.append(_shell_value(m.group(0), env))
                k += 1 + len(m.group(0))
                continue
        if ch == "`":
            end = text.find("`", k + 1)
            end = end if end > 0 else len(text)
            out.append(f"\x01`{text[k + 1 : end]}`\x02")
            k = end + 1
            continue
        out.append(ch)
        k += 1
    return "".join(out)


def _shell_value(name: str, env: dict[str, str]) -> str:
    return env.get(name, f"\x01${name}\x02")


def _matching_paren(text: str, open_at: int) -> int:
    depth = 0
    for k in range(open_at, len(text)):
        if text[k] == "(":
            depth += 1
        elif text[k] == ")":
            depth -= 1
            if depth == 0:
                return k
    return len(text) - 1


OPERATORS = ("&&", "||", "|", ";", "&", "(", ")", "$(", "`")


def _shell_words(line: str, env: dict[str, str]) -> list[str]:
    """Split a shell line into words (quotes removed, expansions applied) and operators."""
    words: list[str] = []
    cur: list[str] = []
    have = False
    k = 0

    def flush() -> None:
        nonlocal cur, have
        if have:
            words.append("".join(cur))
        cur, have = [], False

    while k < len(line):
        ch = line[k]
        if ch == "'":
            end = line.find("'", k + 1)
            end = end if end >= 0 else len(line)
            cur.append(line[k + 1 : end])
            have, k = True, end + 1
        elif ch == '"':
            end = k + 1
            while end < len(line) and line[end] != '"':
                end += 2 if line[end] == "\\" else 1
            cur.append(_expand(line[k + 1 : end], env))
            have, k = True, end + 1
        elif ch.isspace():
            flush()
            k += 1
        elif op := next((o for o in OPERATORS if line.startswith(o, k)), None):
            flush()
            words.append(op)
            k += len(op)
        elif ch == "$":
            m = re.match(r"\$(\{[^}]*\}|[A-Za-z_]\w*)", line[k:])
            token = m.group(0) if m else "$"
            cur.append(_expand(token, env))
            have, k = True, k + len(token)
        elif ch == "\\" and k + 1 < len(line):
            cur.append(line[k + 1])
            have, k = True, k + 2
        else:
            cur.append(ch)
            have, k = True, k + 1
    flush()
    return words


def _psql_invocations(words: list[str]) -> list[dict]:
    """For each `psql` in the words: its -c/--command texts and -v/--set variables."""
    found = []
    for k, word in enumerate(words):
        if word != "psql" and not word.endswith("/psql"):
            continue
        commands: list[str] = []
        variables: dict[str, str] = {}
        j = k + 1
        while j < len(words) and words[j] not in OPERATORS:
            w = words[j]
            arg = words[j + 1] if j + 1 < len(words) else ""
            if w in ("-c", "--command"):
                commands.append(arg)
                j += 1
            elif w.startswith("--command="):
                commands.append(w.split("=", 1)[1])
            elif w.startswith("-c") and len(w) > 2:
                commands.append(w[2:])
            elif w in ("-v", "--set", "--variable"):
                _set_var(arg, variables)
                j += 1
            elif w.startswith(("--set=", "--variable=")):
                _set_var(w.split("=", 1)[1], variables)
            j += 1
        found.append({"commands": commands, "vars": variables})
    return found


def _set_var(assignment: str, variables: dict[str, str]) -> None:
    name, _, value = assignment.partition("=")
    variables[name] = value


# -- SQL ---------------------------------------------------------------------------------------
DOLLAR_TAG = re.compile(r"\$([A-Za-z_]\w*)?\$")
STATEMENT_ENDING_META = ("g", "gx", "gset", "gexec", "watch", "crosstabview", "gdesc")


def split_sql(text: str, first_line: int = 1, variables: dict[str, str] | None = None) -> list:
    """`(sql, line, notes, skip_reason)` for each statement of a psql script."""
    return _Splitter(text, first_line, dict(variables or {})).run()


def _statements(
    text: str, first_line: int, ctx: _Context, variables: dict[str, str] | None
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
                    self.vars[var] = _unquote(value.strip())
            elif name == "copy":
                self._copy(rest, k)
        return end

    def _copy(self, rest: str, k: int) -> None:
        """`\\copy (query) TO ...`: the query is SQL the server will run."""
        rest = rest.strip()
        if not rest.startswith("("):
            return
        end = _matching_paren(rest, 0)
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
