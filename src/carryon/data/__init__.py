"""The benchmark's content and its schema."""

from carryon.data.load import BUILTIN_DATASET, DatasetReport, load_items, validate_file
from carryon.data.schema import CATEGORIES, Item

__all__ = ["BUILTIN_DATASET", "CATEGORIES", "DatasetReport", "Item", "load_items", "validate_file"]
