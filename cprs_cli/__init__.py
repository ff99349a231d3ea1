"""cprs: query-guided compression of long documents for LLMs (QwenLong-CPRS style).

    from cprs_cli import Compressor
    c = Compressor()                       # the default shipped critic
    r = c.compress(text, query="...")      # r.compressed_text, r.spans, r.stats, r.to_dict()
"""

__version__ = "0.1.0"


def __getattr__(name):  # lazy: `import cprs_cli` must not import torch
    if name == "Compressor":
        from .compressor import Compressor

        return Compressor
    if name in ("CompressionResult", "Span", "Stats"):
        from . import result

        return getattr(result, name)
    raise AttributeError(name)


__all__ = ["Compressor", "CompressionResult", "Span", "Stats", "__version__"]
