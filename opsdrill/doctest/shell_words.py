"""Shell as a runbook's fences write it, read the way the shell would before psql sees it:
quotes, comments, `$VAR` and `$(cmd)` expansions, words and operators, psql invocations."""

from __future__ import annotations

import re

__all__ = [
    "ASSIGNMENT",
    "HEREDOC",
    "SHELL_MARK",
    "SHELL_PID",
    "expand",
    "matching_paren",
    "psql_invocations",
    "set_var",
    "split_words",
    "strip_comment",
    "unquote",
]


#: `\x01NAME\x02` marks a shell expansion; the SQL splitter fills it in by context.
SHELL_MARK = re.compile(r"\x01([^\x02]*)\x02")


SHELL_PID = "12345"  # what an unquoted here-document turns `$$` into: some process id


# -- shell -------------------------------------------------------------------------------------
ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_]\w*)=(\S*)\s*$")


HEREDOC = re.compile(r"<<(-?)\s*(['\"]?)([A-Za-z_]\w*)\2")


def unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def strip_comment(line: str) -> str:
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


def expand(text: str, env: dict[str, str], *, heredoc: bool = False) -> str:
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
                out.append(shell_value(name.split(":")[0], env))
                k = end + 1 if end > 0 else len(text)
                continue
            if nxt == "(":
                end = matching_paren(text, k + 1)
                out.append(f"\x01$({text[k + 2 : end]})\x02")
                k = end + 1
                continue
            if m := re.match(r"[A-Za-z_]\w*|[0-9#?@*!-]", text[k + 1 :]):
                out.append(shell_value(m.group(0), env))
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


def shell_value(name: str, env: dict[str, str]) -> str:
    return env.get(name, f"\x01${name}\x02")


def matching_paren(text: str, open_at: int) -> int:
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


def split_words(line: str, env: dict[str, str]) -> list[str]:
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
            cur.append(expand(line[k + 1 : end], env))
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
            cur.append(expand(token, env))
            have, k = True, k + len(token)
        elif ch == "\\" and k + 1 < len(line):
            cur.append(line[k + 1])
            have, k = True, k + 2
        else:
            cur.append(ch)
            have, k = True, k + 1
    flush()
    return words


def psql_invocations(words: list[str]) -> list[dict]:
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
                set_var(arg, variables)
                j += 1
            elif w.startswith(("--set=", "--variable=")):
                set_var(w.split("=", 1)[1], variables)
            j += 1
        found.append({"commands": commands, "vars": variables})
    return found


def set_var(assignment: str, variables: dict[str, str]) -> None:
    name, _, value = assignment.partition("=")
    variables[name] = value
