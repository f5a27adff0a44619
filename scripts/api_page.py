"""Print docs/api.md from seqhf.API and the functions' own signatures and docstrings (python scripts/api_page.py > docs/api.md)."""
import inspect, seqhf
lines = ["# API reference", "",
 "Everything a user calls is importable from `seqhf` itself; each name comes from the module that does the",
 "job (see [Architecture](architecture.md)). Names are imported when first used, so `import seqhf` stays",
 "light. This page is generated from the docstrings by `python scripts/api_page.py`; a test checks that it is",
 "current.", "",
 "## Model classes", "",
 "| name | module |", "|---|---|"]
for name, module in seqhf.MODEL_CLASSES.items():
    lines.append(f"| `seqhf.{name}` | `seqhf.{module}` |")
lines += ["", "`seqhf.register_auto_classes()` registers both families with the Auto classes (`import seqhf` does it).", ""]
for name, (module, attribute) in seqhf.API.items():
    obj = getattr(seqhf, name)
    sig = str(inspect.signature(obj))
    lines += [f"## `seqhf.{name}`", "", f"From `seqhf.{module}.{attribute}`.", "", "```python", f"seqhf.{name}{sig}", "```", "",
              inspect.cleandoc(obj.__doc__ or "").replace("\n", "\n"), ""]
print("\n".join(lines).rstrip() + "\n", end="")
