"""Framework adapters: cprs as a LangChain document compressor, a LlamaIndex node postprocessor
and a Model Context Protocol tool.

Each lives in its own module and needs its own extra (`cprs-cli[langchain]`,
`cprs-cli[llamaindex]`, `cprs-cli[mcp]`); this `__init__` imports none of them. Each runs
in-process with a `Compressor` or as a client of a running `cprs serve` (`base_url=`).
"""
