"""The main job's report: figures measured in one run, as Markdown, JSON and PNG charts."""
