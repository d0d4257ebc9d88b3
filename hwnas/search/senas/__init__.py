"""SE-NAS (Sec. 3.3-3.4): operator scores and search space shrinking in stages."""
