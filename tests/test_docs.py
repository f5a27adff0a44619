"""The documentation: the site builds with `mkdocs build --strict` (a broken link, anchor or page fails), and
the README, which is also the PyPI page, stays a short front door with the two set-up-free commands."""

import os
import re
import subprocess
import sys

from conftest import REPO

README = REPO / "README.md"
THE_TWO_COMMANDS = ["bash scripts/run_main.sh", "bash scripts/run_tests.sh"]
SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell|console)[ \t]*\n(.*?)^```", re.S | re.M)


def shell_commands(block: str) -> list[str]:
    """The command lines of a shell block: comments dropped, continuation lines joined."""
    commands, current = [], ""
    for line in block.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", line).strip()
        if not line and not current:
            continue
        current = f"{current} {line}".strip()
        if current.endswith("\\"):
            current = current[:-1].strip()
            continue
        commands.append(current.removeprefix("$ "))
        current = ""
    return commands


def test_site_builds_strict(tmp_path):
    try:
        import material  # noqa: F401  (mkdocs-material: in the dev and docs extras)
    except ImportError:
        raise AssertionError('mkdocs-material is missing: pip install -e ".[dev]"') from None
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(REPO / "mkdocs.yml"),
               "-d", str(tmp_path / "site")]
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")  # material's end-of-life banner, not a build warning
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_readme_is_short():
    lines = README.read_text().splitlines()
    assert len(lines) < 160, f"README.md has {len(lines)} lines: move the detail into docs/"


def test_readme_keeps_exactly_the_two_commands():
    blocks = [shell_commands(b) for b in SHELL_BLOCK.findall(README.read_text())]
    setup_free = [c for block in blocks for c in block if c.startswith("bash ")]
    assert setup_free == THE_TWO_COMMANDS, setup_free
    assert THE_TWO_COMMANDS in blocks, "the two commands stand in a shell block of their own"


def test_readme_images_are_absolute():
    text = README.read_text()
    images = re.findall(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)", text) + re.findall(r"<img\b[^>]*\bsrc=[\"']([^\"']+)", text, re.I)
    assert images, "the README shows the demo page"
    relative = [src for src in images if not src.startswith("https://")]
    assert not relative, f"PyPI shows only absolute (https) image links: {relative}"


def test_api_page_is_current_and_every_api_function_is_documented():
    import seqhf

    for name in seqhf.API:
        assert (getattr(seqhf, name).__doc__ or "").strip(), f"seqhf.{name} has no docstring"
    page = subprocess.run([sys.executable, str(REPO / "scripts" / "api_page.py")], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert page.returncode == 0, page.stderr
    assert page.stdout == (REPO / "docs" / "api.md").read_text(), "run: python scripts/api_page.py > docs/api.md"


REPO_PATH = re.compile(r"(?<![\w./-])((?:scripts|benchmarks|tests|model_cards|seqhf)/[\w./-]*\.(?:py|sh|yaml|json|md|txt))\b")


def test_repository_files_the_docs_and_scripts_name_exist():
    """A reader runs the files the pages and the scripts' usage comments name (`scripts/run_pretrain_ab.sh`,
    the accelerate configs' example command); each must be in the repository."""
    texts = [README, *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "scripts").iterdir()),
             *sorted((REPO / "benchmarks").glob("*.py"))]
    missing = sorted({(path.name, named) for path in texts if path.is_file()
                      for named in REPO_PATH.findall(path.read_text(errors="replace")) if not (REPO / named).exists()})
    assert not missing, f"named but not in the repository: {missing}"


def command_options(tokens: list[str]):
    """The seqhf subcommand that `tokens` (what follows `seqhf`) call, and its option names; None if none."""
    import typer.main

    from seqhf.cli.app import app

    command, path = typer.main.get_command(app), []
    for token in tokens:
        if not (hasattr(command, "commands") and token in command.commands):
            break
        command = command.commands[token]
        path.append(token)
    if hasattr(command, "commands"):
        return None, set()
    return " ".join(path), {o for p in command.params for o in p.opts + p.secondary_opts} | {"--help", "-h"}


OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def test_every_cli_option_the_pages_name_exists():
    """Each `seqhf ...` command line of the pages' shell blocks, and each option of the `## seqhf X` tables of the
    command-line page, names options that subcommand has (a renamed option leaves no stale spelling behind)."""
    unknown = []
    for page in [README, *sorted((REPO / "docs").glob("*.md"))]:
        text = page.read_text()
        for line in (c for block in SHELL_BLOCK.findall(text) for c in shell_commands(block)):
            called = re.search(r"(?:^|\s)seqhf\s+(.*)", line)
            if not called or line.startswith("pip "):
                continue
            name, options = command_options(called.group(1).split())
            unknown += [(page.name, line) if name is None else (page.name, name, o)
                        for o in (OPTION.findall(called.group(1)) if name else [None]) if name is None or o not in options]
        for section in re.split(r"^## ", text, flags=re.M)[1:]:
            heading = section.splitlines()[0].strip()
            if heading.startswith("seqhf "):
                name, options = command_options(heading.split()[1:])
                rows = re.findall(r"^\| `([^`]*)`", section, flags=re.M)
                unknown += [(page.name, name, o) for row in rows for o in OPTION.findall(row) if name and o not in options]
    assert not unknown, f"options the pages name that the command lacks: {unknown}"
