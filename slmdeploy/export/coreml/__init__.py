"""Standalone Core ML export: .mlpackage with a stateful KV cache (iOS 18) or the cache as model I/O (iOS 16-17), spec-checked here."""
