"""Provider mapping tables: each module ``<provider type>.py`` defines ``TABLE: Final[ProviderTable]``."""
