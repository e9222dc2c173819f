"""Where generations come from, behind one interface (``base.Backend``): replay of an existing
inference.json, the in-process vLLM engine, and a vLLM server."""
