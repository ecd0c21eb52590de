"""Check the commands in documentation against the real parsers.

Every fenced shell block (```bash, ```sh, ```shell, ```console, ```zsh) of a
markdown text (by default ``README.md`` and ``docs/*.md``) is read line by line: backslash
continuations are joined, ``$ `` prompts stripped (in ``console`` blocks only
prompted lines are commands, the rest is output), comments, pipes,
``&&``/``;`` lists and redirections split off, and leading ``VAR=value``
assignments (and ``export VAR=value`` lines before) taken as environment.
A command that runs a watched CLI — ``mytool ...``, ``python -m mytool.cli
...`` — is checked against that CLI's real parser; a command that runs a
wrapper script with a :class:`~argvcontract.recorder.ScriptContract` is run
through the recorder and its calls checked. With
:class:`~argvcontract.cli.PluginOptions`, the options a pytest plugin adds are
checked on ``pytest`` command lines too.

Placeholders such as ``$OUT_DIR``, ``"$CORPUS"`` or ``<path>`` stand for some
valid value: the flag must exist and take a value, the value is not converted.
"""

from __future__ import annotations

import re
import shlex
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from argvcontract.cli import Cli, PluginOptions
from argvcontract.parsing import is_placeholder
from argvcontract.recorder import ArgvRecorder, ScriptContract
from argvcontract.verify import ContractError, ContractReport, Problem, check_argv, verify

SHELL_LANGS = frozenset({"bash", "sh", "shell", "console", "zsh", "shell-session"})
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")
_ANGLE = re.compile(r"<([A-Za-z][\w.,/-]*)>")
_FD_REDIRECT = re.compile(r"(?<!\S)\d+(?=[<>])")
_HEREDOC = re.compile(r"<<-?\s*['\"]?(\w+)['\"]?")
_PREFIX_WORDS = frozenset({"env", "time", "nohup", "exec", "command", "sudo", "builtin"})
_RUNNERS = frozenset({"uv", "pipx", "poetry", "hatch", "pdm"})
_REDIRECTS = frozenset({">", ">>", "<", ">&", "<&", "&>", "&>>", ">|", "<>", "<<", "<<-", "<<<"})
_PUNCT = ";&|()<>"


@dataclass(frozen=True)
class ShellBlock:
    """A fenced shell block: its file, the line of its first content line, language, lines."""

    source: str
    line: int
    lang: str
    lines: tuple[str, ...]


def shell_blocks(text: str, source: str = "<markdown>") -> list[ShellBlock]:
    """The fenced shell blocks of a markdown text."""
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, indent = m["fence"], len(m["indent"])
        lang = (m["info"].split() or [""])[0].lower()
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            close = _FENCE.match(lines[j])
            if (
                close
                and close["fence"][0] == fence[0]
                and len(close["fence"]) >= len(fence)
                and not close["info"].strip()
            ):
                break
            body.append(lines[j][indent:] if lines[j][:indent].strip() == "" else lines[j])
            j += 1
        if lang in SHELL_LANGS:
            blocks.append(ShellBlock(source, i + 2, lang, tuple(body)))
        i = j + 1
    return blocks


def logical_lines(block: ShellBlock) -> Iterator[tuple[int, str]]:
    """(line number, command text) per command line: prompts stripped, continuations joined."""
    pending: list[str] = []
    start = 0
    heredoc: str | None = None
    for offset, raw in enumerate(block.lines):
        number = block.line + offset
        if heredoc is not None:
            if raw.strip() == heredoc:
                heredoc = None
            continue
        line = raw
        if not pending:
            stripped = line.lstrip()
            if block.lang in ("console", "shell-session"):
                if not stripped.startswith("$ "):
                    continue  # output, not a command
                line = stripped[2:]
            elif stripped.startswith("$ "):
                line = stripped[2:]
            start = number
        if line.rstrip().endswith("\\"):
            pending.append(line.rstrip()[:-1])
            continue
        pending.append(line)
        text = " ".join(part.strip() for part in pending).strip()
        pending = []
        m = _HEREDOC.search(text)
        if m:
            heredoc = m[1]
        if text and not text.startswith("#"):
            yield start, text


def _strip_comment(text: str) -> str:
    """Drop a trailing ``# comment`` (a ``#`` starting a word, outside quotes)."""
    quote: str | None = None
    escaped = False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\" and quote != "'":
            escaped = True
        elif quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i]
    return text


def split_commands(text: str) -> list[list[str]]:
    """The simple commands of one command line, as words (redirections removed).

    Raises ``ValueError`` for text shlex cannot split (an unclosed quote).
    """
    text = _strip_comment(text)
    text = _FD_REDIRECT.sub("", text)  # "2>&1": the fd belongs to the redirection
    # <path> is a placeholder, not two redirections: hide it from shlex.
    text = _ANGLE.sub(lambda m: f"\x00{m[1]}\x01", text)
    lexer = shlex.shlex(text, posix=True, punctuation_chars=_PUNCT)
    lexer.whitespace_split = True
    lexer.commenters = ""
    words = [w.replace("\x00", "<").replace("\x01", ">") for w in lexer]
    commands: list[list[str]] = [[]]
    skip_next = False
    for word in words:
        if skip_next:
            skip_next = False
            continue
        if word and all(c in _PUNCT for c in word):
            if word in _REDIRECTS:
                skip_next = True  # the redirection's target
            elif commands[-1]:
                commands.append([])
            continue
        commands[-1].append(word)
    return [c for c in commands if c]


@dataclass(frozen=True)
class DocCommand:
    """A command from documentation that runs a watched CLI or a contracted script."""

    source: str
    line: int
    text: str
    kind: str  # "cli", "script" or "plugin" (a pytest plugin's options)
    target: str  # CLI name or script name
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def _split_prefix(words: list[str]) -> tuple[dict[str, str], list[str]]:
    env: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if _ASSIGN.match(word):
            key, value = word.split("=", 1)
            env[key] = value
        elif word in _PREFIX_WORDS:
            pass
        elif word in _RUNNERS and i + 1 < len(words) and words[i + 1] == "run":
            i += 1
        else:
            break
        i += 1
    return env, words[i:]


def _plugin_args(words: list[str], plugin: PluginOptions) -> list[str]:
    """The plugin's options on a pytest command line (with their values)."""
    parser = plugin.cli.parser()
    picked: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith(plugin.prefix):
            picked.append(word)
            action = parser._option_string_actions.get(word)
            if action is not None and action.nargs != 0 and i + 1 < len(words):
                picked.append(words[i + 1])
                i += 1
        i += 1
    return picked


def _match(
    words: list[str],
    clis: Sequence[Cli],
    scripts: Mapping[str, ScriptContract],
    plugin: PluginOptions | None = None,
) -> tuple[str, str, list[str]] | None:
    if not words:
        return None
    names = {c.name for c in clis}
    modules = {c.module: c.name for c in clis if c.module}
    head = Path(words[0]).name
    if plugin is not None and any(w.startswith(plugin.prefix) for w in words):
        if head in ("pytest", "py.test"):
            return "plugin", plugin.cli.name, _plugin_args(words[1:], plugin)
        if _PYTHON.match(head) and words[1:3] == ["-m", "pytest"]:
            return "plugin", plugin.cli.name, _plugin_args(words[3:], plugin)
    if head in names:
        return "cli", head, words[1:]
    if _PYTHON.match(head) and len(words) >= 3 and words[1] == "-m" and words[2] in modules:
        return "cli", modules[words[2]], words[3:]
    if head in ("bash", "sh") and len(words) >= 2 and Path(words[1]).name in scripts:
        return "script", Path(words[1]).name, words[2:]
    if head in scripts:
        return "script", head, words[1:]
    return None


def doc_commands(
    text: str,
    source: str = "<markdown>",
    *,
    clis: Sequence[Cli],
    scripts: Mapping[str, ScriptContract] | None = None,
    plugin: PluginOptions | None = None,
) -> tuple[list[DocCommand], list[Problem]]:
    """Commands in ``text``'s shell blocks that run one of ``clis`` or a contracted script.

    With ``plugin``, the plugin's options on ``pytest`` command lines are
    collected too. Also returns problems for lines that mention a CLI but
    cannot be split.
    """
    scripts = dict(scripts or {})
    mentions = [c.name for c in clis] + [m for c in clis if c.module for m in [c.module]]
    found: list[DocCommand] = []
    problems: list[Problem] = []
    exported: dict[str, str] = {}  # export X=... lines hold for the rest of the file
    for block in shell_blocks(text, source):
        for line, command_text in logical_lines(block):
            try:
                commands = split_commands(command_text)
            except ValueError as exc:
                if any(m in command_text for m in [*mentions, *scripts]):
                    problems.append(
                        Problem(
                            "unparsable",
                            f"{source}:{line}",
                            "-",
                            f"{source}:{line}: cannot split {command_text!r}: {exc}",
                        )
                    )
                continue
            for words in commands:
                if words[0] == "export":
                    exported.update(w.split("=", 1) for w in words[1:] if _ASSIGN.match(w))  # type: ignore[misc]
                    continue
                env, rest = _split_prefix(words)
                if not rest:
                    exported.update(env)  # a bare VAR=value line
                    continue
                hit = _match(rest, clis, scripts, plugin)
                if hit is None:
                    continue
                kind, target, argv = hit
                found.append(
                    DocCommand(
                        source, line, command_text, kind, target, tuple(argv), {**exported, **env}
                    )
                )
    return found, problems


def _doc_argv(argv: Sequence[str]) -> list[str]:
    # "..." in an example means "and so on", not an argument.
    return [a for a in argv if a not in ("...", "…")]


def check_command(
    command: DocCommand,
    *,
    clis: Sequence[Cli],
    scripts: Mapping[str, ScriptContract] | None = None,
    recorder: ArgvRecorder | None = None,
    plugin: PluginOptions | None = None,
) -> list[Problem]:
    """Problems with one documented command (a script runs through ``recorder``)."""
    if command.kind == "plugin":
        if plugin is None:
            raise ValueError(f"{command.where}: a plugin command needs plugin=PluginOptions(...)")
        return check_argv(plugin.cli, command.argv, caller=command.where, placeholders=True)
    if command.kind == "cli":
        cli = next(c for c in clis if c.name == command.target)
        return check_argv(cli, _doc_argv(command.argv), caller=command.where, placeholders=True)
    contract = dict(scripts or {})[command.target]
    if recorder is None:
        with tempfile.TemporaryDirectory(prefix="argvcontract-docs-") as tmp:
            return check_command(
                command, clis=clis, scripts=scripts, recorder=ArgvRecorder(tmp, clis)
            )
    cwd = recorder.workdir / f"doc-{command.source.replace('/', '_')}-{command.line}"
    cwd.mkdir(parents=True, exist_ok=True)
    env: dict[str, str | None] = {}
    for key, value in command.env.items():
        if key in contract.input_files:
            env[key] = value  # the contract puts a file where it must be
        elif is_placeholder(value):
            env[key] = None  # the script's own default
        elif value.startswith("/"):
            env[key] = str(cwd / value.lstrip("/"))  # never write outside the sandbox
        else:
            env[key] = value
    recording = contract.record(
        recorder,
        *_doc_argv(command.argv),
        env=env,
        cwd=cwd,
        caller=f"{command.where} ({contract.name})",
    )
    report = verify(
        recording, clis=clis, must_pass={contract.callee: contract.must_pass}, placeholders=True
    )
    return report.problems


def doc_files(root: str | Path) -> list[Path]:
    """``README.md`` and ``docs/*.md`` (recursively) under ``root``, those that exist."""
    root = Path(root)
    files = [root / "README.md"] if (root / "README.md").is_file() else []
    docs = root / "docs"
    if docs.is_dir():
        files += sorted(p for p in docs.rglob("*.md") if p.is_file())
    return files


def collect_commands(
    root: str | Path,
    *,
    clis: Sequence[Cli],
    scripts: Mapping[str, ScriptContract] | None = None,
    plugin: PluginOptions | None = None,
) -> tuple[list[DocCommand], list[Problem]]:
    """Every checkable command in the documentation under ``root``."""
    root = Path(root)
    commands: list[DocCommand] = []
    problems: list[Problem] = []
    for path in doc_files(root):
        found, bad = doc_commands(
            path.read_text(encoding="utf-8"),
            path.relative_to(root).as_posix(),
            clis=clis,
            scripts=scripts,
            plugin=plugin,
        )
        commands += found
        problems += bad
    return commands, problems


def check_markdown(
    text: str,
    source: str = "<markdown>",
    *,
    clis: Sequence[Cli],
    scripts: Mapping[str, ScriptContract] | None = None,
    recorder: ArgvRecorder | None = None,
    plugin: PluginOptions | None = None,
) -> ContractReport:
    """Check every command in a markdown text; the report lists each problem."""
    commands, problems = doc_commands(text, source, clis=clis, scripts=scripts, plugin=plugin)
    report = ContractReport(source, problems=list(problems))
    for command in commands:
        report.problems += check_command(
            command, clis=clis, scripts=scripts, recorder=recorder, plugin=plugin
        )
    return report


def check_docs(
    root: str | Path,
    *,
    clis: Sequence[Cli],
    scripts: Mapping[str, ScriptContract] | None = None,
    recorder: ArgvRecorder | None = None,
    plugin: PluginOptions | None = None,
) -> ContractReport:
    """Check ``README.md`` and ``docs/*.md`` under ``root``."""
    commands, problems = collect_commands(root, clis=clis, scripts=scripts, plugin=plugin)
    report = ContractReport("documentation", problems=list(problems))
    for command in commands:
        report.problems += check_command(
            command, clis=clis, scripts=scripts, recorder=recorder, plugin=plugin
        )
    return report


__all__ = [
    "ContractError",
    "DocCommand",
    "ShellBlock",
    "check_command",
    "check_docs",
    "check_markdown",
    "collect_commands",
    "doc_commands",
    "doc_files",
    "logical_lines",
    "shell_blocks",
    "split_commands",
]
