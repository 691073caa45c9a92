"""``python -m exporter`` is ``tiw-exporter``."""

from exporter.cli import main

main()
