"""Standalone Core ML export: .mlpackage with a stateful KV cache, spec-checked here."""
