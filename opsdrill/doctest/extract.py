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
from pathlib import Path

from opsdrill.doctest.shell_words import (
    ASSIGNMENT,
    HEREDOC,
    expand,
    psql_invocations,
    split_words,
    strip_comment,
    unquote,
)
from opsdrill.doctest.sql_split import split_sql, statements_in
from opsdrill.doctest.statement import Context, Statement

__all__ = ["Statement", "extract", "extract_file", "split_sql"]

SQL_LANGS = {"sql", "postgresql", "postgres", "psql", "pgsql", "plpgsql"}
SHELL_LANGS = {"sh", "bash", "shell", "console", "zsh"}
SKIP_MARK = re.compile(r"<!--\s*doctest:\s*skip\s*-->")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
PROCEDURE = re.compile(r"^§?\s*(\d+(?:\.\d+)*)\.?(?:\s|$)")


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
            ctx = Context(section, procedure, "sql fence", block)
            statements += statements_in("\n".join(body), i + 2, ctx, {})
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
            env[m.group(1)] = unquote(m.group(2))
        if not re.search(r"(^|[\s|;&(/`])psql(\s|$)", logical):
            continue
        words = split_words(strip_comment(logical), env)
        for invocation in psql_invocations(words):
            variables = invocation["vars"]
            for command in invocation["commands"]:
                block += 1
                ctx = Context(section, procedure, "psql -c", block)
                # psql sends a -c string as it is: no :variable interpolation there
                out += statements_in(command, first_line + start, ctx, None)
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
                text = expand(text, env, heredoc=True)
            block += 1
            ctx = Context(section, procedure, "psql here-doc", block)
            variables = next(iter(psql_invocations(words)), {"vars": {}})["vars"]
            out += statements_in(text, first_line + doc_start, ctx, dict(variables))
    return out, block
