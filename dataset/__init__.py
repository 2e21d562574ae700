"""Converters from public plain-text formats to RecBole atomic files (see README.md here)."""
