"""LiteRT (TFLite) export through litert-torch: prefill + decode signatures, verified on this CPU."""
