"""Grading Lab 5 submissions (see docs/grading.md)."""
