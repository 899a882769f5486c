"""medfuse-bench: the MedFuse benchmark (MIMIC-IV + MIMIC-CXR-JPG) as one reproducible pipeline."""

__version__ = "0.1.0"
