"""Concepts: the paper's six categories, the shipped vocabulary, and the one normalisation of
free-text concept names that every app uses."""

from core.concepts.categories import CATEGORIES, CATEGORY_NAMES, CATEGORY_SLUGS

__all__ = ["CATEGORIES", "CATEGORY_NAMES", "CATEGORY_SLUGS"]
