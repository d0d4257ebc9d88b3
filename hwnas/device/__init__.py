"""Phones over ADB: transports, device profiles, preparation checks."""
