"""Retention: which orders are due (rules), how they stand (standing), clearing them (purge), and
removing the cleared values from the data files (erasure)."""
