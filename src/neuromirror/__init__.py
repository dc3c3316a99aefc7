"""neuromirror: mirror public neuroscience archives into versioned DataLad datasets."""

__version__ = "0.1.0"
