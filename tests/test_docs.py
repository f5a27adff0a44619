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
