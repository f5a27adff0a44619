"""Model cards (templates, curves, confusion matrices) and publishing folders and Spaces to the Hub."""
