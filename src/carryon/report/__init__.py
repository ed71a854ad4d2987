"""The report: one self-contained HTML page (plots embedded, all model text escaped) plus metrics.json and exports."""

from carryon.report.html import write_report

__all__ = ["write_report"]
