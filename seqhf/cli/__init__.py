"""The `seqhf` command (a typer app)."""
