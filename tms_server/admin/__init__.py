"""Operator commands behind ``tms-admin``."""
