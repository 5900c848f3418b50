"""tms_server: a KSS callback API Transport Management System."""
